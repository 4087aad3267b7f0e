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
//! A frame that the pipeline sends out of another interface than the one
//! it came in on (a two-armed director) is copied into this worker's own
//! socket on that interface: one copy (two UMEMs), same core, no queue.
//! Only when this worker has no socket there (an interface with fewer
//! queues) does it go through the inbox of a worker that has one.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam::queue::ArrayQueue;

use crate::pipeline::flow_key;
use crate::service::Snapshot;

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
    pub(super) fn send(&self, data: &[u8], port: u8, transmit: bool) -> bool {
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

/// The owner of a frame by the module docs' rule. Only the frames the
/// pipeline parses as IPv4 TCP/UDP (not fragments) are looked at; anything
/// else stays (the pipeline counts what it cannot handle).
#[inline]
pub(super) fn steer(snap: &Snapshot, data: &[u8], me: usize, workers: usize) -> Steer {
    let Some(k) = flow_key(data) else {
        return Steer::Here;
    };
    // By the client's (masked) address alone, or by its address and port.
    let by_client = snap.steer_by_client;
    let key = |addr: Ipv4Addr, port: u16| {
        if by_client {
            let a = addr.to_bits() & snap.steer_mask;
            owner(a.to_be_bytes(), 0, workers)
        } else {
            owner(addr.octets(), port, workers)
        }
    };
    let w = if let Some(svc) = snap.service_v4(k.proto, k.daddr, k.dport) {
        if !(svc.has_nat || by_client && svc.persistence_timeout > 0) {
            return Steer::Here;
        }
        key(k.saddr, k.sport)
    } else if snap.is_nat_real_v4(k.saddr) {
        key(k.daddr, k.dport)
    } else if by_client && snap.is_vip_v4(k.daddr) {
        // Perhaps an FTP data connection the helper expects.
        key(k.saddr, k.sport)
    } else {
        return Steer::Here;
    };
    if w == me { Steer::Here } else { Steer::To(w) }
}
