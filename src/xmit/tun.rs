//! TUN — IP tunneling (ipvsadm `-i`, "Tunnel"; `ip_vs_tunnel_xmit`).
//!
//! The client's IP packet is wrapped, unchanged, in an outer IPv4 header
//! (protocol 4, IPIP) from the director's tunnel address to the real
//! server. The outer header carries the inner TOS, TTL and DF bit, as IPVS
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
//! (`DropReason::TooBig`).

use std::net::Ipv4Addr;

use super::{Hop, Layout, drop, send};
use crate::pipeline::{DropReason, Frame, Verdict};
use crate::wire::icmp::{CODE_FRAG_NEEDED, ICMP_DEST_UNREACH, Icmpv4Packet};
use crate::wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_IPIP};

const OUTER: usize = 20;

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

/// Whether the packet is too big to tunnel and asks not to be fragmented.
#[inline]
pub fn needs_frag(d: &[u8], l: &Layout, mtu: u16) -> bool {
    l.ip_len + OUTER > usize::from(mtu) && Ipv4Packet::new_unchecked(&d[l.l2_len..]).dont_frag()
}

/// Turns the frame into ICMP "fragmentation needed" (MTU − 20) back to the
/// sender, from the address it was sent to (the VIP, as IPVS's
/// `icmp_send` does for a local address), out of the port it came in by.
pub fn frag_needed(frame: &mut Frame<'_>, l: &Layout, mtu: u16) -> Verdict {
    let rx_port = frame.port();
    let d = frame.data_mut();
    // RFC 792: the original IP header plus the first 8 bytes of its data.
    let quoted = l.ihl + 8;
    let (src, dst, src_mac, dst_mac) = {
        let ip = Ipv4Packet::new_unchecked(&d[l.l2_len..]);
        let mut s = [0; 6];
        let mut m = [0; 6];
        s.copy_from_slice(&d[6..12]);
        m.copy_from_slice(&d[0..6]);
        (ip.src_addr(), ip.dst_addr(), s, m)
    };
    let at = l.l2_len;
    // The packet is larger than the MTU, so the quote fits after moving it
    // 28 bytes further in.
    d.copy_within(at..at + quoted, at + 28);
    let total = 28 + quoted;
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut d[at..at + total]);
        ip.set_version_ihl(4, 20);
        ip.set_tos(0xc0); // internetwork control, as Linux sends ICMP errors
        ip.set_total_len(total as u16);
        ip.set_ident(0);
        ip.set_flags_frag(false, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(PROTO_ICMP);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.fill_checksum();
    }
    {
        let mut icmp = Icmpv4Packet::new_unchecked(&mut d[at + 20..at + total]);
        icmp.set_msg_type(ICMP_DEST_UNREACH);
        icmp.set_code(CODE_FRAG_NEEDED);
        icmp.set_rest_of_header(0);
        icmp.set_next_hop_mtu(mtu - OUTER as u16);
        icmp.fill_checksum();
    }
    frame.truncate(at + total);
    send(
        frame,
        &Hop {
            port: rx_port,
            dst_mac: src_mac,
            src_mac: dst_mac,
        },
    )
}
