//! Hand-over: frames that arrive at a worker other than the one that
//! owns their connection are copied to the owner.
//!
//! # NAT on every core: by a hash both directions share
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
//! A frame is examined as the pipeline parses it: untagged or with one
//! 802.1Q/802.1ad tag (a VLAN-tagged NAT frame is handed over like an
//! untagged one); fragments and anything else stay where they arrived.
//!
//! # Ownership that does not move
//!
//! The rule above is a function of the services: adding the first
//! persistent or FTP NAT service switches it to the client-address rule,
//! a wider netmask changes every owner, adding a NAT real server to a DR
//! service starts steering its packets — even on an unrelated VIP. A
//! connection lives in the table of its owner *when it was opened*, so
//! ownership of an existing connection must not depend on later changes.
//! The rule is therefore a value of its own (`service::SteerRule`), with a
//! generation, and a snapshot keeps the rules it superseded
//! (`Snapshot::steer_history`, newest first, at most `HISTORY_CAP`). An
//! old rule is kept as long as a connection opened under it can be alive:
//! the longest TCP, UDP, persistence or expectation timeout after it was
//! superseded or after a worker last found a connection through it,
//! whichever is later (so a long download keeps its rule while it runs);
//! the control thread drops it from the next snapshot.
//!
//! With no old rule, hand-over is exactly the rule above, as cheap as it
//! was. With old rules, a frame walks a short chain (`route`, its place
//! carried in [`Chain`]):
//!
//! 1. the worker RSS gave it to (`origin`) sends it to its owner under the
//!    current rule (`first`); "not steered" under any rule means `origin`;
//! 2. an owner whose table holds the frame's connection — or the
//!    persistence template or FTP expectation its first packet needs —
//!    processes it (`Pipeline::probe`); so does the current owner for a
//!    TCP SYN to a service without persistence, which needs nothing from
//!    the past, and any worker for a frame no older rule sends elsewhere;
//! 3. otherwise it goes on to its owner under the next older rule that
//!    names a worker not asked yet; a chain only moves to older
//!    generations, so it cannot loop and has at most `HISTORY_CAP` hops;
//! 4. the last in the chain decides (drops what has no connection, as
//!    any owner would) — except for a frame the pipeline would open a
//!    connection for (UDP to a service, a SYN to a persistent service):
//!    that one goes back to `first` marked `last`, so new connections are
//!    always opened under the current rule and old rules can expire.
//!
//! The probe costs a second connection lookup, and only for frames whose
//! owner some live old rule names differently; a connection that outlived
//! a change costs one or two extra hops per packet for the rest of its
//! life. A persistent client's new connections follow its template to the
//! old owner as long as the template lives there (its affinity kept);
//! when the template expires the next one is made at the current owner.
//! More than `HISTORY_CAP` steering changes within one timeout lose the
//! oldest rule: its remaining connections then miss like any unknown
//! packet.
//!
//! The alternative, a table of templates and expectations shared by all
//! workers so that ownership could stay per flow, would put a lock or a
//! shared hash table on every connection start and still not cover a
//! service that gains its first NAT real server (its DR flows start being
//! steered); the chain touches nothing on the fast path.
//!
//! A frame that the pipeline sends out of another interface than the one
//! it came in on (a two-armed director) is copied into this worker's own
//! socket on that interface: one copy (two UMEMs), same core, no queue.
//! Only when this worker has no socket there (an interface with fewer
//! queues) does it go through the inbox of a worker that has one.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam::queue::ArrayQueue;

use crate::frame::Tick;
use crate::pipeline::{Probe, flow_key};
use crate::service::{Owner, Snapshot, SteerRule};

/// Bytes of one hand-over buffer: a full UMEM frame's worth.
pub const HANDOFF_BYTES: usize = 2048;
/// Hand-over buffers per worker (its inbox's capacity): 8 MiB, about
/// 10 ms of hand-overs at 400 k packets/s, for an owner that the kernel
/// did not schedule for a while (it is a ring like the RX ring).
pub const HANDOFF_SLOTS: usize = 4096;

/// A frame on its way to another worker.
pub struct Handoff {
    pub(super) buf: Box<[u8; HANDOFF_BYTES]>,
    pub(super) len: u16,
    /// The port it was received on (to process) or is to leave by (to
    /// transmit).
    pub(super) port: u8,
    /// Transmit as it is (already processed) rather than process.
    pub(super) transmit: bool,
    /// Where its owner chain stands (to process).
    pub(super) chain: Chain,
}

/// A worker's inbox and the pool of free buffers senders fill for it.
pub struct Mailbox {
    pub(super) inbox: ArrayQueue<Handoff>,
    pub(super) free: ArrayQueue<Box<[u8; HANDOFF_BYTES]>>,
    /// Set while the owner sleeps in poll(2) (`idle = "wait"`); a sender
    /// then writes `wake`, the only system call hand-over ever makes, and
    /// only to a worker with nothing else to do.
    pub(super) sleeping: AtomicBool,
    pub(super) wake: OwnedFd,
}

impl Mailbox {
    pub(super) fn new(slots: usize) -> Mailbox {
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
    pub(super) fn send(&self, data: &[u8], port: u8, transmit: bool, chain: Chain) -> bool {
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
            chain,
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
pub(super) enum Steer {
    Here,
    To(usize),
}

/// The owner of a frame by the current rule (module docs), for a
/// snapshot that keeps no old rule. Only the frames the pipeline parses
/// as IPv4 TCP/UDP (not fragments; untagged or with one 802.1Q tag) are
/// looked at; anything else stays (the pipeline counts what it cannot
/// handle).
#[inline(always)]
pub(super) fn steer(snap: &Snapshot, data: &[u8], me: usize, workers: usize) -> Steer {
    let Some(k) = flow_key(data) else {
        return Steer::Here;
    };
    match snap.steering.owner(&k) {
        Owner::Received => Steer::Here,
        Owner::Client(a, p) => match owner(a, p, workers) {
            w if w == me => Steer::Here,
            w => Steer::To(w),
        },
    }
}

/// Where a frame stands on its way along the owners under the current
/// and the old steering rules (module docs, "Ownership that does not
/// move").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The worker RSS gave it to: "not steered" under any rule means it.
    pub(super) origin: u16,
    /// Its owner under the newest rule, where a connection is opened.
    pub(super) first: u16,
    /// The generation of the rule under which the worker it is sent to
    /// owns it; `u64::MAX` while it is with `origin`, not yet steered.
    pub(super) generation: u64,
    /// Processed where it arrives: the chain found no older owner with its
    /// state and sent it back to `first`, which opens its connection.
    pub(super) last: bool,
}

impl Chain {
    /// A frame just received by worker `me`.
    pub(super) fn received(me: usize) -> Chain {
        Chain {
            origin: me as u16,
            first: me as u16,
            generation: u64::MAX,
            last: false,
        }
    }

    /// Whether a frame with this state is on its way to an old owner, or
    /// back to the current one (counted as `handoff_chained`).
    pub(super) fn along(&self, snap: &Snapshot) -> bool {
        self.last || self.generation < snap.steering.generation
    }

    /// Sent by `me` to its owner `to` under rule `generation`, by a worker
    /// with no old rule.
    pub(super) fn sent(me: usize, to: usize, generation: u64) -> Chain {
        Chain {
            origin: me as u16,
            first: to as u16,
            generation,
            last: false,
        }
    }
}

/// Where a frame goes along its owner chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Here,
    To(usize, Chain),
}

/// Where worker `me` sends a frame with chain state `chain`, the snapshot
/// keeping old rules (module docs). `probe` asks this worker's table; it
/// is only called where the answer matters (some older rule names another
/// worker, or this is an old owner). Out of line: the fast path
/// ([`steer`]) stays as small as it was.
#[inline(never)]
pub(super) fn route(
    snap: &Snapshot,
    probe: impl FnOnce(&[u8]) -> Probe,
    data: &[u8],
    mut chain: Chain,
    me: usize,
    workers: usize,
    now: Tick,
) -> Route {
    if chain.last {
        return Route::Here;
    }
    let Some(k) = flow_key(data) else {
        return Route::Here;
    };
    let origin = usize::from(chain.origin);
    let at = |r: &SteerRule| match r.owner(&k) {
        Owner::Received => origin,
        Owner::Client(a, p) => owner(a, p, workers),
    };
    if chain.generation == u64::MAX {
        let w = at(&snap.steering);
        chain.first = w as u16;
        chain.generation = snap.steering.generation;
        if w != me {
            return Route::To(w, chain);
        }
    }
    // This worker owns the frame under rule `chain.generation`; the next
    // older rule that names another worker not asked yet:
    let first = usize::from(chain.first);
    let older = std::iter::once(&snap.steering)
        .chain(
            snap.steer_history
                .iter()
                .filter(|h| h.live(now))
                .map(|h| &h.rule),
        )
        .filter(|r| r.generation < chain.generation)
        .map(|r| (at(r), r.generation))
        .find(|&(w, _)| w != me && w != first);
    if first == me && older.is_none() {
        return Route::Here;
    }
    match probe(data) {
        Probe::Found => {
            if first != me
                && let Some(h) = snap
                    .steer_history
                    .iter()
                    .find(|h| h.rule.generation == chain.generation)
            {
                h.rule.mark_used(now);
            }
            Route::Here
        }
        Probe::Start => Route::Here,
        Probe::Missing { opens } => match older {
            Some((w, generation)) => Route::To(
                w,
                Chain {
                    generation,
                    ..chain
                },
            ),
            None if opens && first != me => Route::To(
                first,
                Chain {
                    last: true,
                    ..chain
                },
            ),
            None => Route::Here,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::config::{Forward, Protocol, RealConfig, ServiceConfig};
    use crate::service::{HISTORY_CAP, Port, ServiceTable};

    /// An Ethernet + IPv4 + TCP frame from `src:sport` to `dst:dport`.
    fn frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x10;
        f
    }

    /// A NAT service and a persistent one whose netmask changes again and
    /// again: a snapshot with a full history of rules that disagree.
    fn snapshot_with_history() -> Snapshot {
        let mut t = ServiceTable::new(
            vec![Port {
                mac: [2, 0, 0, 0, 2, 2],
                mtu: 1500,
                complete_checksums: false,
            }],
            None,
            Default::default(),
        );
        let nat: SocketAddr = "198.18.1.3:80".parse().unwrap();
        t.add_service(&ServiceConfig::new(Protocol::Tcp, nat, "rr"))
            .unwrap();
        let real = RealConfig {
            addr: "198.18.2.31:8080".parse().unwrap(),
            forward: Forward::Nat,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        t.add_dest(Protocol::Tcp, nat, &real).unwrap();
        let mut snap = t.snapshot();
        let p: SocketAddr = "198.18.1.5:80".parse().unwrap();
        let mut cfg = ServiceConfig::new(Protocol::Tcp, p, "rr");
        cfg.persistence_timeout = 300;
        t.add_service(&cfg).unwrap();
        for (now, bits) in (1..).zip([32u32, 24, 16, 28, 8, 20, 30, 12, 26, 18]) {
            cfg.persistence_netmask = Ipv4Addr::from_bits(u32::MAX << (32 - bits));
            t.edit_service(&cfg).unwrap();
            snap = t.next_snapshot_at(&snap, now);
        }
        assert_eq!(snap.steer_history.len(), HISTORY_CAP);
        snap
    }

    /// Follows a frame from worker `rx` with every table answering
    /// `probe`: the workers it visits.
    fn walk(snap: &Snapshot, data: &[u8], rx: usize, workers: usize, probe: Probe) -> Vec<usize> {
        let (mut at, mut chain) = (rx, Chain::received(rx));
        let mut visited = vec![rx];
        loop {
            match route(snap, |_| probe, data, chain, at, workers, 20) {
                Route::Here => return visited,
                Route::To(w, c) => {
                    assert!(visited.len() <= HISTORY_CAP + 3, "a loop: {visited:?}");
                    (at, chain) = (w, c);
                    visited.push(w);
                }
            }
        }
    }

    /// However the rules disagree, a chain ends within its bound; a frame
    /// that would open a connection ends at its owner under the current
    /// rule; one found at once stays with that owner.
    #[test]
    fn chains_end_and_new_connections_open_at_the_current_owner() {
        let snap = snapshot_with_history();
        for workers in [2, 3, 4] {
            for host in 0..32u8 {
                for sport in [1000u16, 1001, 40000] {
                    let client = [198, 18, 0, host];
                    let to_vip = frame(client, sport, [198, 18, 1, 3], 80);
                    let reply = frame([198, 18, 2, 31], 8080, client, sport);
                    let k = flow_key(&to_vip).unwrap();
                    let Owner::Client(a, p) = snap.steering.owner(&k) else {
                        panic!("NAT is steered");
                    };
                    let current = owner(a, p, workers);
                    for rx in 0..workers {
                        for d in [&to_vip, &reply] {
                            let opens = walk(&snap, d, rx, workers, Probe::Missing { opens: true });
                            assert_eq!(opens.last(), Some(&current), "{opens:?}");
                            let found = walk(&snap, d, rx, workers, Probe::Found);
                            assert_eq!(found.last(), Some(&current), "{found:?}");
                            assert!(found.len() <= 2);
                            walk(&snap, d, rx, workers, Probe::Missing { opens: false });
                        }
                    }
                }
            }
        }
    }
}
