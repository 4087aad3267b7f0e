//! TUN — IP tunneling (ipvsadm `-i`, "Tunnel"; `ip_vs_tunnel_xmit`).
//!
//! The client's IP packet is wrapped, unchanged, in an outer IPv4 header
//! (protocol 4, IPIP) from the director's address to the real server. That
//! address is, as IPVS's `__ip_vs_get_out_rt` takes it, the source of the
//! kernel's route to the real server (RTA_PREFSRC, learnt per real server
//! with its next hop, so real servers behind different routes get
//! different sources), unless `dataplane.tunnel_source` overrides it for
//! all; with neither the packet is dropped and counted (`no_source`).
//! The outer header carries the inner TOS, TTL and DF bit, as IPVS
//! does. The real server must decapsulate IPIP (a `tunl0` device) and hold
//! the VIP on a non-ARPing interface, with reverse-path filtering relaxed
//! for it; it answers the client directly, so it may sit on any network the
//! director can route to.
//!
//! Encapsulation adds 20 bytes. A packet that would then exceed the port
//! MTU and has DF set is answered, as IPVS does, with ICMP "fragmentation
//! needed" carrying MTU − 20, so the client's path MTU discovery shrinks
//! its segments. One without DF would need the outer packet fragmented;
//! this forwarder does not fragment, so it is dropped and counted
//! (`DropReason::TooBig`). The outer header's ident counts per worker
//! ([`Tunnel`]).
//!
//! IPv6 is tunnelled as ip6ip6 (`ip_vs_tunnel_xmit_v6`): an outer IPv6
//! header (next header 41) of 40 bytes from the source of the director's
//! route to the real server (`Dest::src6`; without one the packet is
//! dropped, `no_source`) to the real server, carrying the inner traffic
//! class, flow label and hop limit — the hop limit after the director's
//! own decrement, as IPVS's `decrement_ttl` runs before it copies it. The
//! real server decapsulates with an `ip6tnl` device. IPv6 is never
//! fragmented on the way: one that does not fit is answered with ICMPv6
//! "packet too big" carrying MTU − 40.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::hop::{Hop, check_mtu, decrement_hop_limit, drop, send};
use crate::frame::{DropReason, Frame, Verdict};
use crate::wire::ipv4::{Ipv4Packet, PROTO_IPIP};
use crate::wire::{Layout, Layout6};

const OUTER: usize = 20;

/// Length of the outer header of an ip6ip6 packet.
pub const OUTER6: usize = 40;

/// The next-header value of an IPv6 packet inside IPv6 (RFC 2473).
const PROTO_IPV6: u8 = 41;

/// A worker's tunnel state: the ident of its next outer header.
#[derive(Debug, Clone, Default)]
pub struct Tunnel {
    ident: u16,
}

impl Tunnel {
    /// Encapsulates the packet toward `rip` with the next ident.
    #[inline]
    pub fn xmit(
        &mut self,
        frame: &mut Frame<'_>,
        l: &Layout,
        (src, rip): (Ipv4Addr, Ipv4Addr),
        mtu: u16,
        hop: &Hop,
    ) -> Verdict {
        self.ident = self.ident.wrapping_add(1);
        xmit(frame, l, src, rip, mtu, self.ident, hop)
    }
}

/// Encapsulates the packet toward `rip` and sends it to `hop`.
#[inline]
pub fn xmit(
    frame: &mut Frame<'_>,
    l: &Layout,
    src: Ipv4Addr,
    rip: Ipv4Addr,
    mtu: u16,
    ident: u16,
    hop: &Hop,
) -> Verdict {
    if l.ip_len + OUTER > usize::from(mtu) {
        return drop(DropReason::TooBig);
    }
    // Drop any Ethernet padding after the IP packet, then open a gap of 20
    // bytes between the Ethernet header and the IP packet by moving the
    // Ethernet header back into the headroom.
    frame.truncate(l.l2_len + l.ip_len);
    if !frame.push_front(OUTER) {
        return drop(DropReason::NoHeadroom);
    }
    let d = frame.data_mut();
    d.copy_within(OUTER..OUTER + l.l2_len, 0);
    let (inner_tos, inner_ttl, inner_df) = {
        let inner = Ipv4Packet::new_unchecked(&d[l.l2_len + OUTER..]);
        (inner.tos(), inner.ttl(), inner.dont_frag())
    };
    let mut outer = Ipv4Packet::new_unchecked(&mut d[l.l2_len..l.l2_len + OUTER + l.ip_len]);
    outer.set_version_ihl(4, OUTER);
    outer.set_tos(inner_tos);
    outer.set_total_len((OUTER + l.ip_len) as u16);
    outer.set_ident(ident);
    outer.set_flags_frag(inner_df, false, 0);
    outer.set_ttl(inner_ttl);
    outer.set_protocol(PROTO_IPIP);
    outer.set_src_addr(src);
    outer.set_dst_addr(rip);
    outer.fill_checksum();
    send(frame, hop)
}

/// Whether the packet is too big to tunnel through a port of MTU `mtu`:
/// `Some` with the MTU to report to the sender (MTU − 20) when it has DF
/// set, `Some(None)` when it may be fragmented (not done here).
#[inline]
pub fn too_big(frame: &Frame<'_>, l: &Layout, mtu: u16) -> Option<Option<u16>> {
    check_mtu(frame, l, OUTER, mtu)
}

/// Encapsulates the IPv6 packet in IPv6 from `src` toward `rip` and sends
/// it to `hop`. The caller has checked that it fits the MTU.
#[inline]
pub fn xmit6(
    frame: &mut Frame<'_>,
    l: &Layout6,
    (src, rip): (&Ipv6Addr, &Ipv6Addr),
    hop: &Hop,
) -> Verdict {
    if let Err(v) = decrement_hop_limit(frame, l.l2_len) {
        return v;
    }
    let Ok(payload_len) = u16::try_from(l.ip_len) else {
        return drop(DropReason::TooBig);
    };
    frame.truncate(l.l2_len + l.ip_len);
    if !frame.push_front(OUTER6) {
        return drop(DropReason::NoHeadroom);
    }
    let d = frame.data_mut();
    d.copy_within(OUTER6..OUTER6 + l.l2_len, 0);
    let at = l.l2_len;
    // Version, traffic class and flow label (the first four bytes), and
    // the hop limit, as the inner header has them.
    let mut first = [0u8; 4];
    first.copy_from_slice(&d[at + OUTER6..at + OUTER6 + 4]);
    let hop_limit = d[at + OUTER6 + 7];
    let outer = &mut d[at..at + OUTER6];
    outer[0..4].copy_from_slice(&first);
    outer[4..6].copy_from_slice(&payload_len.to_be_bytes());
    outer[6] = PROTO_IPV6;
    outer[7] = hop_limit;
    outer[8..24].copy_from_slice(&src.octets());
    outer[24..40].copy_from_slice(&rip.octets());
    send(frame, hop)
}
