//! The per-core workers: busy-poll loops that move frames from AF_XDP
//! sockets through a [`Pipeline`] and back out.
//!
//! One worker serves one RX queue number: queue q of every interface that
//! has one, a socket each. Its loop ([`Worker::round`]) has no lock, no
//! allocation and no system call per packet: pick up a new snapshot; take
//! what other workers handed over; per socket, receive a batch, hand the
//! frames another worker owns to it ([`handover`]), run the rest through
//! the pipeline and route each out (`route.rs`); then service the rings.
//! Between rounds it expires connections (bounded work), publishes its
//! statistics now and then, and idles as `dataplane.idle` says.
//!
//! Rooms: [`io`] (what a socket offers), [`handover`] (who owns a frame,
//! and the mailboxes), `route.rs` (out of another port), [`shared`] (what
//! control and workers share), `dump.rs` (`xdpvsadm -c`).

mod dump;
pub mod handover;
pub mod io;
mod route;
pub mod shared;

pub use dump::ConnEntry;
pub use handover::{HANDOFF_BYTES, HANDOFF_SLOTS, Handoff, Mailbox, owner};
pub use io::FrameIo;
pub use shared::Shared;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::config::Idle;
use crate::frame::{MAX_BATCH, Tick, Verdict};
use crate::pipeline::{EXPIRE_BUDGET, Pipeline};
use crate::stats::Counter;
use crate::xsk::{XdpKernelStats, XskStats};
use handover::{Steer, steer};
use route::{RoundCounts, route_out, split};

/// How a worker runs; from `[dataplane]`.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Frames per batch, 1 to [`MAX_BATCH`] (the configuration checks it).
    pub batch: usize,
    pub idle: Idle,
}

/// Empty rounds before [`Idle::Wait`] blocks.
const SPINS_BEFORE_WAIT: u32 = 256;
/// How long [`Idle::Wait`] blocks at most. Frames and hand-overs wake it
/// at once; this bounds how late it sees a stop, a `-c` request or a
/// connection to expire.
const WAIT_MS: i32 = 10;
/// Rounds between statistics publications when busy.
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
    /// Frames received and given a TX verdict here, for sockets that keep
    /// no ring counters of their own.
    rx_taken: u64,
    tx_given: u64,
    /// The kernel's socket counters as last read (once a second).
    kernel: XdpKernelStats,
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
        assert!(
            (1..=MAX_BATCH).contains(&opts.batch),
            "batch size {} outside 1..={MAX_BATCH}",
            opts.batch
        );
        socks.sort_by_key(|(p, _)| *p);
        pipeline.set_worker(id);
        Worker {
            id,
            socks,
            pipeline,
            shared,
            opts,
            rx_taken: 0,
            tx_given: 0,
            kernel: XdpKernelStats::default(),
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
            if now != last_now {
                self.read_kernel_stats();
            }
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
        self.read_kernel_stats();
        self.publish();
    }

    /// One round of the loop over every socket (module docs). Returns the
    /// number of frames handled.
    pub fn round(&mut self, now: Tick) -> usize {
        self.pick_up_snapshot();
        let handed_in = self.drain_inbox(now);
        let mut received = 0;
        let mut counts = RoundCounts::default();
        let workers = self.shared.workers();
        for i in 0..self.socks.len() {
            let Worker {
                id: me,
                socks,
                pipeline,
                shared,
                opts,
                ..
            } = self;
            let ((my_port, io), mut others) = split(socks, i);
            let my_port = *my_port;
            received += io.rx_batch(opts.batch, |frames, verdicts| {
                let mut here = frames.len();
                if workers > 1 && pipeline.snapshot().handover {
                    here = 0;
                    let snap = pipeline.snapshot();
                    for i in 0..frames.len() {
                        match steer(snap, frames[i].data(), *me, workers) {
                            Steer::Here => {
                                frames.swap(i, here);
                                verdicts.swap(i, here);
                                here += 1;
                            }
                            Steer::To(w) => {
                                if shared.mailbox(w).send(frames[i].data(), my_port, false) {
                                    counts.sent += 1;
                                } else {
                                    counts.dropped += 1;
                                }
                                verdicts[i] = Verdict::Handed;
                            }
                        }
                    }
                }
                let (frames, verdicts) = (&mut frames[..here], &mut verdicts[..here]);
                pipeline.process_batch(frames, verdicts, now);
                route_out(
                    shared,
                    (*me, my_port),
                    &mut others,
                    frames,
                    verdicts,
                    &mut counts,
                );
            });
        }
        self.rx_taken += received as u64;
        self.account(counts);
        for (_, io) in &mut self.socks {
            io.service();
        }
        handed_in + received
    }

    /// Blocks in poll(2) until a frame arrives, another worker hands one
    /// over, or [`WAIT_MS`] passes. With several sockets it sleeps on the
    /// first and the hand-over fd, for at most a millisecond, so that the
    /// others are not left waiting longer than that.
    fn sleep(&mut self) {
        let mb = self.shared.mailbox(self.id);
        mb.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Mailbox::send`: either the sender sees
        // us asleep, or we see its frame.
        std::sync::atomic::fence(Ordering::SeqCst);
        if mb.inbox.is_empty() {
            let wait = if self.socks.len() > 1 { 1 } else { WAIT_MS };
            self.socks[0].1.wait_rx(mb.wake.as_fd(), wait);
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&mb.wake, &mut buf);
        }
        mb.sleeping.store(false, Ordering::Relaxed);
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
        let inbox = &self.shared.mailbox(self.id).inbox;
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
        self.pipeline
            .stats_mut()
            .add(Counter::HandoffReceived, n as u64);
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
                    id: me,
                    socks,
                    pipeline,
                    shared,
                    ..
                } = self;
                let ((my_port, io), mut others) = split(socks, i);
                let my_port = *my_port;
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
                            (*me, my_port),
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
        let free = &self.shared.mailbox(self.id).free;
        for h in taken[..n].iter_mut().filter_map(Option::take) {
            let _ = free.push(h.buf);
        }
        self.account(counts);
        n
    }

    fn account(&mut self, c: RoundCounts) {
        self.tx_given += c.tx;
        let s = self.pipeline.stats_mut();
        s.add(Counter::HandoffSent, c.sent);
        s.add(Counter::HandoffDropped, c.dropped);
        s.add(Counter::NoTxPort, c.no_tx_port);
    }

    /// Copies this worker's connection table out for `xdpvsadm -c`.
    pub fn answer_dump(&mut self, now: Tick) {
        self.shared.dumps[self.id].answer(self.pipeline.conns(), now);
    }

    /// Reads the kernel's counters of every socket (a system call each).
    fn read_kernel_stats(&mut self) {
        let mut sum = XdpKernelStats::default();
        for (_, io) in &self.socks {
            if let Some(k) = io.kernel_stats() {
                sum.rx_dropped += k.rx_dropped;
                sum.rx_invalid_descs += k.rx_invalid_descs;
                sum.tx_invalid_descs += k.tx_invalid_descs;
                sum.rx_ring_full += k.rx_ring_full;
                sum.rx_fill_ring_empty_descs += k.rx_fill_ring_empty_descs;
                sum.tx_ring_empty_descs += k.tx_ring_empty_descs;
            }
        }
        self.kernel = sum;
    }

    /// Stores this worker's whole statistics block where the control
    /// thread reads it, with its sockets' ring counters and the kernel's
    /// copied in.
    pub fn publish(&mut self) {
        let rings = self.ring_stats();
        let (k, conns) = (self.kernel, u64::from(self.pipeline.conns().len()));
        let s = self.pipeline.stats_mut();
        s.set(Counter::Conns, conns);
        match rings {
            Some(r) => {
                s.set(Counter::RxRing, r.rx);
                s.set(Counter::Tx, r.tx);
                s.set(Counter::TxRingFull, r.tx_ring_full);
                s.set(Counter::NoFreeFrame, r.no_free_frame);
                s.set(Counter::InjectOversize, r.inject_oversize);
                s.set(Counter::FillEmpty, r.fill_empty);
                s.set(Counter::InvalidDescriptors, r.invalid_descriptors);
                s.set(Counter::LostChunks, r.lost_chunks);
                s.set(Counter::RxKicks, r.rx_kicks);
                s.set(Counter::TxKicks, r.tx_kicks);
            }
            None => {
                s.set(Counter::RxRing, self.rx_taken);
                s.set(Counter::Tx, self.tx_given);
            }
        }
        s.set(Counter::KernelRxDropped, k.rx_dropped);
        s.set(Counter::KernelRxInvalidDescs, k.rx_invalid_descs);
        s.set(Counter::KernelTxInvalidDescs, k.tx_invalid_descs);
        s.set(Counter::KernelRxRingFull, k.rx_ring_full);
        s.set(Counter::KernelRxFillRingEmpty, k.rx_fill_ring_empty_descs);
        s.set(Counter::KernelTxRingEmpty, k.tx_ring_empty_descs);
        self.shared.publish(self.id, self.pipeline.stats());
    }

    /// The sockets' own counters summed, where every socket keeps them.
    fn ring_stats(&self) -> Option<XskStats> {
        let mut sum = XskStats::default();
        for (_, io) in &self.socks {
            let r = io.socket_stats()?;
            sum.rx += r.rx;
            sum.tx += r.tx;
            sum.tx_ring_full += r.tx_ring_full;
            sum.no_free_frame += r.no_free_frame;
            sum.inject_oversize += r.inject_oversize;
            sum.fill_empty += r.fill_empty;
            sum.invalid_descriptors += r.invalid_descriptors;
            sum.lost_chunks += r.lost_chunks;
            sum.rx_kicks += r.rx_kicks;
            sum.tx_kicks += r.tx_kicks;
        }
        Some(sum)
    }
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
