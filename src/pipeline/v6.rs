//! The IPv6 path (issue 16): an IPv6 TCP or UDP packet through the IPv6
//! connection table, in the same order as an IPv4 one (`ip_vs_in`): its
//! connection first (either side of it), the services only on a miss.
//!
//! The pipeline takes this path only for a frame the IPv4 parser did not
//! take (`Ok(None)` from `parse`) whose EtherType says IPv6, so the IPv4
//! fast path pays nothing for it; batches do not warm the IPv6 table.
//! Everything that does not depend on the family — classifying, the state
//! machine, the flood defences, persistence templates, ending and reaping
//! — is [`Flows`]'s, shared with IPv4; what is here is only what reads
//! the IPv6 frame or writes it.
//!
//! The IPv6 connections are in a second, smaller table for now
//! ([`super::V6_SHARE`]); issue 16 wants one table for both families.
//! Partial checksums are finished first on ports that ask for it, as for
//! IPv4 ([`crate::wire::partial::complete_v6`]). Not yet on this path: the
//! FTP helper, and ICMPv6 errors about connections (every ICMPv6 message
//! is the kernel's).

use std::net::Ipv6Addr;

use super::flows::{Family, NoDest, Packet};
use super::parse::{TCP_RST, TCP_SYN};
use super::parse6::{Parsed6, parse6};
use super::{State, client_way, count, count_conn, egress, target};
use crate::conn::{Conn, Direction, NewConn, Side, TcpState};
use crate::dest::{Dest, Forward};
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::service::Snapshot;
use crate::stats::Counter;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::ipv4::PROTO_TCP;
use crate::wire::ipv6::Ipv6Packet;

impl State {
    /// An IPv6 frame: TCP and UDP through the IPv6 table; ICMPv6 (NDP,
    /// RA, MLD among it) and every other protocol is the kernel's; what
    /// does not parse is a counted drop when it is for a VIP or from a
    /// NAT real server, else the kernel's.
    #[inline(never)]
    pub(super) fn ipv6(&mut self, snap: &Snapshot, frame: &mut Frame<'_>, now: Tick) -> Verdict {
        match parse6(frame.data()) {
            Ok(Some(p)) => self.tcp_udp6(snap, frame, &p, now),
            Ok(None) => Verdict::NotOurs,
            Err(r) => bad_ipv6(snap, frame.data(), r),
        }
    }

    /// An IPv6 TCP or UDP packet: [`State::tcp_udp`] for IPv6.
    fn tcp_udp6(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed6,
        now: Tick,
    ) -> Verdict {
        let hash = self.v6.conns.hash(&p.key);
        let class = match self.v6.classify(&p.key, p.tcp_flags, hash, now) {
            Packet::Established(i, Side::Client)
                if snap.expire_nodest_conn && self.v6.syn_to_quiescent(snap, i, p.tcp_flags) =>
            {
                Packet::New(Some(i))
            }
            class => class,
        };
        self.complete_checksum6(snap, frame, p);
        match class {
            Packet::Established(i, side) => {
                let c = *self.v6.conns.get(i);
                let dest = match self.v6.dest_of(snap, &mut self.stats, i, side) {
                    Ok(d) => d,
                    Err(NoDest::Reschedule) => return self.new_conn6(snap, frame, p, hash, now),
                    Err(NoDest::Drop(r)) => return Verdict::Drop(r),
                };
                let dir = match side {
                    Side::Server => Direction::Output,
                    Side::Client if c.is_input_only() => Direction::InputOnly,
                    Side::Client => Direction::Input,
                };
                let d = frame.data();
                let payload = || tcp_payload6(d, p);
                self.v6
                    .update_state(snap, i, dest, dir, p.tcp_flags, payload, false, now);
                count(self.worker, dest, side, p.layout().ip_len);
                self.forward6(snap, frame, p, (&c, dest), side, now)
            }
            Packet::New(ends) => {
                if let Some(i) = ends {
                    // As for IPv4: expired, or a new connection on the
                    // 5-tuple of one that has ended.
                    self.v6.end(snap, &mut self.stats, i);
                }
                self.new_conn6(snap, frame, p, hash, now)
            }
            // Only the IPv4 path checks a header checksum.
            Packet::BadChecksum => Verdict::Drop(DropReason::BadIpChecksum),
        }
    }

    /// [`State::complete_checksum`] for IPv6.
    #[inline]
    fn complete_checksum6(&mut self, snap: &Snapshot, frame: &mut Frame<'_>, p: &Parsed6) {
        let port = usize::from(frame.port());
        if !snap.ports.get(port).is_some_and(|p| p.complete_checksums) {
            return;
        }
        let ip = &mut frame.data_mut()[p.l2_len..p.end];
        if crate::wire::partial::complete_v6(ip, p.l4 - p.l2_len, p.key.proto) {
            self.stats.inc(Counter::CsumCompleted);
        }
    }

    /// An IPv6 packet that belongs to no connection: [`State::new_conn`]
    /// for IPv6 (no FTP expectations yet).
    fn new_conn6(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed6,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        let k = &p.key;
        let Some(svc) = snap.service_v6(k.proto, k.daddr, k.dport) else {
            return Verdict::NotOurs;
        };
        let syn = p.tcp_flags & (TCP_SYN | TCP_RST) == TCP_SYN;
        if k.proto == PROTO_TCP && !syn {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let (dest, template) = match self.v6.new_dest(snap, &mut self.stats, svc, k, now) {
            Ok(x) => x,
            Err(r) => return Verdict::Drop(r),
        };
        let Some(rip) = Ipv6Addr::of(dest.addr) else {
            return Verdict::Drop(DropReason::NoDest);
        };
        let dport = if k.dport == svc.port && dest.port != 0 {
            dest.port
        } else {
            k.dport
        };
        let mut client_mac = [0; 6];
        client_mac.copy_from_slice(&frame.data()[6..12]);
        let conn = Conn::connection(&NewConn {
            key: *k,
            daddr: rip,
            dport,
            fwd: dest.fwd,
            dest: dest.r,
            in_port: frame.port(),
            client_mac,
            expires: now.saturating_add(snap.timeouts.tcp(TcpState::None)),
        });
        let i = match self
            .v6
            .open(snap, &mut self.stats, conn, hash, template, now)
        {
            Ok(i) => i,
            Err(r) => return Verdict::Drop(r),
        };
        dest.bind();
        count_conn(self.worker, dest);
        count(self.worker, dest, Side::Client, p.layout().ip_len);
        let dir = if dest.fwd == Forward::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        let d = frame.data();
        let payload = || tcp_payload6(d, p);
        self.v6
            .update_state(snap, i, dest, dir, p.tcp_flags, payload, true, now);
        self.forward6(snap, frame, p, (&conn, dest), Side::Client, now)
    }

    /// Sends packet `p` of connection `c` (to real server `dest`) on its
    /// way: a client's to the real server, a NAT reply to the client.
    fn forward6(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed6,
        (c, dest): (&Conn<Ipv6Addr>, &Dest),
        side: Side,
        now: Tick,
    ) -> Verdict {
        let l = p.layout();
        match side {
            Side::Client => {
                // The route's source is ip6ip6's outer source.
                let Some(e) = egress(snap, dest, dest.src6) else {
                    return Verdict::Drop(DropReason::NoNeighbour);
                };
                self.tx
                    .to_server6(frame, &l, &target(c), &e, &mut self.stats, now)
            }
            Side::Server => {
                let e = client_way(snap, c);
                let vip = (c.vaddr, c.vport);
                self.tx
                    .to_client6(frame, &l, c.proto(), vip, &e, &mut self.stats)
            }
        }
    }
}

/// Whether TCP segment `p` (in frame `d`) carries payload.
#[inline]
fn tcp_payload6(d: &[u8], p: &Parsed6) -> bool {
    let hdr = d.get(p.l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
    p.end > p.l4 + hdr
}

/// Verdict for an IPv6 frame that failed to parse (`r`): dropped when it
/// is for a VIP or from a NAT real server, or when not even its fixed
/// header is there; anything else is the kernel's business.
#[cold]
#[inline(never)]
fn bad_ipv6(snap: &Snapshot, d: &[u8], r: DropReason) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        return Verdict::Drop(r);
    };
    match Ipv6Packet::new_checked(eth.payload()) {
        Ok(ip) if !snap.is_ours_v6(ip.src_addr(), ip.dst_addr()) => Verdict::NotOurs,
        _ => Verdict::Drop(r),
    }
}
