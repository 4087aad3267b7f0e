//! One address family's connection table and the work on it that does not
//! depend on the family: classifying a packet against it, the state
//! machine, inserting (with the flood defences and reclaiming), ending
//! and reaping connections, and finding a connection's real server.
//!
//! A worker holds one [`Flows`] per family (`State::v4`, `State::v6`):
//! issue 16 wants one table for both families later; until then the
//! IPv6 table is a second, smaller one ([`super::V6_SHARE`]). Everything
//! here takes the worker's counters as an argument, so that both tables
//! count into the one block the worker publishes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::parse::{TCP_ACK, TCP_SYN};
use crate::conn::defense::{DROP_PROBES, EVICT_CHOICES, EVICT_PROBES, PPM, secure_transition};
use crate::conn::{
    self, Addr, Conn, ConnTable, Defense, Direction, FlowKey, InsertError, Kind, Mode, Side,
    TcpState,
};
use crate::dest::Dest;
use crate::frame::{DropReason, Tick};
use crate::sched::Flow;
use crate::service::{Service, Snapshot};
use crate::stats::{Counter, WorkerStats};
use crate::wire::ipv4::PROTO_TCP;

/// Entries examined at most by a new connection that finds the table (or
/// the unreplied share) full, reclaiming expired ones before it is
/// refused.
pub const RECLAIM_BUDGET: usize = 64;

/// What a TCP or UDP packet is, decided before anything is changed.
pub(super) enum Packet {
    /// A packet of live connection `i`, from `side`.
    Established(u32, Side),
    /// A new flow. The connection on its 5-tuple to end first, if any:
    /// expired but not reaped yet, or ended and reused by a new SYN.
    New(Option<u32>),
    /// Its IPv4 header checksum is wrong (IPv6 has none).
    BadChecksum,
}

/// An address family the pipeline forwards: what the family-independent
/// code needs to know of its addresses.
pub(super) trait Family: Addr + Into<IpAddr> {
    /// The address, if `a` is of this family (a real server's).
    fn of(a: IpAddr) -> Option<Self>;

    /// Client address `self` under service `svc`'s persistence mask: its
    /// netmask for IPv4, its prefix length for IPv6 (`ipvsadm -M`).
    fn masked(self, svc: &Service) -> Self;
}

impl Family for Ipv4Addr {
    #[inline]
    fn of(a: IpAddr) -> Option<Ipv4Addr> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    #[inline]
    fn masked(self, svc: &Service) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.to_bits() & svc.persistence_netmask.to_bits())
    }
}

impl Family for Ipv6Addr {
    #[inline]
    fn of(a: IpAddr) -> Option<Ipv6Addr> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }

    #[inline]
    fn masked(self, svc: &Service) -> Ipv6Addr {
        prefix6(self, svc.persistence_prefix6)
    }
}

/// The first `len` bits of `a` (all of it from 128 on).
#[inline]
fn prefix6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let len = u32::from(len.min(128));
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    Ipv6Addr::from_bits(a.to_bits() & mask)
}

/// One family's connections, and the entries inserted since the last
/// expiry pass.
pub(super) struct Flows<A> {
    pub conns: ConnTable<A>,
    pub inserted: u32,
}

/// Why a connection's packet has no real server to go to.
pub(super) enum NoDest {
    /// The connection has been ended: schedule the packet as a new flow's
    /// (`expire_nodest_conn`).
    Reschedule,
    /// Drop the packet for this reason.
    Drop(DropReason),
}

impl<A: Family> Flows<A> {
    pub fn new(capacity: u32, now: Tick) -> Flows<A> {
        Flows {
            conns: ConnTable::new(capacity, now),
            inserted: 0,
        }
    }

    /// What a TCP or UDP packet with `key` and `tcp_flags` (hashed
    /// `hash`) is to this table (nothing is changed yet).
    #[inline]
    pub fn classify(&self, key: &FlowKey<A>, tcp_flags: u8, hash: u64, now: Tick) -> Packet {
        match self.conns.lookup(key, hash) {
            Some((i, Side::Client)) if self.is_reused(i, tcp_flags) => Packet::New(Some(i)),
            Some((i, side)) if self.conns.get(i).expires() > now => Packet::Established(i, side),
            Some((i, _)) => Packet::New(Some(i)),
            None => Packet::New(None),
        }
    }

    /// Whether a client's SYN (without ACK) starts a new connection on
    /// the 5-tuple of connection `i`, as IPVS's `is_new_conn_expected`
    /// decides with `conn_reuse_mode` 3: the old one is in TIME_WAIT or
    /// CLOSE, or, seen from one side only (DR, TUN), in FIN_WAIT — its
    /// client has closed, so a SYN can only be a new connection. A
    /// connection controlled by a persistence template is not reused: its
    /// template would send the new one to the same server anyway.
    #[inline]
    pub fn is_reused(&self, i: u32, tcp_flags: u8) -> bool {
        if tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
            return false;
        }
        let c = self.conns.get(i);
        if c.proto() != PROTO_TCP || c.kind() != Kind::Connection || c.is_controlled() {
            return false;
        }
        match c.tcp_state() {
            TcpState::TimeWait | TcpState::Close => true,
            TcpState::FinWait => c.is_input_only(),
            _ => false,
        }
    }

    /// Whether a packet with `tcp_flags` is a client's SYN (without ACK)
    /// on connection `i`, whose real server is quiescent (weight 0): with
    /// `expire_nodest_conn`, IPVS reschedules it (`ip_vs_in`).
    #[inline]
    pub fn syn_to_quiescent(&self, snap: &Snapshot, i: u32, tcp_flags: u8) -> bool {
        tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            && snap
                .dest(self.conns.get(i).dest())
                .is_some_and(|d| d.weight == 0)
    }

    /// The real server of live connection `i` for a packet from `side`.
    /// Replies of an out-of-service server still go back to the client
    /// (IPVS's `ip_vs_out` does not look at the server's state). A
    /// client's packet to a server deleted or out of service (health
    /// checks) is treated as IPVS's `ip_vs_in` treats it: with
    /// `expire_nodest_conn` the connection ends and the packet goes on as
    /// a new flow's; without it, a deleted server's connection ends and
    /// the packet is dropped (`dest_gone`: its `DestRef` can never come
    /// back), while an out-of-service server's connection is kept, its
    /// timer not refreshed, and the packet dropped (`dest_down`): it flows
    /// again if the server comes back in time.
    #[inline]
    pub fn dest_of<'s>(
        &mut self,
        snap: &'s Snapshot,
        stats: &mut WorkerStats,
        i: u32,
        side: Side,
    ) -> Result<&'s Dest, NoDest> {
        match snap.dest(self.conns.get(i).dest()) {
            Some(d) if d.in_service || side == Side::Server => Ok(d),
            Some(_) if side == Side::Client && !snap.expire_nodest_conn => {
                Err(NoDest::Drop(DropReason::DestDown))
            }
            _ if side == Side::Client && snap.expire_nodest_conn => {
                self.end(snap, stats, i);
                Err(NoDest::Reschedule)
            }
            _ => {
                self.conns.remove(i);
                stats.inc(Counter::ConnsExpired);
                Err(NoDest::Drop(DropReason::DestGone))
            }
        }
    }

    /// Reaps expired connections by tick `now`, at most `budget` examined,
    /// releasing what they hold of their real servers.
    pub fn reap(
        &mut self,
        snap: &Snapshot,
        stats: &mut WorkerStats,
        now: Tick,
        budget: usize,
    ) -> usize {
        let n = self.conns.expire(now, budget, |c| {
            match c.kind() {
                Kind::Expectation => {}
                Kind::Template if c.controls() > 0 => {
                    return Some(now.saturating_add(c.template_timeout().max(1)));
                }
                Kind::Template => {
                    if let Some(d) = snap.dest(c.dest()) {
                        d.counters.set_persistent(false);
                    }
                }
                Kind::Connection => {
                    if let Some(d) = snap.dest(c.dest()) {
                        d.unbind(c.is_inactive());
                    }
                }
            }
            None
        });
        stats.add(Counter::ConnsExpired, n as u64);
        n
    }

    /// Adds entry `conn` (hashed `hash`); a full table first reclaims what
    /// has expired (bounded, [`RECLAIM_BUDGET`]), so that
    /// `table_full` means nothing was reclaimable.
    pub fn insert(
        &mut self,
        snap: &Snapshot,
        stats: &mut WorkerStats,
        conn: Conn<A>,
        hash: u64,
        now: Tick,
    ) -> Result<u32, InsertError> {
        if self.conns.len() == self.conns.capacity() {
            self.reclaim(snap, stats, now);
        }
        let i = self.conns.insert(conn, hash)?;
        self.inserted = self.inserted.saturating_add(1);
        Ok(i)
    }

    /// Reclaims expired entries now, if any are due.
    pub fn reclaim(&mut self, snap: &Snapshot, stats: &mut WorkerStats, now: Tick) {
        if !self.conns.caught_up(now) {
            let n = self.reap(snap, stats, now, RECLAIM_BUDGET);
            stats.inc(Counter::ExpireRuns);
            stats.add(Counter::ConnsReclaimed, n as u64);
        }
    }

    /// Adds new connection `conn` (hashed `hash`, controlled by persistence
    /// template `template`) after the flood defences have made room for
    /// it, and counts it created.
    pub fn open(
        &mut self,
        snap: &Snapshot,
        stats: &mut WorkerStats,
        conn: Conn<A>,
        hash: u64,
        template: Option<u32>,
        now: Tick,
    ) -> Result<u32, DropReason> {
        self.make_room(snap, stats, now)?;
        let i = match self.insert(snap, stats, conn, hash, now) {
            Ok(i) => i,
            Err(InsertError::Full) => return Err(DropReason::TableFull),
            Err(InsertError::Collision) => return Err(DropReason::NatCollision),
        };
        if let Some(t) = template {
            self.conns.set_control(i, t);
        }
        stats.inc(Counter::ConnsCreated);
        Ok(i)
    }

    /// Ends connection `i` now, uncounting it from its real server.
    pub fn end(&mut self, snap: &Snapshot, stats: &mut WorkerStats, i: u32) {
        let c = *self.conns.get(i);
        if let Some(d) = snap.dest(c.dest()) {
            d.unbind(c.is_inactive());
        }
        self.conns.remove(i);
        stats.inc(Counter::ConnsExpired);
    }

    /// The flood defences before a new (unreplied) connection is added
    /// (`conn::defense`): `drop_entry`'s random early drop, then the
    /// unreplied share — at its cap, expired entries are reclaimed first,
    /// then the oldest unreplied connection is evicted (a bounded look
    /// through the order ring, then random probes), or the new one is
    /// refused.
    pub fn make_room(
        &mut self,
        snap: &Snapshot,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Result<(), DropReason> {
        let d = &snap.defense;
        let cap = self.conns.capacity();
        if d.drop_entry != Mode::Off {
            let above = d.above_threshold(self.conns.len(), self.conns.unreplied(), cap);
            if d.drop_entry.active(above) {
                for _ in 0..DROP_PROBES {
                    if let Some(i) = self.conns.pick_unreplied(1, 1) {
                        self.end(snap, stats, i);
                        stats.inc(Counter::DefenseDropped);
                    }
                }
            }
        }
        if d.unreplied_share < PPM
            && self.conns.unreplied() >= Defense::entries(d.unreplied_share, cap)
        {
            self.reclaim(snap, stats, now);
            if self.conns.unreplied() >= Defense::entries(d.unreplied_share, cap) {
                let i = self
                    .conns
                    .pick_oldest_unreplied(EVICT_PROBES)
                    .or_else(|| self.conns.pick_unreplied(EVICT_PROBES, EVICT_CHOICES))
                    .ok_or(DropReason::UnrepliedFull)?;
                self.end(snap, stats, i);
                stats.inc(Counter::UnrepliedEvicted);
            }
        }
        Ok(())
    }

    /// Moves connection `i` through its protocol's states for a packet
    /// with `tcp_flags` (`payload`: whether it carries TCP payload, asked
    /// only by the secure TCP state table; `first`: the packet that opened
    /// it), keeps its real server's counters right, confirms it once it is
    /// established or answered, and sets its new expiry.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn update_state(
        &mut self,
        snap: &Snapshot,
        i: u32,
        dest: &Dest,
        dir: Direction,
        tcp_flags: u8,
        payload: impl FnOnce() -> bool,
        first: bool,
        now: Tick,
    ) {
        let timeouts = &snap.timeouts;
        let c = self.conns.get(i);
        let (timeout, confirmed) = if c.proto() == PROTO_TCP {
            let old = c.tcp_state();
            let mut new = conn::state::tcp_transition(old, dir, tcp_flags);
            let def = &snap.defense;
            let secure = def.secure_tcp != Mode::Off
                && def.secure_tcp.active(def.above_threshold(
                    self.conns.len(),
                    self.conns.unreplied(),
                    self.conns.capacity(),
                ));
            if secure {
                new = secure_transition(old, new, dir, tcp_flags, payload());
            }
            let c = self.conns.get_mut(i);
            if new != old
                && let Some(active) = c.set_tcp_state(new)
            {
                dest.counters.set_active(active);
            }
            let t = timeouts.tcp(new);
            let half_open = matches!(new, TcpState::SynRecv | TcpState::SynAck);
            let t = if secure && half_open {
                t.min(def.secure_tcp_timeout)
            } else {
                t
            };
            (t, new == TcpState::Established)
        } else {
            // UDP: answered (NAT), or a second datagram where the answers
            // bypass us (DR, TUN).
            let answered = dir == Direction::Output || (dir == Direction::InputOnly && !first);
            (timeouts.udp, answered)
        };
        if confirmed {
            self.conns.confirm(i);
        }
        self.conns.set_expires(i, now.saturating_add(timeout));
    }
}

/// The service's scheduler's choice for a new connection `k`.
#[inline]
pub(super) fn schedule<'s, A: Family>(
    snap: &'s Snapshot,
    svc: &'s Service,
    k: &FlowKey<A>,
    now: Tick,
) -> Option<&'s Dest> {
    let dests = snap.dests_of(svc);
    let flow = Flow {
        client: k.saddr.into(),
        cport: k.sport,
        vip: k.daddr.into(),
        vport: k.dport,
        now,
    };
    let pos = svc.sched.schedule(&dests, &flow)?;
    Some(dests.at(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 persistence masks the client by prefix length (`-M` for
    /// IPv6); lengths past 128 are clamped.
    #[test]
    fn ipv6_persistence_mask_is_a_prefix() {
        let a: Ipv6Addr = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff".parse().unwrap();
        for (len, want) in [
            (128, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
            (64, "2001:db8:aaaa:bbbb::"),
            (60, "2001:db8:aaaa:bbb0::"),
            (1, "::"),
            (0, "::"),
            (200, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        ] {
            assert_eq!(prefix6(a, len), want.parse::<Ipv6Addr>().unwrap(), "/{len}");
        }
    }
}
