//! Rewrite: one file per forwarding mode. Each takes the frame as parsed
//! and the connection's real server, rewrites the frame in place (moving it
//! into the headroom where it grows) and says where it goes.
//!
//! [`Transmitter`] is the one dispatch by forwarding method, used for a
//! client's packets and for the ICMP errors relayed about them, as IPVS's
//! `ip_vs_{dr,tunnel,nat}_xmit` and `ip_vs_icmp_xmit` are. Each mode owns
//! its rules: the egress MTU (every mode checks it, as IPVS's
//! `ensure_mtu_is_adequate` does), what is answered with ICMP
//! "fragmentation needed" ([`icmp::frag_needed`], rate-limited per
//! worker) and, for TUN, the outer header's ident ([`tun::Tunnel`]). The transmitter counts
//! what it sends in the worker's [`WorkerStats`].
//!
//! IPv6 ([`Transmitter::to_server6`], [`Transmitter::to_client6`]) goes
//! the same ways: DR, ip6ip6 and NAT66, every mode decrementing the hop
//! limit (IPVS's `decrement_ttl`), and a request too big for its way out
//! answered with ICMPv6 "packet too big" to the client (IPv6 is never
//! fragmented on the way); a NAT reply too big for the client's side is
//! dropped (`too_big`).

pub mod dr;
mod hop;
pub mod icmp;
pub mod nat;
pub mod tun;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dest::Forward;
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::stats::{Counter, WorkerStats};
pub use crate::wire::layout::{Layout, Layout6};
pub use hop::Hop;

/// Where a connection's packets go: its real server and how.
#[derive(Debug, Clone, Copy)]
pub struct Target<A = Ipv4Addr> {
    pub fwd: Forward,
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    pub daddr: A,
    pub dport: u16,
}

/// The way out toward a real server (or back to a NAT client): the next
/// hop, the MTU of the port it is reached by, and the source of the
/// kernel's route toward the connection's real server (`None` while the
/// route gives none): the outer source of TUN packets, and on a NAT
/// reply's way back, the source of the "fragmentation needed" sent to the
/// real server when the reply is too big for it.
#[derive(Debug, Clone, Copy)]
pub struct Egress<A = Ipv4Addr> {
    pub hop: Hop,
    pub mtu: u16,
    pub src: Option<A>,
}

/// A worker's transmitters: the state they keep between packets.
#[derive(Debug, Clone)]
pub struct Transmitter {
    tunnel: tun::Tunnel,
    /// ICMP errors this worker may still generate this second.
    icmp: icmp::Budget,
    /// `dataplane.tunnel_source`: when set, the outer source address of
    /// every TUN packet, overriding the route's source ([`Egress::src`]).
    tunnel_source: Option<Ipv4Addr>,
}

impl Transmitter {
    pub fn new(now: Tick) -> Transmitter {
        Transmitter {
            tunnel: tun::Tunnel::default(),
            icmp: icmp::Budget::new(now),
            tunnel_source: None,
        }
    }

    /// Sets the configured outer source address of TUN packets (from each
    /// snapshot); `None`: each real server's route source.
    pub fn set_tunnel_source(&mut self, src: Option<Ipv4Addr>) {
        self.tunnel_source = src;
    }

    /// The outer source of a TUN packet leaving by `e`: the configured
    /// override, else the source of the kernel's route to the real server
    /// (IPVS's `__ip_vs_get_out_rt`); without either the packet is
    /// dropped (`no_source`).
    #[inline]
    fn tunnel_src(&self, e: &Egress) -> Option<Ipv4Addr> {
        self.tunnel_source.or(e.src)
    }

    /// A client's packet to its real server by the connection's forwarding
    /// method; one too big for the egress MTU is answered with
    /// "fragmentation needed" when it has DF set, dropped otherwise.
    #[inline]
    pub fn to_server(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout,
        t: &Target,
        e: &Egress,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Verdict {
        let (v, sent) = match t.fwd {
            Forward::Dr => {
                if let Some(mtu) = dr::too_big(frame, l, e.mtu) {
                    return self.too_big(frame, l, mtu, None, stats, now);
                }
                (dr::xmit(frame, &e.hop), Counter::TxDr)
            }
            Forward::Tun => {
                let Some(src) = self.tunnel_src(e) else {
                    return Verdict::Drop(DropReason::NoSource);
                };
                if let Some(mtu) = tun::too_big(frame, l, e.mtu) {
                    return self.too_big(frame, l, mtu, None, stats, now);
                }
                let v = self.tunnel.xmit(frame, l, (src, t.daddr), e.mtu, &e.hop);
                (v, Counter::TxTun)
            }
            Forward::Nat => {
                if let Some(mtu) = nat::too_big(frame, l, e.mtu) {
                    return self.too_big(frame, l, mtu, None, stats, now);
                }
                let v = nat::xmit_in(frame, l, t.proto, t.daddr, t.dport, &e.hop);
                (v, Counter::TxNat)
            }
        };
        if let Verdict::Tx { .. } = v {
            stats.inc(sent);
        }
        v
    }

    /// A NAT reply to its client (the way back `e`): its source put back
    /// to VIP:`vport`. A reply too big for the port is answered, as a
    /// router forwarding it would (Linux's `ip_forward`), with
    /// "fragmentation needed" to the real server from the director's
    /// address toward it ([`Egress::src`]) when it has DF set, else (or
    /// without that address) dropped (`too_big`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn to_client(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout,
        proto: u8,
        (vip, vport): (Ipv4Addr, u16),
        e: &Egress,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Verdict {
        if let Some(mtu) = nat::too_big(frame, l, e.mtu) {
            let Some(src) = e.src else {
                return Verdict::Drop(DropReason::TooBig);
            };
            return self.too_big(frame, l, mtu, Some(src), stats, now);
        }
        let v = nat::xmit_out(frame, l, proto, vip, vport, &e.hop);
        if let Verdict::Tx { .. } = v {
            stats.inc(Counter::TxReplies);
        }
        v
    }

    /// An ICMP error from the client's side about connection `t`, to its
    /// real server by the same method as the connection's packets
    /// (`ip_vs_icmp_xmit`). Never answered with another ICMP error: one
    /// too big is dropped.
    pub fn icmp_to_server(
        &mut self,
        frame: &mut Frame<'_>,
        q: &icmp::Quote,
        t: &Target,
        e: &Egress,
    ) -> Verdict {
        match t.fwd {
            Forward::Tun => {
                let Some(src) = self.tunnel_src(e) else {
                    return Verdict::Drop(DropReason::NoSource);
                };
                self.tunnel
                    .xmit(frame, &q.layout, (src, t.daddr), e.mtu, &e.hop)
            }
            _ if q.layout.ip_len > usize::from(e.mtu) => Verdict::Drop(DropReason::TooBig),
            Forward::Dr => dr::xmit(frame, &e.hop),
            Forward::Nat => icmp::nat_to_server(frame, q, t.daddr, t.dport, &e.hop),
        }
    }

    /// An ICMP error from a NAT real server's side about a request, to
    /// its client, as if from VIP:`vport`.
    pub fn icmp_to_client(
        &mut self,
        frame: &mut Frame<'_>,
        q: &icmp::Quote,
        (vip, vport): (Ipv4Addr, u16),
        e: &Egress,
    ) -> Verdict {
        if q.layout.ip_len > usize::from(e.mtu) {
            return Verdict::Drop(DropReason::TooBig);
        }
        icmp::nat_to_client(frame, q, vip, vport, &e.hop)
    }

    /// An IPv6 client's packet to its real server by the connection's
    /// forwarding method (the outer source of ip6ip6: the route's,
    /// [`Egress::src`]); one too big for the egress MTU (once
    /// encapsulated) is answered with ICMPv6 "packet too big".
    #[inline]
    pub fn to_server6(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout6,
        t: &Target<Ipv6Addr>,
        e: &Egress<Ipv6Addr>,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Verdict {
        // As for IPv4, a tunnel without an outer source is refused first.
        let (extra, src) = match (t.fwd, e.src) {
            (Forward::Tun, None) => return Verdict::Drop(DropReason::NoSource),
            (Forward::Tun, Some(src)) => (tun::OUTER6, src),
            _ => (0, Ipv6Addr::UNSPECIFIED),
        };
        if l.ip_len + extra > usize::from(e.mtu) {
            let mtu = e.mtu.saturating_sub(extra as u16);
            return self.too_big6(frame, l, mtu, stats, now);
        }
        let (v, sent) = match t.fwd {
            Forward::Dr => (dr::xmit6(frame, l.l2_len, &e.hop), Counter::TxDr),
            Forward::Tun => {
                let v = tun::xmit6(frame, l, (&src, &t.daddr), &e.hop);
                (v, Counter::TxTun)
            }
            Forward::Nat => {
                let v = nat::xmit_in6(frame, l, t.proto, (&t.daddr, t.dport), &e.hop);
                (v, Counter::TxNat)
            }
        };
        if let Verdict::Tx { .. } = v {
            stats.inc(sent);
        }
        v
    }

    /// A NAT66 reply to its client (the way back `e`): its source put
    /// back to VIP:`vport`. One too big for the port is dropped
    /// (`too_big`).
    #[inline]
    pub fn to_client6(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout6,
        proto: u8,
        (vip, vport): (Ipv6Addr, u16),
        e: &Egress<Ipv6Addr>,
        stats: &mut WorkerStats,
    ) -> Verdict {
        if l.ip_len > usize::from(e.mtu) {
            return Verdict::Drop(DropReason::TooBig);
        }
        let v = nat::xmit_out6(frame, l, proto, (&vip, vport), &e.hop);
        if let Verdict::Tx { .. } = v {
            stats.inc(Counter::TxReplies);
        }
        v
    }

    /// Answers an IPv6 packet too big for its way out with ICMPv6 "packet
    /// too big" naming `mtu`, within this second's ICMP budget (else it
    /// is dropped, `too_big`).
    #[cold]
    #[inline(never)]
    fn too_big6(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout6,
        mtu: u16,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Verdict {
        if !self.icmp.take(now) {
            return Verdict::Drop(DropReason::TooBig);
        }
        stats.inc(Counter::IcmpSent);
        icmp::packet_too_big6(frame, l, mtu)
    }

    /// Answers a packet too big for its way out: ICMP "fragmentation
    /// needed" with `mtu` when it asks not to be fragmented (`Some`), from
    /// `from` (else from the packet's destination, the VIP); a drop when
    /// it may be fragmented (`None`: this forwarder does not fragment) or
    /// when this second's ICMP budget is spent.
    #[cold]
    #[inline(never)]
    fn too_big(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout,
        mtu: Option<u16>,
        from: Option<Ipv4Addr>,
        stats: &mut WorkerStats,
        now: Tick,
    ) -> Verdict {
        let Some(mtu) = mtu else {
            return Verdict::Drop(DropReason::TooBig);
        };
        if !self.icmp.take(now) {
            return Verdict::Drop(DropReason::TooBig);
        }
        stats.inc(Counter::IcmpSent);
        icmp::frag_needed(frame, l, mtu, from)
    }
}
