//! Steering rules: which worker owns a NAT or persistent packet, as a
//! value of its own, and the short history of the rules a snapshot
//! replaced (see `worker::handover` for how workers use them).
//!
//! A [`SteerRule`] holds exactly the parts of a snapshot that decide a
//! packet's owner: whether ownership is by client address alone
//! (`by_client`) and under which mask, which services are steered, the
//! VIPs and the NAT real servers. [`super::ServiceTable::next_snapshot_at`]
//! builds the new snapshot's rule and compares it with the previous one:
//! equal, the previous `Arc` is kept (same generation); different, the
//! previous rule goes to the front of [`Snapshot::steer_history`] with the
//! time it was superseded. An old rule is dropped once no connection
//! owned under it can still be alive: [`Superseded::keep`] seconds after
//! it was superseded or after the last time a worker found a connection
//! through it ([`SteerRule::mark_used`]), whichever is later; at most
//! [`HISTORY_CAP`] are kept.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::conn::FlowKey;
use crate::frame::Tick;
use crate::wire::ipv4::PROTO_TCP;

/// Superseded rules a snapshot keeps at most. More changes than this
/// within a timeout lose the oldest (its connections then miss).
pub const HISTORY_CAP: usize = 8;

/// Seconds an expected FTP data connection waits for its first packet
/// (the pipeline's expectations; an old rule outlives them too).
pub const EXPECT_TIMEOUT: Tick = 60;

/// Seconds an old rule is kept beyond the longest timeout, for clocks that
/// tick between a worker's lookup and the control thread's check.
pub const KEEP_MARGIN: Tick = 2;

/// The owner of a packet under one snapshot's services (module docs).
#[derive(Debug)]
pub struct SteerRule {
    /// Increases with every change of rule; a hand-over chain only ever
    /// moves to older generations, so it cannot loop.
    pub generation: u64,
    /// By the client's (masked) address alone rather than address and port.
    pub by_client: bool,
    /// The widest persistence netmask, as bits (with `by_client`).
    pub mask: u32,
    /// Some packet is steered at all (with several workers).
    pub handover: bool,
    /// (proto, IPv4 VIP, port) → whether its packets are steered (the
    /// service has a NAT real server, or is persistent with `by_client`).
    pub(super) services: hashbrown::HashMap<(u8, Ipv4Addr, u16), bool, foldhash::fast::FixedState>,
    /// IPv4 VIP → its persistent TCP port-21 service's flag, for
    /// `Snapshot::service_v4`'s FTP rule.
    pub(super) ftp_v4: hashbrown::HashMap<Ipv4Addr, bool, foldhash::fast::FixedState>,
    pub(super) vips: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
    pub(super) nat_rips: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
    /// The last tick a worker found a connection through this rule while
    /// it was an old one.
    last_used: AtomicU32,
}

impl PartialEq for SteerRule {
    /// Same ownership for every packet (the generation and use aside):
    /// two rules that steer nothing are equal (a DR/TUN-only director's
    /// changes keep no history); otherwise the parts [`SteerRule::owner`]
    /// reads (the VIPs only with `by_client`).
    fn eq(&self, o: &SteerRule) -> bool {
        if !self.handover && !o.handover {
            return true;
        }
        self.by_client == o.by_client
            && (!self.by_client || self.mask == o.mask && self.vips == o.vips)
            && self.handover == o.handover
            && self.services == o.services
            && self.ftp_v4 == o.ftp_v4
            && self.nat_rips == o.nat_rips
    }
}

/// Where a packet goes under a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Not steered: it stays with the worker RSS gave it to.
    Received,
    /// The worker with this hash of the client (`worker::owner`'s input).
    Client([u8; 4], u16),
}

impl SteerRule {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        generation: u64,
        by_client: bool,
        mask: u32,
        handover: bool,
        services: hashbrown::HashMap<(u8, Ipv4Addr, u16), bool, foldhash::fast::FixedState>,
        ftp_v4: hashbrown::HashMap<Ipv4Addr, bool, foldhash::fast::FixedState>,
        vips: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
        nat_rips: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState>,
    ) -> SteerRule {
        SteerRule {
            generation,
            by_client,
            mask,
            handover,
            services,
            ftp_v4,
            vips,
            nat_rips,
            last_used: AtomicU32::new(0),
        }
    }

    /// The service entry for a packet to `addr:port`, looked up as
    /// `Snapshot::service_v4` does (exact, FTP data ports, port 0).
    #[inline(always)]
    fn service(&self, proto: u8, addr: Ipv4Addr, port: u16) -> Option<bool> {
        self.services
            .get(&(proto, addr, port))
            .or_else(|| {
                if proto == PROTO_TCP && (port == 20 || port >= 1024) {
                    self.ftp_v4.get(&addr)
                } else {
                    None
                }
            })
            .or_else(|| self.services.get(&(proto, addr, 0)))
            .copied()
    }

    /// Who owns a packet with 5-tuple `k` under this rule
    /// (`worker::handover`'s module docs).
    #[inline(always)]
    pub fn owner(&self, k: &FlowKey<Ipv4Addr>) -> Owner {
        let key = |addr: Ipv4Addr, port: u16| {
            if self.by_client {
                Owner::Client((addr.to_bits() & self.mask).to_be_bytes(), 0)
            } else {
                Owner::Client(addr.octets(), port)
            }
        };
        if let Some(steered) = self.service(k.proto, k.daddr, k.dport) {
            if steered {
                key(k.saddr, k.sport)
            } else {
                Owner::Received
            }
        } else if self.nat_rips.contains(&k.saddr) {
            key(k.daddr, k.dport)
        } else if self.by_client && self.vips.contains(&k.daddr) {
            // Perhaps an FTP data connection the helper expects.
            key(k.saddr, k.sport)
        } else {
            Owner::Received
        }
    }

    /// Notes that a worker found a connection through this (old) rule at
    /// `now`: it is kept for another timeout.
    #[inline]
    pub fn mark_used(&self, now: Tick) {
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    pub fn last_used(&self) -> Tick {
        self.last_used.load(Ordering::Relaxed)
    }
}

/// A rule some later snapshot replaced.
#[derive(Debug, Clone)]
pub struct Superseded {
    pub rule: Arc<SteerRule>,
    /// When it was replaced.
    pub at: Tick,
    /// Seconds a connection owned under it can live without a packet: the
    /// longest TCP, UDP, persistence or FTP expectation timeout then or
    /// since, plus [`KEEP_MARGIN`].
    pub keep: Tick,
}

impl Superseded {
    /// Whether a connection owned under this rule may still be alive.
    #[inline]
    pub fn live(&self, now: Tick) -> bool {
        let last = self.at.max(self.rule.last_used());
        now <= last.saturating_add(self.keep)
    }
}
