//! The per-core workers: busy-poll loops that move frames from an AF_XDP
//! socket through a [`Pipeline`] and back out.
//!
//! One worker serves one RX queue number: queue q of every interface that
//! has one, a socket each. Its loop, with no lock, no allocation and no
//! system call per packet:
//!
//! 1. pick up a new [`Snapshot`] if the control thread published one
//!    (one atomic load per round);
//! 2. take the frames other workers handed to it (see below);
//! 3. receive a batch, hand over the frames that belong to another worker,
//!    run the rest through the pipeline, transmit or recycle each;
//! 4. let the socket reclaim completions, refill, and make the system calls
//!    the kernel asked for (`needs_wakeup`);
//! 5. expire connections (bounded work), publish counters now and then,
//!    and idle as `dataplane.idle` says when there was nothing to do.
//!
//! # NAT on every core: hand-over by a hash both directions share
//!
//! Each worker owns its connection table, and a NAT connection is seen in
//! both directions: the client's packets arrive on the queue the NIC's RSS
//! hash picks for the client's 5-tuple, the real server's replies on the
//! queue it picks for the reply's, usually another one. AF_XDP cannot steer
//! across queues (a socket only receives what arrived on its own queue), so
//! the XDP program cannot fix this; DPVS gives up and runs NAT on one core.
//! We make the owner a function of what both directions share — the
//! client's address and port — and hand a frame that arrives at the wrong
//! worker to its owner over a lock-free queue:
//!
//! - a packet to a VIP whose service has a NAT real server is owned by
//!   `owner(client address, client port)` (its source);
//! - a packet from a NAT real server is owned by `owner(its destination
//!   address and port)`, which is the same client.
//!
//! Everything else (DR and TUN services, whose replies never come back)
//! stays where RSS put it: the per-flow RSS hash already keeps a flow on
//! one queue. With RSS spreading clients evenly, a fraction `1 - 1/n` of NAT
//! packets takes one hop; the hand-over copies the frame (≤ 2 KiB) into a
//! preallocated buffer, the owner copies it into a frame of its own UMEM.
//! Each worker has one inbox (a bounded multi-producer queue of
//! crossbeam's `ArrayQueue`, filled by the other workers) and one pool of
//! free buffers; a full inbox drops the frame and counts it
//! (`handoff_dropped`), as a full RX ring would.
//!
//! # One client, one worker: persistence and the FTP helper
//!
//! Some state spans several connections of one client: a persistence
//! template (every connection of a client, or of its /24 with `-M`, goes
//! to one real server) and the FTP helper's data connections (announced
//! on the control connection, opened from other ports). It lives in one
//! worker's table, so those connections must all reach that worker. When
//! some service is persistent, or a NAT service has the FTP helper
//! (`Snapshot::steer_by_client`), the owner is therefore a function of the
//! client's address alone, masked by the widest persistence netmask:
//!
//! - a packet to a VIP of a persistent or NAT service, or to a VIP port
//!   with no service (an FTP data connection), is owned by
//!   `owner(client address & mask)`;
//! - a packet from a NAT real server by `owner(destination & mask)`.
//!
//! The price: one client's (or one masked block's) traffic is processed by
//! one core, so a single heavy client no longer spreads over workers;
//! many clients still spread evenly. Without persistence and FTP the
//! finer per-flow rule above stays in force.
//!
//! A frame that the pipeline sends out of another interface than the one
//! it came in on (a two-armed director) is copied into this worker's own
//! socket on that interface: one copy (two UMEMs), same core, no queue.
//! Only when this worker has no socket there (an interface with fewer
//! queues) does it go through the inbox of a worker that has one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use arrayvec::ArrayVec;
use crossbeam::queue::ArrayQueue;

use crate::config::{Idle, Protocol};
use crate::conn::{Conn, EXPECT_PROTO, TEMPLATE_PROTO, TcpState};
use crate::ctrl::proto::ConnView;
use crate::pipeline::{
    Counters, DropReason, EXPIRE_BUDGET, Frame, MAX_BATCH, Pipeline, Tick, Verdict,
};
use crate::service::Snapshot;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

/// What a worker needs from its socket: received frames in batches, frames
/// built from bytes (hand-over), and housekeeping. [`crate::xsk::Xsk`] is
/// the real one; the unit tests use an in-memory one.
pub trait FrameIo {
    /// Receives up to `max` frames, lets `f` decide each one's verdict
    /// (frames and verdicts may be permuted together), then transmits the
    /// frames whose verdict is `Tx` to this socket's own port and recycles
    /// the rest. Returns how many frames were received.
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]);
    /// As [`FrameIo::rx_batch`], for frames holding copies of `data`.
    /// Returns how many were taken.
    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]);
    /// Completions, refill, wake-ups.
    fn service(&mut self);
    /// Blocks until there may be something to receive or `wake` is
    /// readable, at most `timeout_ms`.
    fn wait_rx(&mut self, wake: BorrowedFd<'_>, timeout_ms: i32);
}

impl FrameIo for crate::xsk::Xsk {
    #[inline]
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        crate::xsk::Xsk::rx_batch(self, max, f)
    }

    #[inline]
    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        crate::xsk::Xsk::inject_batch(self, data, f)
    }

    #[inline]
    fn service(&mut self) {
        crate::xsk::Xsk::service(self);
    }

    fn wait_rx(&mut self, wake: BorrowedFd<'_>, timeout_ms: i32) {
        crate::xsk::Xsk::wait_rx_or(self, Some(wake), timeout_ms);
    }
}

/// Bytes of one hand-over buffer: a full UMEM frame's worth.
pub const HANDOFF_BYTES: usize = 2048;
/// Hand-over buffers per worker (its inbox's capacity): 8 MiB, about
/// 10 ms of hand-overs at 400 k packets/s, for an owner that the kernel
/// did not schedule for a while (it is a ring like the RX ring).
pub const HANDOFF_SLOTS: usize = 4096;

/// A frame on its way to another worker.
pub struct Handoff {
    buf: Box<[u8; HANDOFF_BYTES]>,
    len: u16,
    /// The port it was received on (to process) or is to leave by (to
    /// transmit).
    port: u8,
    /// Transmit as it is (already processed) rather than process.
    transmit: bool,
}

/// A worker's inbox and the pool of free buffers senders fill for it.
pub struct Mailbox {
    inbox: ArrayQueue<Handoff>,
    free: ArrayQueue<Box<[u8; HANDOFF_BYTES]>>,
    /// Set while the owner sleeps in poll(2) (`idle = "wait"`); a sender
    /// then writes `wake`, the only system call hand-over ever makes, and
    /// only to a worker with nothing else to do.
    sleeping: AtomicBool,
    wake: OwnedFd,
}

impl Mailbox {
    fn new(slots: usize) -> Mailbox {
        let free = ArrayQueue::new(slots);
        for _ in 0..slots {
            let _ = free.push(Box::new([0u8; HANDOFF_BYTES]));
        }
        Mailbox {
            inbox: ArrayQueue::new(slots),
            free,
            sleeping: AtomicBool::new(false),
            wake: rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
            )
            .expect("eventfd: out of file descriptors at start-up"),
        }
    }

    /// Copies `data` into a free buffer and queues it. False when the
    /// owner is too far behind (no free buffer) or the frame is too big.
    fn send(&self, data: &[u8], port: u8, transmit: bool) -> bool {
        if data.len() > HANDOFF_BYTES {
            return false;
        }
        let Some(mut buf) = self.free.pop() else {
            return false;
        };
        buf[..data.len()].copy_from_slice(data);
        let h = Handoff {
            buf,
            len: data.len() as u16,
            port,
            transmit,
        };
        match self.inbox.push(h) {
            Ok(()) => {
                // Pairs with the fence in `Worker::sleep`: either the owner
                // sees the frame before sleeping, or we see it asleep.
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.sleeping.load(Ordering::Relaxed) {
                    let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
                }
                true
            }
            Err(h) => {
                let _ = self.free.push(h.buf);
                false
            }
        }
    }
}

/// A worker's counters as the control thread reads them: the pipeline's
/// plus the worker's own, stored by the worker (relaxed, single writer)
/// every few milliseconds.
#[derive(Default)]
pub struct PublishedCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    pub drops: [AtomicU64; DropReason::COUNT],
    pub conns: AtomicU64,
    pub conns_created: AtomicU64,
    pub handoff_sent: AtomicU64,
    pub handoff_received: AtomicU64,
    pub handoff_dropped: AtomicU64,
    /// Frames the pipeline wanted out of a port no worker has a socket on.
    pub no_tx_port: AtomicU64,
}

/// A copy of one worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    pub rx: u64,
    pub tx: u64,
    pub passed: u64,
    pub dropped: u64,
    pub drops: [u64; DropReason::COUNT],
    pub conns: u64,
    pub conns_created: u64,
    pub handoff_sent: u64,
    pub handoff_received: u64,
    pub handoff_dropped: u64,
    pub no_tx_port: u64,
}

impl PublishedCounters {
    pub fn read(&self) -> WorkerCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerCounters {
            rx: r(&self.rx),
            tx: r(&self.tx),
            passed: r(&self.passed),
            dropped: r(&self.dropped),
            drops: std::array::from_fn(|i| r(&self.drops[i])),
            conns: r(&self.conns),
            conns_created: r(&self.conns_created),
            handoff_sent: r(&self.handoff_sent),
            handoff_received: r(&self.handoff_received),
            handoff_dropped: r(&self.handoff_dropped),
            no_tx_port: r(&self.no_tx_port),
        }
    }
}

/// What the control thread and all workers share.
pub struct Shared {
    /// The current snapshot; workers pick it up between batches.
    pub snapshot: ArcSwap<Snapshot>,
    /// Set once, on shutdown.
    pub stop: AtomicBool,
    mailboxes: Box<[Mailbox]>,
    /// Per director port, the workers with a socket on it.
    port_workers: Box<[Box<[usize]>]>,
    counters: Box<[PublishedCounters]>,
    dumps: Box<[ConnDump]>,
}

/// A request for a worker's connection entries (`xdpvsadm -c`) and the
/// answer. The control thread sets `requested`; the worker sees it between
/// rounds (one relaxed load), copies its table out and clears it. The lock
/// is only ever taken on that control path, never per packet.
#[derive(Default)]
struct ConnDump {
    requested: AtomicBool,
    result: std::sync::Mutex<Option<Vec<ConnView>>>,
}

impl Shared {
    /// For workers `0..ports_of.len()`, worker `w` having a socket on
    /// each port of `ports_of[w]`.
    pub fn new(snapshot: Arc<Snapshot>, ports_of: &[Vec<u8>]) -> Shared {
        Self::with_slots(snapshot, ports_of, HANDOFF_SLOTS)
    }

    /// As [`Shared::new`], with `slots` hand-over buffers per worker.
    pub fn with_slots(snapshot: Arc<Snapshot>, ports_of: &[Vec<u8>], slots: usize) -> Shared {
        let nports = ports_of
            .iter()
            .flatten()
            .map(|&p| usize::from(p) + 1)
            .max()
            .unwrap_or(0);
        let port_workers = (0..nports)
            .map(|p| {
                (0..ports_of.len())
                    .filter(|&w| ports_of[w].iter().any(|&q| usize::from(q) == p))
                    .collect()
            })
            .collect();
        Shared {
            snapshot: ArcSwap::new(snapshot),
            stop: AtomicBool::new(false),
            mailboxes: ports_of.iter().map(|_| Mailbox::new(slots)).collect(),
            port_workers,
            counters: ports_of
                .iter()
                .map(|_| PublishedCounters::default())
                .collect(),
            dumps: ports_of.iter().map(|_| ConnDump::default()).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    pub fn counters(&self, w: usize) -> WorkerCounters {
        self.counters[w].read()
    }

    /// Every worker's connection entries, asked for and collected within
    /// `limit` (workers answer between rounds, so within a millisecond or
    /// two unless one is stuck; a worker that does not answer is left out).
    pub fn connections(&self, limit: Duration) -> Vec<ConnView> {
        for d in self.dumps.iter() {
            d.requested.store(true, Ordering::Release);
        }
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        let mut pending: Vec<usize> = (0..self.dumps.len()).collect();
        while !pending.is_empty() && Instant::now() < end {
            pending.retain(|&w| {
                let got = self.dumps[w]
                    .result
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match got {
                    Some(v) => {
                        out.extend(v);
                        false
                    }
                    None => true,
                }
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for &w in &pending {
            self.dumps[w].requested.store(false, Ordering::Relaxed);
        }
        out
    }
}

/// The worker that owns the NAT connections of client `addr:port`; the
/// same function for both directions (module docs). A multiplicative hash
/// is enough: RSS has already spread the flows, this only has to agree
/// between workers and not collapse on sequential ports.
#[inline]
pub fn owner(addr: [u8; 4], port: u16, workers: usize) -> usize {
    let x = u64::from(u32::from_be_bytes(addr)) << 16 | u64::from(port);
    let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (((h >> 32) * workers as u64) >> 32) as usize
}

/// Where a received frame is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steer {
    Here,
    To(usize),
}

/// The owner of a frame by the module docs' rule. Only untagged IPv4
/// TCP/UDP first fragments are looked at; anything else stays (the
/// pipeline counts what it cannot handle).
#[inline]
fn steer(snap: &Snapshot, data: &[u8], me: usize, workers: usize) -> Steer {
    let Some(ip) = data.get(14..34) else {
        return Steer::Here;
    };
    if data[12..14] != [0x08, 0x00] || ip[0] >> 4 != 4 {
        return Steer::Here;
    }
    let proto = ip[9];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if (proto != 6 && proto != 17) || frag_offset != 0 {
        return Steer::Here;
    }
    let Some(ports) = data.get(14 + ihl..14 + ihl + 4) else {
        return Steer::Here;
    };
    let src = [ip[12], ip[13], ip[14], ip[15]];
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    // By the client's (masked) address alone, or by its address and port.
    let by_client = snap.steer_by_client;
    let key = |addr: [u8; 4], port: u16| {
        if by_client {
            let a = u32::from_be_bytes(addr) & snap.steer_mask;
            owner(a.to_be_bytes(), 0, workers)
        } else {
            owner(addr, port, workers)
        }
    };
    let w = if let Some(svc) = snap.service_v4(proto, dst.into(), dport) {
        if !(svc.has_nat || by_client && svc.persistence_timeout > 0) {
            return Steer::Here;
        }
        key(src, sport)
    } else if snap.is_nat_real_v4(src.into()) {
        key(dst, dport)
    } else if by_client && snap.is_vip_v4(dst.into()) {
        // Perhaps an FTP data connection the helper expects.
        key(src, sport)
    } else {
        return Steer::Here;
    };
    if w == me { Steer::Here } else { Steer::To(w) }
}

/// How a worker runs; from `[dataplane]`.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    pub batch: usize,
    pub idle: Idle,
}

/// Empty rounds before [`Idle::Wait`] blocks.
const SPINS_BEFORE_WAIT: u32 = 256;
/// How long [`Idle::Wait`] blocks at most. Frames and hand-overs wake it
/// at once; this bounds how late it sees a stop, a `-c` request or a
/// connection to expire.
const WAIT_MS: i32 = 10;
/// Rounds between counter publications when busy.
const PUBLISH_EVERY: u32 = 64;

/// One worker: its sockets (one per interface, all on the same queue
/// number), a pipeline, and its place among the others.
pub struct Worker<S: FrameIo> {
    id: usize,
    /// (port, socket), by port.
    socks: Vec<(u8, S)>,
    pipeline: Pipeline,
    shared: Arc<Shared>,
    opts: WorkerOptions,
    /// Worker-side counts not in the pipeline's [`Counters`].
    handoff_sent: u64,
    handoff_received: u64,
    handoff_dropped: u64,
    no_tx_port: u64,
    tx: u64,
}

/// Per-round results of the receive closure, outside the borrow of the
/// sockets.
#[derive(Default)]
struct RoundCounts {
    sent: u64,
    dropped: u64,
    no_tx_port: u64,
    tx: u64,
}

/// The sockets of a worker other than the one being served: where a frame
/// for another port goes when this worker has a socket there.
struct Others<'s, S> {
    before: &'s mut [(u8, S)],
    after: &'s mut [(u8, S)],
}

impl<S: FrameIo> Others<'_, S> {
    fn get(&mut self, port: u8) -> Option<&mut S> {
        self.before
            .iter_mut()
            .chain(self.after.iter_mut())
            .find(|(p, _)| *p == port)
            .map(|(_, s)| s)
    }
}

/// Splits `socks` into socket `i` and the others.
fn split<S>(socks: &mut [(u8, S)], i: usize) -> (&mut (u8, S), Others<'_, S>) {
    let (before, rest) = socks.split_at_mut(i);
    let (me, after) = rest.split_first_mut().expect("socket index in range");
    (me, Others { before, after })
}

impl<S: FrameIo> Worker<S> {
    /// Worker `id` with sockets `socks` as (port, socket).
    pub fn new(
        id: usize,
        mut socks: Vec<(u8, S)>,
        mut pipeline: Pipeline,
        shared: Arc<Shared>,
        opts: WorkerOptions,
    ) -> Worker<S> {
        assert!(!socks.is_empty(), "a worker needs a socket");
        socks.sort_by_key(|(p, _)| *p);
        pipeline.set_worker(id);
        // Configuration refuses a larger `batch_size` (`Dataplane::MAX_BATCH_SIZE`).
        assert!(
            (1..=MAX_BATCH).contains(&opts.batch),
            "batch size {} outside 1..={MAX_BATCH}",
            opts.batch
        );
        Worker {
            id,
            socks,
            pipeline,
            shared,
            opts,
            handoff_sent: 0,
            handoff_received: 0,
            handoff_dropped: 0,
            no_tx_port: 0,
            tx: 0,
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Its socket on `port`.
    pub fn io(&mut self, port: u8) -> Option<&mut S> {
        self.socks
            .iter_mut()
            .find(|(p, _)| *p == port)
            .map(|(_, s)| s)
    }

    /// Runs until [`Shared::stop`] is set. `clock` gives the pipeline's
    /// seconds.
    pub fn run(&mut self, clock: &Clock) {
        let mut empty = 0u32;
        let mut rounds = 0u32;
        let mut last_now = clock.now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = clock.now();
            if self.shared.dumps[self.id].requested.load(Ordering::Relaxed) {
                self.answer_dump(now);
            }
            let work = self.round(now);
            rounds = rounds.wrapping_add(1);
            if now != last_now || work == 0 {
                self.pipeline.expire(now, EXPIRE_BUDGET);
                last_now = now;
            }
            if work > 0 {
                empty = 0;
                if rounds.is_multiple_of(PUBLISH_EVERY) {
                    self.publish();
                }
                continue;
            }
            empty += 1;
            if empty == 1 {
                self.publish();
            }
            match self.opts.idle {
                Idle::Busy => std::hint::spin_loop(),
                Idle::Yield => std::thread::yield_now(),
                Idle::Wait if empty >= SPINS_BEFORE_WAIT => self.sleep(),
                Idle::Wait => std::hint::spin_loop(),
            }
        }
        self.publish();
    }

    /// Blocks in poll(2) until a frame arrives, another worker hands one
    /// over, or [`WAIT_MS`] passes. With several sockets it sleeps on the
    /// first and the hand-over fd, for at most a millisecond, so that the
    /// others are not left waiting longer than that.
    fn sleep(&mut self) {
        let mb = &self.shared.mailboxes[self.id];
        mb.sleeping.store(true, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
        if mb.inbox.is_empty() {
            let wait = if self.socks.len() > 1 { 1 } else { WAIT_MS };
            self.socks[0].1.wait_rx(mb.wake.as_fd(), wait);
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&mb.wake, &mut buf);
        }
        mb.sleeping.store(false, Ordering::Relaxed);
    }

    /// One round of the loop (module docs, steps 1 to 4) over every socket.
    /// Returns the number of frames handled.
    pub fn round(&mut self, now: Tick) -> usize {
        self.pick_up_snapshot();
        let mut work = self.drain_inbox(now);
        let mut counts = RoundCounts::default();
        for i in 0..self.socks.len() {
            let Worker {
                id,
                socks,
                pipeline,
                shared,
                opts,
                ..
            } = self;
            let ((my_port, io), mut others) = split(socks, i);
            let (me, my_port, workers) = (*id, *my_port, shared.workers());
            work += io.rx_batch(opts.batch, |frames, verdicts| {
                let mut here = frames.len();
                if workers > 1 && pipeline.snapshot().handover {
                    here = 0;
                    let snap = pipeline.snapshot();
                    for i in 0..frames.len() {
                        match steer(snap, frames[i].data(), me, workers) {
                            Steer::Here => {
                                frames.swap(i, here);
                                verdicts.swap(i, here);
                                here += 1;
                            }
                            Steer::To(w) => {
                                if shared.mailboxes[w].send(frames[i].data(), my_port, false) {
                                    counts.sent += 1;
                                } else {
                                    counts.dropped += 1;
                                }
                                verdicts[i] = Verdict::Pass;
                            }
                        }
                    }
                }
                pipeline.process_batch(&mut frames[..here], &mut verdicts[..here], now);
                route_out(
                    shared,
                    (me, my_port),
                    &mut others,
                    &frames[..here],
                    &mut verdicts[..here],
                    &mut counts,
                );
            });
        }
        self.account(counts);
        for (_, io) in &mut self.socks {
            io.service();
        }
        work
    }

    fn pick_up_snapshot(&mut self) {
        let cur = self.shared.snapshot.load();
        if !Arc::ptr_eq(&cur, self.pipeline.snapshot()) {
            self.pipeline.set_snapshot(arc_swap::Guard::into_inner(cur));
        }
    }

    /// Processes (or transmits) what other workers handed over: each into
    /// this worker's socket on the frame's port (the first socket when it
    /// has none there; the frame keeps its port).
    fn drain_inbox(&mut self, now: Tick) -> usize {
        let mut taken: [Option<Handoff>; MAX_BATCH] = [const { None }; MAX_BATCH];
        let inbox = &self.shared.mailboxes[self.id].inbox;
        let mut n = 0;
        while n < self.opts.batch {
            match inbox.pop() {
                Some(h) => {
                    taken[n] = Some(h);
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return 0;
        }
        self.handoff_received += n as u64;
        let mut counts = RoundCounts::default();
        let sock_of =
            |port: u8, socks: &[(u8, S)]| socks.iter().position(|(p, _)| *p == port).unwrap_or(0);
        for i in 0..self.socks.len() {
            for transmit in [false, true] {
                let mut data: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
                let mut ports = [0u8; MAX_BATCH];
                let mut k = 0;
                for h in taken[..n]
                    .iter()
                    .flatten()
                    .filter(|h| h.transmit == transmit && sock_of(h.port, &self.socks) == i)
                {
                    data[k] = &h.buf[..usize::from(h.len)];
                    ports[k] = h.port;
                    k += 1;
                }
                if k == 0 {
                    continue;
                }
                let Worker {
                    id,
                    socks,
                    pipeline,
                    shared,
                    ..
                } = self;
                let ((my_port, io), mut others) = split(socks, i);
                let (me, my_port) = (*id, *my_port);
                let taken_now = io.inject_batch(&data[..k], |frames, verdicts| {
                    if transmit {
                        for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
                            *v = Verdict::Tx {
                                port: my_port,
                                len: f.len(),
                            };
                        }
                        counts.tx += frames.len() as u64;
                    } else {
                        for (f, &p) in frames.iter_mut().zip(&ports) {
                            f.set_port(p);
                        }
                        pipeline.process_batch(frames, verdicts, now);
                        route_out(
                            shared,
                            (me, my_port),
                            &mut others,
                            frames,
                            verdicts,
                            &mut counts,
                        );
                    }
                });
                // Frames the socket had no room for are lost like a full ring's.
                counts.dropped += (k - taken_now) as u64;
            }
        }
        let free = &self.shared.mailboxes[self.id].free;
        for h in taken[..n].iter_mut().filter_map(Option::take) {
            let _ = free.push(h.buf);
        }
        self.account(counts);
        n
    }

    fn account(&mut self, c: RoundCounts) {
        self.handoff_sent += c.sent;
        self.handoff_dropped += c.dropped;
        self.no_tx_port += c.no_tx_port;
        self.tx += c.tx;
    }

    /// Copies this worker's connection table out for `xdpvsadm -c`.
    pub fn answer_dump(&mut self, now: Tick) {
        let d = &self.shared.dumps[self.id];
        let entries = self
            .pipeline
            .conns()
            .iter()
            .filter_map(|c| conn_view(c, now))
            .collect();
        *d.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(entries);
        d.requested.store(false, Ordering::Release);
    }

    /// Stores this worker's counters where the control thread reads them.
    pub fn publish(&self) {
        let c: &Counters = self.pipeline.counters();
        let p = &self.shared.counters[self.id];
        let s = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        s(&p.rx, c.rx);
        s(&p.tx, self.tx);
        s(&p.passed, c.passed);
        s(&p.dropped, c.total_drops());
        for (a, v) in p.drops.iter().zip(c.drops) {
            s(a, v);
        }
        s(&p.conns, u64::from(self.pipeline.conns().len()));
        s(&p.conns_created, c.conns_created);
        s(&p.handoff_sent, self.handoff_sent);
        s(&p.handoff_received, self.handoff_received);
        s(&p.handoff_dropped, self.handoff_dropped);
        s(&p.no_tx_port, self.no_tx_port);
    }
}

/// After the pipeline, for the frames of socket `my_port`: a frame for
/// another port is copied into this worker's socket on that port when it
/// has one (the two-armed director's common case: one copy, same core),
/// else handed to a worker that has (always the same one for this worker,
/// so a flow, which has one owner, keeps one path and its order); either
/// way it is recycled here. Counts what this worker transmits.
fn route_out<S: FrameIo>(
    shared: &Shared,
    (me, my_port): (usize, u8),
    others: &mut Others<'_, S>,
    frames: &[Frame<'_>],
    verdicts: &mut [Verdict],
    counts: &mut RoundCounts,
) {
    // Frames for each of this worker's other sockets, sent as one batch.
    let mut local: [(u8, ArrayVec<&[u8], MAX_BATCH>); 4] =
        std::array::from_fn(|_| (0, ArrayVec::new()));
    let mut nlocal = 0;
    for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
        let Verdict::Tx { port, len } = *v else {
            continue;
        };
        if port == my_port {
            counts.tx += 1;
            continue;
        }
        *v = Verdict::Pass;
        let data = &f.data()[..len];
        if others.get(port).is_some() {
            let slot = match local[..nlocal].iter().position(|(p, _)| *p == port) {
                Some(j) => Some(j),
                None if nlocal < local.len() => {
                    local[nlocal].0 = port;
                    nlocal += 1;
                    Some(nlocal - 1)
                }
                None => None,
            };
            if let Some(j) = slot {
                local[j].1.push(data);
                continue;
            }
        }
        let Some(ws) = shared
            .port_workers
            .get(usize::from(port))
            .filter(|w| !w.is_empty())
        else {
            counts.no_tx_port += 1;
            continue;
        };
        let w = ws[me % ws.len()];
        if shared.mailboxes[w].send(data, port, true) {
            counts.sent += 1;
        } else {
            counts.dropped += 1;
        }
    }
    for (port, batch) in &local[..nlocal] {
        let io = others.get(*port).expect("a socket on this port");
        let sent = io.inject_batch(batch, |frames, verdicts| {
            for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
                *v = Verdict::Tx {
                    port: *port,
                    len: f.len(),
                };
            }
        });
        counts.tx += sent as u64;
        counts.dropped += (batch.len() - sent) as u64;
    }
}

/// A connection (or persistence template) as `xdpvsadm -c` lists it.
fn conn_view(c: &Conn<Ipv4Addr>, now: Tick) -> Option<ConnView> {
    let proto = match c.proto & !(TEMPLATE_PROTO | EXPECT_PROTO) {
        PROTO_TCP => Protocol::Tcp,
        PROTO_UDP => Protocol::Udp,
        _ => return None,
    };
    let state = if proto == Protocol::Tcp {
        TcpState::from_u8(c.state).name().to_owned()
    } else {
        "UDP".to_owned()
    };
    let sa = |a: Ipv4Addr, p: u16| SocketAddr::new(IpAddr::V4(a), p);
    Some(ConnView {
        proto,
        client: sa(c.caddr, c.cport),
        virt: sa(c.vaddr, c.vport),
        dest: sa(c.daddr, c.dport),
        state,
        expires: c.expires.saturating_sub(now),
    })
}

/// The pipeline's clock: whole seconds since the daemon started.
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            start: Instant::now(),
        }
    }
}

impl Clock {
    pub fn now(&self) -> Tick {
        (self.start.elapsed().as_secs() as Tick).max(1)
    }
}
