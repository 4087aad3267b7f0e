//! NAT — masquerading (ipvsadm `-m`, "Masq"; `ip_vs_nat_xmit`,
//! `tcp_dnat_handler`, `tcp_snat_handler`).
//!
//! Inbound, the destination VIP:vport becomes RIP:rport; outbound, the real
//! server's reply has its source RIP:rport put back to VIP:vport, so the
//! client only ever sees the VIP. The IPv4 header checksum and the TCP/UDP
//! checksum (whose pseudo-header covers the addresses) are updated
//! incrementally (RFC 1624), never recomputed over the payload. The real
//! server needs nothing special except that its route back to clients goes
//! through the director (default gateway), since the director must see the
//! replies. Replies are forwarded, so their TTL is decremented as a router
//! would; requests are delivered to the VIP, a local address, and keep it.
//!
//! NAT66 (`ip_vs_nat_xmit_v6`, the same handlers for IPv6): the same
//! rewrites, but IPv6 has no header checksum, so only the TCP/UDP checksum
//! changes, over the IPv6 pseudo-header (the 16-byte address, RFC 1624 as
//! Linux's `ip_vs_check_diff16`). The hop limit is decremented both ways
//! and a packet arriving with 1 is dropped (`hop_limit`): requests as
//! IPVS's `decrement_ttl` does for IPv6 in every mode (Linux 4.10 on),
//! replies as the kernel's `ip6_forward` does. A UDP checksum of 0 is left
//! as it is, as IPVS leaves it (it is invalid in IPv6: the receiver drops
//! the datagram either way). A routing header whose final destination is
//! not the packet's destination is not looked into: the pseudo-header of
//! such a packet names the final one, which NAT does not change.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::hop::{Hop, check_mtu, decrement_hop_limit, drop, send};
use crate::frame::{DropReason, Frame, Verdict};
use crate::wire::checksum::{update_bytes, update16, update32};
use crate::wire::ipv4::{Ipv4Packet, PROTO_UDP};
use crate::wire::{Layout, Layout6};

/// Offset of the checksum in the TCP and UDP headers.
const TCP_CHECK: usize = 16;
const UDP_CHECK: usize = 6;

#[inline]
fn rd16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

#[inline]
fn wr16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Replaces one address and one port of the packet: the destination
/// (`dst == true`) or the source. Ports sit at L4 offset 0 (source) and 2.
#[inline]
fn rewrite(d: &mut [u8], l: &Layout, proto: u8, dst: bool, addr: Ipv4Addr, port: u16) {
    let ip_at = l.l2_len;
    let l4 = l.l4();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[ip_at..]);
    let old_addr = if dst { ip.dst_addr() } else { ip.src_addr() };
    if dst {
        ip.set_dst_addr(addr);
    } else {
        ip.set_src_addr(addr);
    }
    let check = update32(ip.checksum(), old_addr.to_bits(), addr.to_bits());
    ip.set_checksum(check);

    let port_at = l4 + if dst { 2 } else { 0 };
    let old_port = rd16(d, port_at);
    wr16(d, port_at, port);
    let (check_at, is_udp) = if proto == PROTO_UDP {
        (l4 + UDP_CHECK, true)
    } else {
        (l4 + TCP_CHECK, false)
    };
    let old = rd16(d, check_at);
    if is_udp && old == 0 {
        return; // IPv4 UDP without a checksum stays without one
    }
    let mut c = update32(old, old_addr.to_bits(), addr.to_bits());
    c = update16(c, old_port, port);
    if is_udp && c == 0 {
        c = 0xffff; // 0 would mean "no checksum" (RFC 768)
    }
    wr16(d, check_at, c);
}

/// Whether a request is too big for the egress MTU `mtu` (NAT does not
/// change the length): `Some` with the MTU to report.
#[inline]
pub fn too_big(frame: &Frame<'_>, l: &Layout, mtu: u16) -> Option<Option<u16>> {
    check_mtu(frame, l, 0, mtu)
}

/// Client → real server: destination VIP:vport becomes RIP:rport.
#[inline]
pub fn xmit_in(
    frame: &mut Frame<'_>,
    l: &Layout,
    proto: u8,
    rip: Ipv4Addr,
    rport: u16,
    hop: &Hop,
) -> Verdict {
    rewrite(frame.data_mut(), l, proto, true, rip, rport);
    send(frame, hop)
}

/// A later fragment of a real server's reply (no L4 header; its first
/// fragment went through [`xmit_out`]): source RIP becomes VIP, TTL is
/// decremented, only the IP header checksum changes.
#[inline]
pub fn xmit_out_fragment(frame: &mut Frame<'_>, l: &Layout, vip: Ipv4Addr, hop: &Hop) -> Verdict {
    let d = frame.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l.l2_len..]);
    let (ttl, proto) = (ip.ttl(), ip.protocol());
    if ttl <= 1 {
        return drop(DropReason::TtlExceeded);
    }
    ip.set_ttl(ttl - 1);
    let mut check = update16(
        ip.checksum(),
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([ttl - 1, proto]),
    );
    check = update32(check, ip.src_addr().to_bits(), vip.to_bits());
    ip.set_src_addr(vip);
    ip.set_checksum(check);
    send(frame, hop)
}

/// Real server → client: source RIP:rport becomes VIP:vport, TTL is
/// decremented.
#[inline]
pub fn xmit_out(
    frame: &mut Frame<'_>,
    l: &Layout,
    proto: u8,
    vip: Ipv4Addr,
    vport: u16,
    hop: &Hop,
) -> Verdict {
    let d = frame.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l.l2_len..]);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return drop(DropReason::TtlExceeded);
    }
    // TTL shares a 16-bit checksum word with the protocol.
    let old = u16::from_be_bytes([ttl, proto]);
    ip.set_ttl(ttl - 1);
    let check = update16(ip.checksum(), old, u16::from_be_bytes([ttl - 1, proto]));
    ip.set_checksum(check);
    rewrite(d, l, proto, false, vip, vport);
    send(frame, hop)
}

/// Offsets of the source and destination addresses in the IPv6 header.
const IP6_SRC: usize = 8;
const IP6_DST: usize = 24;

/// [`rewrite`] for IPv6: one address and one port, and the TCP/UDP
/// checksum over the IPv6 pseudo-header.
#[inline]
fn rewrite6(d: &mut [u8], l: &Layout6, proto: u8, dst: bool, addr: &Ipv6Addr, port: u16) {
    let at = l.l2_len + if dst { IP6_DST } else { IP6_SRC };
    let new = addr.octets();
    let mut old = [0u8; 16];
    old.copy_from_slice(&d[at..at + 16]);
    d[at..at + 16].copy_from_slice(&new);

    let port_at = l.l4 + if dst { 2 } else { 0 };
    let old_port = rd16(d, port_at);
    wr16(d, port_at, port);
    let is_udp = proto == PROTO_UDP;
    let check_at = l.l4 + if is_udp { UDP_CHECK } else { TCP_CHECK };
    let check = rd16(d, check_at);
    if is_udp && check == 0 {
        return;
    }
    let mut c = update_bytes(check, &old, &new);
    c = update16(c, old_port, port);
    if is_udp && c == 0 {
        c = 0xffff;
    }
    wr16(d, check_at, c);
}

/// Client → real server over IPv6: destination VIP:vport becomes
/// RIP:rport, the hop limit is decremented.
#[inline]
pub fn xmit_in6(
    frame: &mut Frame<'_>,
    l: &Layout6,
    proto: u8,
    (rip, rport): (&Ipv6Addr, u16),
    hop: &Hop,
) -> Verdict {
    if let Err(v) = decrement_hop_limit(frame, l.l2_len) {
        return v;
    }
    rewrite6(frame.data_mut(), l, proto, true, rip, rport);
    send(frame, hop)
}

/// Real server → client over IPv6: source RIP:rport becomes VIP:vport,
/// the hop limit is decremented.
#[inline]
pub fn xmit_out6(
    frame: &mut Frame<'_>,
    l: &Layout6,
    proto: u8,
    (vip, vport): (&Ipv6Addr, u16),
    hop: &Hop,
) -> Verdict {
    if let Err(v) = decrement_hop_limit(frame, l.l2_len) {
        return v;
    }
    rewrite6(frame.data_mut(), l, proto, false, vip, vport);
    send(frame, hop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{combine, fold, pseudo_header_v6, sum};
    use crate::wire::ipv4::PROTO_TCP;
    use proptest::prelude::*;

    /// The full TCP/UDP checksum of the IPv6 packet at 14 in `d` (the
    /// test oracle: RFC 1071 over the pseudo-header and the segment).
    fn full6(d: &[u8], proto: u8) -> u16 {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&d[14 + 8..14 + 24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&d[14 + 24..14 + 40]).unwrap());
        let l4 = &d[54..];
        let at = if proto == PROTO_UDP {
            UDP_CHECK
        } else {
            TCP_CHECK
        };
        let mut seg = l4.to_vec();
        seg[at..at + 2].copy_from_slice(&[0, 0]);
        let c = !fold(combine(
            pseudo_header_v6(&src, &dst, proto, seg.len() as u32),
            sum(&seg),
        ));
        if proto == PROTO_UDP && c == 0 {
            0xffff
        } else {
            c
        }
    }

    fn packet(proto: u8, src: [u8; 16], dst: [u8; 16], ports: (u16, u16), data: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 14];
        d[12..14].copy_from_slice(&[0x86, 0xdd]);
        let l4_len = if proto == PROTO_UDP { 8 } else { 20 } + data.len();
        d.extend_from_slice(&[0x60, 0, 0, 0]);
        d.extend_from_slice(&(l4_len as u16).to_be_bytes());
        d.extend_from_slice(&[proto, 64]);
        d.extend_from_slice(&src);
        d.extend_from_slice(&dst);
        let mut l4 = vec![0u8; l4_len - data.len()];
        l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
        l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
        if proto == PROTO_UDP {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            l4[12] = 0x50;
        }
        d.extend_from_slice(&l4);
        d.extend_from_slice(data);
        let c = full6(&d, proto);
        let at = 54
            + if proto == PROTO_UDP {
                UDP_CHECK
            } else {
                TCP_CHECK
            };
        d[at..at + 2].copy_from_slice(&c.to_be_bytes());
        d
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// NAT66's incremental update (address over the IPv6
        /// pseudo-header, and port) equals the full checksum, both ways.
        #[test]
        fn incremental_equals_full_over_the_v6_pseudo_header(
            udp in any::<bool>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            ports in any::<(u16, u16)>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            new in any::<[u8; 16]>(),
            new_port in any::<u16>(),
            to_dst in any::<bool>(),
        ) {
            let proto = if udp { PROTO_UDP } else { PROTO_TCP };
            let mut d = packet(proto, src, dst, ports, &data);
            let l = Layout6 { l2_len: 14, l4: 54, ip_len: d.len() - 14 };
            rewrite6(&mut d, &l, proto, to_dst, &Ipv6Addr::from(new), new_port);
            let at = 54 + if udp { UDP_CHECK } else { TCP_CHECK };
            prop_assert_eq!(rd16(&d, at), full6(&d, proto));
            let (addr_at, port_at) = if to_dst { (14 + 24, 56) } else { (14 + 8, 54) };
            prop_assert_eq!(&d[addr_at..addr_at + 16], &new[..]);
            prop_assert_eq!(rd16(&d, port_at), new_port);
        }
    }
}
