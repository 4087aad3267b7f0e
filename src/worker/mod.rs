//! The per-core workers: busy-poll loops that move frames from AF_XDP
//! sockets through a [`Pipeline`] and back out.
//!
//! One worker serves one RX queue number: queue q of every interface that
//! has one, a socket each. Its loop ([`Worker::round`]) has no lock, no
//! allocation and no system call per packet: pick up a new snapshot; take
//! what other workers handed over; per socket, receive a batch, hand the
//! frames another worker owns to it ([`handover`]), run the rest through
//! the pipeline and route each out (`route.rs`); then service the rings.
//! After each round it expires connections (bounded work that grows with
//! the round's new connections, [`Worker::step`]), publishes its
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

pub use dump::{ConnEntry, ConnSlice, SLICE};
pub use handover::{Chain, HANDOFF_BYTES, HANDOFF_SLOTS, Handoff, Mailbox, owner};
pub use io::FrameIo;
pub use shared::{ConnListing, Shared};

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::config::Idle;
use crate::frame::{MAX_BATCH, Tick, Verdict};
use crate::pipeline::Pipeline;
use crate::stats::Counter;
use crate::xsk::{XdpKernelStats, XskStats};
use handover::{Route, Steer, route, steer};
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
    /// The kernel's socket counters as last read (once a second), in
    /// [`KERNEL_COUNTERS`] order.
    kernel: [u64; KERNEL_COUNTERS.len()],
    /// Fault injection ([`Worker::panic_after`]): panic once this many
    /// frames were received.
    panic_after: Option<u64>,
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
            kernel: [0; KERNEL_COUNTERS.len()],
            panic_after: None,
        }
    }

    /// Fault injection, for the tests of what a dead worker does to the
    /// daemon (`XDPVS_FAULT_WORKER_PANIC`, see [`crate::daemon`]): the
    /// worker panics in [`Worker::run`] once it has received `frames`
    /// frames. Checked once per round that received any, so it costs the
    /// loop nothing measurable and nothing at all when unset.
    pub fn panic_after(&mut self, frames: u64) {
        self.panic_after = Some(frames);
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
            let work = self.step(now);
            rounds = rounds.wrapping_add(1);
            let s = self.pipeline.stats_mut();
            s.inc(Counter::Rounds);
            if work == 0 {
                s.inc(Counter::IdleRounds);
            }
            if now != last_now {
                self.read_kernel_stats();
                last_now = now;
            }
            if work > 0 {
                if let Some(n) = self.panic_after
                    && self.rx_taken >= n
                {
                    panic!("fault injection: panic after {n} received frames");
                }
                empty = 0;
                if rounds.is_multiple_of(PUBLISH_EVERY) {
                    self.publish();
                }
                continue;
            }
            empty = empty.saturating_add(1);
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

    /// What [`Worker::run`] does each time round at second `now`: answer
    /// a `-c` request, run [`Worker::round`], then expire connections with
    /// a budget that grows with the insertions of the round
    /// ([`Pipeline::expire_round`]), so that reclaiming keeps up with any
    /// rate of new flows. Returns the frames handled.
    pub fn step(&mut self, now: Tick) -> usize {
        if self.shared.dumps[self.id].requested.load(Ordering::Relaxed) {
            self.answer_dump(now);
        }
        let work = self.round(now);
        self.pipeline.expire_round(now);
        work
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
                    let chained = !snap.steer_history.is_empty();
                    for i in 0..frames.len() {
                        let data = frames[i].data();
                        let to = if chained {
                            let probe = |d: &[u8]| pipeline.probe(d, now);
                            match route(snap, probe, data, Chain::received(*me), *me, workers, now)
                            {
                                Route::Here => None,
                                Route::To(w, c) => Some((w, c)),
                            }
                        } else {
                            match steer(snap, data, *me, workers) {
                                Steer::Here => None,
                                Steer::To(w) => {
                                    Some((w, Chain::sent(*me, w, snap.steering.generation)))
                                }
                            }
                        };
                        match to {
                            None => {
                                frames.swap(i, here);
                                verdicts.swap(i, here);
                                here += 1;
                            }
                            Some((w, chain)) => {
                                if shared.mailbox(w).send(data, my_port, false, chain) {
                                    counts.sent += 1;
                                    counts.chained += u64::from(chain.along(snap));
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
        if self.shared.workers() > 1 && !self.pipeline.snapshot().steer_history.is_empty() {
            self.pass_on(&mut taken[..n], now, &mut counts);
        }
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

    /// Sends the handed-in frames that an older owner may hold the
    /// connection of on along their chain ([`handover::route`]); their
    /// buffers go back to this worker's pool.
    fn pass_on(&mut self, taken: &mut [Option<Handoff>], now: Tick, counts: &mut RoundCounts) {
        let (me, workers) = (self.id, self.shared.workers());
        let snap = self.pipeline.snapshot();
        let free = &self.shared.mailbox(me).free;
        for slot in taken.iter_mut() {
            let Some(h) = slot.as_ref().filter(|h| !h.transmit) else {
                continue;
            };
            let data = &h.buf[..usize::from(h.len)];
            let probe = |d: &[u8]| self.pipeline.probe(d, now);
            let Route::To(w, chain) = route(snap, probe, data, h.chain, me, workers, now) else {
                continue;
            };
            if self.shared.mailbox(w).send(data, h.port, false, chain) {
                counts.sent += 1;
                counts.chained += u64::from(chain.along(snap));
            } else {
                counts.dropped += 1;
            }
            if let Some(h) = slot.take() {
                let _ = free.push(h.buf);
            }
        }
    }

    fn account(&mut self, c: RoundCounts) {
        self.tx_given += c.tx;
        let s = self.pipeline.stats_mut();
        s.add(Counter::HandoffSent, c.sent);
        s.add(Counter::HandoffDropped, c.dropped);
        s.add(Counter::HandoffChained, c.chained);
        s.add(Counter::NoTxPort, c.no_tx_port);
    }

    /// Copies the next slice of this worker's connection table out for
    /// `xdpvsadm -c`.
    pub fn answer_dump(&mut self, now: Tick) {
        self.shared.dumps[self.id].answer(self.pipeline.conns(), now);
    }

    /// Reads the kernel's counters of every socket (a system call each).
    fn read_kernel_stats(&mut self) {
        self.kernel = [0; KERNEL_COUNTERS.len()];
        for (_, io) in &self.socks {
            let Some(k) = io.kernel_stats() else { continue };
            for (v, (_, get)) in self.kernel.iter_mut().zip(KERNEL_COUNTERS) {
                *v += get(&k);
            }
        }
    }

    /// Stores this worker's whole statistics block where the control
    /// thread reads it, with its sockets' ring counters and the kernel's
    /// copied in.
    pub fn publish(&mut self) {
        // Both families' tables (IPv6 has its own for now).
        let (v4, v6) = (self.pipeline.conns(), self.pipeline.conns6());
        let conns = u64::from(v4.len() + v6.len());
        let unreplied = u64::from(v4.unreplied() + v6.unreplied());
        let mut rings = [0u64; RING_COUNTERS.len()];
        let mut counted = true;
        for (_, io) in &self.socks {
            let Some(r) = io.socket_stats() else {
                counted = false;
                break;
            };
            for (v, (_, get)) in rings.iter_mut().zip(RING_COUNTERS) {
                *v += get(&r);
            }
        }
        let s = self.pipeline.stats_mut();
        s.set(Counter::Conns, conns);
        s.set(Counter::ConnsUnreplied, unreplied);
        if counted {
            for (&v, (c, _)) in rings.iter().zip(RING_COUNTERS) {
                s.set(c, v);
            }
        } else {
            // Sockets without counters of their own (the tests'): what
            // this worker saw.
            s.set(Counter::RxRing, self.rx_taken);
            s.set(Counter::Tx, self.tx_given);
        }
        for (&v, (c, _)) in self.kernel.iter().zip(KERNEL_COUNTERS) {
            s.set(c, v);
        }
        self.shared.publish(self.id, self.pipeline.stats());
    }
}

/// A block counter and how to read it from a socket's counters.
type Source<T> = (Counter, fn(&T) -> u64);

/// The sockets' own counters, summed over a worker's sockets into these.
const RING_COUNTERS: [Source<XskStats>; 10] = [
    (Counter::RxRing, |s| s.rx),
    (Counter::Tx, |s| s.tx),
    (Counter::TxRingFull, |s| s.tx_ring_full),
    (Counter::NoFreeFrame, |s| s.no_free_frame),
    (Counter::InjectOversize, |s| s.inject_oversize),
    (Counter::FillEmpty, |s| s.fill_empty),
    (Counter::InvalidDescriptors, |s| s.invalid_descriptors),
    (Counter::LostChunks, |s| s.lost_chunks),
    (Counter::RxKicks, |s| s.rx_kicks),
    (Counter::TxKicks, |s| s.tx_kicks),
];

/// The kernel's `XDP_STATISTICS`, summed likewise.
const KERNEL_COUNTERS: [Source<XdpKernelStats>; 6] = [
    (Counter::KernelRxDropped, |k| k.rx_dropped),
    (Counter::KernelRxInvalidDescs, |k| k.rx_invalid_descs),
    (Counter::KernelTxInvalidDescs, |k| k.tx_invalid_descs),
    (Counter::KernelRxRingFull, |k| k.rx_ring_full),
    (Counter::KernelRxFillRingEmpty, |k| {
        k.rx_fill_ring_empty_descs
    }),
    (Counter::KernelTxRingEmpty, |k| k.tx_ring_empty_descs),
];

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
    /// Seconds since the start, plus one (tick 0 is never "now"). Each
    /// tick is one whole second long: an entry's timeout of T ticks is
    /// T - 1 to T seconds, whatever second it was set in. (`max(1)`
    /// instead of `+ 1` made the first tick two seconds long, so the
    /// flows of the first two seconds were all held a second longer.)
    pub fn now(&self) -> Tick {
        (self.start.elapsed().as_secs() as Tick).saturating_add(1)
    }
}
