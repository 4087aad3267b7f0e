//! A packet that belongs to no connection: the service it is for, the real
//! server its scheduler (or its client's persistence template) picks, and
//! the connection opened for it (`ip_vs_schedule`, `ip_vs_conn_new`); and
//! the state machine every packet of a connection moves.

use std::net::{IpAddr, Ipv4Addr};

use super::State;
use super::parse::{Parsed, TCP_RST, TCP_SYN};
use crate::conn::defense::{DROP_PROBES, EVICT_CHOICES, EVICT_PROBES, PPM, secure_transition};
use crate::conn::{
    self, Conn, Defense, Direction, FlowKey, InsertError, Mode, NewConn, Side, TcpState,
};
use crate::dest::Dest;
use crate::dest::Forward;
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::sched::Flow;
use crate::service::{Service, Snapshot};
use crate::stats::Counter;
use crate::wire::ipv4::PROTO_TCP;

/// A connection about to be opened for a client's first packet.
pub(super) struct Opening<'a> {
    pub dest: &'a Dest,
    /// The real server's address and port.
    pub rip: Ipv4Addr,
    pub dport: u16,
    /// The persistence template that controls it.
    pub template: Option<u32>,
}

impl State {
    /// A packet that belongs to no connection: schedule it if it is for a
    /// virtual service.
    pub(super) fn new_conn(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        let k = &p.key;
        let syn = p.tcp_flags & (TCP_SYN | TCP_RST) == TCP_SYN;
        if snap.ftp_nat
            && k.proto == PROTO_TCP
            && syn
            && let Some((d, rip, rport)) = self.take_expected(k, now)
        {
            // A passive FTP data connection the helper expects.
            let Some(dest) = snap.dest(d) else {
                return Verdict::Drop(DropReason::DestGone);
            };
            self.stats.inc(Counter::FtpConns);
            let o = Opening {
                dest,
                rip,
                dport: rport,
                template: None,
            };
            return self.open(snap, frame, p, hash, &o, now);
        }
        let Some(svc) = snap.service_v4(k.proto, k.daddr, k.dport) else {
            return Verdict::NotOurs;
        };
        // TCP connections start with a SYN (`tcp_conn_schedule`).
        if k.proto == PROTO_TCP && !syn {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let (dest, template) = if svc.persistence_timeout > 0 {
            match self.persistent_dest(snap, svc, k, now) {
                Ok((d, t)) => (d, Some(t)),
                Err(r) => return Verdict::Drop(r),
            }
        } else {
            match schedule(snap, svc, k, now) {
                Some(d) => (d, None),
                None => return Verdict::Drop(DropReason::NoDest),
            }
        };
        let IpAddr::V4(rip) = dest.addr else {
            return Verdict::Drop(DropReason::NoDest);
        };
        // The real server's port for the service's own port; any other
        // port of a port-0 service, or a port-0 real server, keeps the
        // port the client asked for (`ip_vs_sched_persist`).
        let dport = if k.dport == svc.port && dest.port != 0 {
            dest.port
        } else {
            k.dport
        };
        let o = Opening {
            dest,
            rip,
            dport,
            template,
        };
        self.open(snap, frame, p, hash, &o, now)
    }

    /// Adds the connection of the client's first packet `p` as `o` says,
    /// and forwards the packet.
    fn open(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        o: &Opening<'_>,
        now: Tick,
    ) -> Verdict {
        let dest = o.dest;
        let mut client_mac = [0; 6];
        client_mac.copy_from_slice(&frame.data()[6..12]);
        let conn = Conn::connection(&NewConn {
            key: p.key,
            daddr: o.rip,
            dport: o.dport,
            fwd: dest.fwd,
            dest: dest.r,
            in_port: frame.port(),
            client_mac,
            expires: now.saturating_add(snap.timeouts.tcp(conn::TcpState::None)),
        });
        if let Err(r) = self.make_room(snap, now) {
            return Verdict::Drop(r);
        }
        let i = match self.insert(snap, conn, hash, now) {
            Ok(i) => i,
            Err(InsertError::Full) => return Verdict::Drop(DropReason::TableFull),
            Err(InsertError::Collision) => return Verdict::Drop(DropReason::NatCollision),
        };
        if let Some(t) = o.template {
            self.conns.set_control(i, t);
        }
        self.stats.inc(Counter::ConnsCreated);
        dest.bind();
        self.count_conn(dest);
        self.count(dest, Side::Client, p.layout.ip_len);
        let dir = if dest.fwd == Forward::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.update_state(snap, frame.data(), i, dest, dir, p, true, now);
        let Some(e) = super::egress(snap, dest) else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let t = super::target(&conn);
        self.tx
            .to_server(frame, &p.layout, &t, &e, &mut self.stats, now)
    }

    /// The flood defences before a new (unreplied) connection is added
    /// (`conn::defense`): `drop_entry`'s random early drop, then the
    /// unreplied share — at its cap, expired entries are reclaimed first,
    /// then the oldest unreplied connection is evicted (a bounded look
    /// through the order ring, then random probes), or the new one is
    /// refused.
    fn make_room(&mut self, snap: &Snapshot, now: Tick) -> Result<(), DropReason> {
        let d = &snap.defense;
        let cap = self.conns.capacity();
        if d.drop_entry != Mode::Off {
            let above = d.above_threshold(self.conns.len(), self.conns.unreplied(), cap);
            if d.drop_entry.active(above) {
                for _ in 0..DROP_PROBES {
                    if let Some(i) = self.conns.pick_unreplied(1, 1) {
                        self.end(snap, i);
                        self.stats.inc(Counter::DefenseDropped);
                    }
                }
            }
        }
        if d.unreplied_share < PPM
            && self.conns.unreplied() >= Defense::entries(d.unreplied_share, cap)
        {
            self.reclaim(snap, now);
            if self.conns.unreplied() >= Defense::entries(d.unreplied_share, cap) {
                let i = self
                    .conns
                    .pick_oldest_unreplied(EVICT_PROBES)
                    .or_else(|| self.conns.pick_unreplied(EVICT_PROBES, EVICT_CHOICES))
                    .ok_or(DropReason::UnrepliedFull)?;
                self.end(snap, i);
                self.stats.inc(Counter::UnrepliedEvicted);
            }
        }
        Ok(())
    }

    /// Moves connection `i` through its protocol's states for packet `p`
    /// (frame `d`; `first`: the one that opened it), keeps its real
    /// server's counters right, confirms it once it is established or
    /// answered, and sets its new expiry.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_state(
        &mut self,
        snap: &Snapshot,
        d: &[u8],
        i: u32,
        dest: &Dest,
        dir: Direction,
        p: &Parsed,
        first: bool,
        now: Tick,
    ) {
        let timeouts = &snap.timeouts;
        let c = self.conns.get(i);
        let (timeout, confirmed) = if c.proto() == PROTO_TCP {
            let old = c.tcp_state();
            let mut new = conn::state::tcp_transition(old, dir, p.tcp_flags);
            let def = &snap.defense;
            let secure = def.secure_tcp != Mode::Off
                && def.secure_tcp.active(def.above_threshold(
                    self.conns.len(),
                    self.conns.unreplied(),
                    self.conns.capacity(),
                ));
            if secure {
                let data = tcp_payload(d, p);
                new = secure_transition(old, new, dir, p.tcp_flags, data);
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

/// Whether TCP segment `p` (in frame `d`) carries payload.
#[inline]
fn tcp_payload(d: &[u8], p: &Parsed) -> bool {
    let l4 = p.layout.l4();
    let hdr = d.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
    p.layout.ip_len > p.layout.ihl + hdr
}

/// The service's scheduler's choice for a new connection.
#[inline]
pub(super) fn schedule<'s>(
    snap: &'s Snapshot,
    svc: &'s Service,
    k: &FlowKey<Ipv4Addr>,
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
