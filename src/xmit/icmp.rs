//! ICMP errors about connections (`ip_vs_in_icmp`, `ip_vs_out_icmp`,
//! `ip_vs_nat_icmp`).
//!
//! An ICMP error (destination unreachable — fragmentation needed among
//! them —, source quench, time exceeded, parameter problem) quotes the
//! header of the packet that caused it. When that packet belongs to one of our connections the
//! error must reach the host that sent the packet, translated as the
//! connection is:
//!
//! - from the client's side, about a packet VIP → client (a reply): to the
//!   real server, by the connection's forwarding method; for NAT the outer
//!   destination and the quoted source become the real server's (so that
//!   path MTU discovery works through the director);
//! - from the real server's side, about a packet client → RIP (a NAT
//!   request): to the client, the outer source and the quoted destination
//!   put back to the VIP.
//!
//! Only the quoted IP header's checksum is fixed (incrementally); the
//! quoted transport checksum cannot be (the quote is truncated) and is left
//! alone, as in IPVS. The ICMP checksum is recomputed over the message.
//!
//! The only error the director generates itself is "fragmentation
//! needed" ([`frag_needed`]), for a packet too big for its way out, at
//! most [`ICMP_PER_SECOND`] a second per worker ([`Budget`]): to a client
//! from the VIP it sent to, to a NAT real server (a reply too big for the
//! client's side) from the source of the director's route to that server.
//! For IPv6 it is ICMPv6 "packet too big" ([`packet_too_big6`]), under the
//! same budget.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::hop::{Hop, drop, send};
use crate::frame::Tick;
use crate::frame::{DropReason, Frame, Verdict};
use crate::wire::checksum::{self, update16, update32};
use crate::wire::icmp::{
    CODE_FRAG_NEEDED, ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED, Icmpv4Packet,
};
use crate::wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::wire::{Layout, Layout6};

/// At most this many ICMP errors per second per worker, as Linux's
/// `icmp_msgs_per_sec` limits the host (default 1000).
pub const ICMP_PER_SECOND: u32 = 1000;

/// How many ICMP errors a worker has generated in the current second.
#[derive(Debug, Clone)]
pub struct Budget {
    second: Tick,
    sent: u32,
}

impl Budget {
    pub fn new(now: Tick) -> Budget {
        Budget {
            second: now,
            sent: 0,
        }
    }

    /// Whether one more error may be sent at `now` (and counts it).
    pub fn take(&mut self, now: Tick) -> bool {
        if now != self.second {
            (self.second, self.sent) = (now, 0);
        }
        self.sent += 1;
        self.sent <= ICMP_PER_SECOND
    }
}

/// ICMP source quench (deprecated, still relayed by IPVS).
const ICMP_SOURCE_QUENCH: u8 = 4;

/// An ICMP error quoting a TCP or UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Where the outer packet sits.
    pub layout: Layout,
    /// Offset of the quoted IP header from the frame's start.
    pub at: usize,
    pub ihl: usize,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// The quoted packet of an ICMP error in `d`, if `d` (an untagged or
/// tagged Ethernet frame whose IPv4 header starts at `l2_len`) is one that
/// IPVS relays: not a fragment, a relayed type, a quote with a whole IP
/// header and the 8 bytes that hold the ports, not a later fragment.
pub fn quote(d: &[u8], l2_len: usize) -> Option<Quote> {
    let ip = Ipv4Packet::new_checked(d.get(l2_len..)?).ok()?;
    if ip.protocol() != PROTO_ICMP || ip.is_fragment() {
        return None;
    }
    let layout = Layout {
        l2_len,
        ihl: ip.header_len(),
        ip_len: usize::from(ip.total_len()),
    };
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    if !matches!(
        icmp.msg_type(),
        ICMP_DEST_UNREACH | ICMP_SOURCE_QUENCH | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM
    ) {
        return None;
    }
    let q = icmp.payload();
    let ihl = usize::from(*q.first()? & 0x0f) * 4;
    if q[0] >> 4 != 4 || ihl < 20 || q.len() < ihl + 8 {
        return None;
    }
    let inner = Ipv4Packet::new_unchecked(q);
    let proto = inner.protocol();
    if (proto != PROTO_TCP && proto != PROTO_UDP) || inner.frag_offset() != 0 {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([q[ihl + at], q[ihl + at + 1]]);
    Some(Quote {
        layout,
        at: l2_len + layout.ihl + 8,
        ihl,
        proto,
        src: inner.src_addr(),
        sport: port(0),
        dst: inner.dst_addr(),
        dport: port(2),
    })
}

/// Rewrites the outer destination (or source) address and the quoted
/// source (or destination) address and port, then the checksums.
fn translate(d: &mut [u8], q: &Quote, toward_server: bool, addr: Ipv4Addr, port: u16) {
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut d[q.layout.l2_len..]);
        let old = if toward_server {
            ip.dst_addr()
        } else {
            ip.src_addr()
        };
        if toward_server {
            ip.set_dst_addr(addr);
        } else {
            ip.set_src_addr(addr);
        }
        let c = update32(ip.checksum(), old.to_bits(), addr.to_bits());
        ip.set_checksum(c);
    }
    {
        // The quote: its source when it went toward the client, its
        // destination when it went toward the real server.
        let mut inner = Ipv4Packet::new_unchecked(&mut d[q.at..]);
        let old = if toward_server {
            inner.src_addr()
        } else {
            inner.dst_addr()
        };
        if toward_server {
            inner.set_src_addr(addr);
        } else {
            inner.set_dst_addr(addr);
        }
        let c = update32(inner.checksum(), old.to_bits(), addr.to_bits());
        inner.set_checksum(c);
        let port_at = q.at + q.ihl + if toward_server { 0 } else { 2 };
        d[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    }
    let icmp_at = q.layout.l4();
    let icmp = &mut d[icmp_at..q.layout.l2_len + q.layout.ip_len];
    icmp[2..4].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// An error from the client's side about a reply, to a NAT real server:
/// outer destination VIP → RIP, quoted source VIP:vport → RIP:rport.
pub fn nat_to_server(
    frame: &mut Frame<'_>,
    q: &Quote,
    rip: Ipv4Addr,
    rport: u16,
    hop: &Hop,
) -> Verdict {
    translate(frame.data_mut(), q, true, rip, rport);
    send(frame, hop)
}

/// An error from the real server's side about a NAT request, to the
/// client: outer source → VIP (as `ip_vs_nat_icmp` does whoever sent it),
/// quoted destination RIP:rport → VIP:vport; forwarded, so the TTL drops.
pub fn nat_to_client(
    frame: &mut Frame<'_>,
    q: &Quote,
    vip: Ipv4Addr,
    vport: u16,
    hop: &Hop,
) -> Verdict {
    let d = frame.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[q.layout.l2_len..]);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return drop(DropReason::TtlExceeded);
    }
    ip.set_ttl(ttl - 1);
    let c = update16(
        ip.checksum(),
        u16::from_be_bytes([ttl, PROTO_ICMP]),
        u16::from_be_bytes([ttl - 1, PROTO_ICMP]),
    );
    ip.set_checksum(c);
    translate(d, q, false, vip, vport);
    send(frame, hop)
}

/// Turns the frame into ICMP "fragmentation needed" reporting next-hop
/// MTU `mtu` back to the sender, out of the port it came in by. From
/// `from` when given — the director's own address toward the sender, for a
/// packet it forwards (a NAT reply), as Linux's `icmp_send` picks it from
/// the route back — else from the address the packet was sent to (the
/// VIP, as `icmp_send` does for a local address).
pub fn frag_needed(frame: &mut Frame<'_>, l: &Layout, mtu: u16, from: Option<Ipv4Addr>) -> Verdict {
    debug_assert!(
        l.ip_len > usize::from(mtu),
        "only a packet too big is answered"
    );
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
    // The packet is larger than the MTU (576 at least), so the quote fits
    // after moving it 28 bytes further in.
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
        ip.set_src_addr(from.unwrap_or(dst));
        ip.set_dst_addr(src);
        ip.fill_checksum();
    }
    {
        let mut icmp = Icmpv4Packet::new_unchecked(&mut d[at + 20..at + total]);
        icmp.set_msg_type(ICMP_DEST_UNREACH);
        icmp.set_code(CODE_FRAG_NEEDED);
        icmp.set_rest_of_header(0);
        icmp.set_next_hop_mtu(mtu);
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

/// Most bytes of an ICMPv6 error: it must fit the IPv6 minimum MTU
/// (RFC 4443 §2.4 (c)).
const ICMPV6_ERROR_MAX: usize = 1280;

/// ICMPv6 "packet too big" (type 2, RFC 4443 §3.2).
const ICMPV6_PACKET_TOO_BIG: u8 = 2;

/// Turns the IPv6 packet in `frame` (at `l.l2_len`, too big for its way
/// out) into ICMPv6 "packet too big" naming `mtu`, from the packet's
/// destination (the VIP) back to its sender by the port and MAC it came
/// from, quoting as much of the packet as fits in 1280 bytes.
pub fn packet_too_big6(frame: &mut Frame<'_>, l: &Layout6, mtu: u16) -> Verdict {
    use crate::wire::checksum::{combine, fold, pseudo_header_v6, sum};
    use crate::wire::ipv6::PROTO_ICMPV6;
    const HDR: usize = 40 + 8;
    let rx_port = frame.port();
    let at = l.l2_len;
    let quoted = l.ip_len.saturating_sub(HDR).min(ICMPV6_ERROR_MAX - HDR);
    let d = frame.data_mut();
    let mut src_mac = [0; 6];
    let mut dst_mac = [0; 6];
    src_mac.copy_from_slice(&d[6..12]);
    dst_mac.copy_from_slice(&d[0..6]);
    let mut client = [0u8; 16];
    let mut vip = [0u8; 16];
    client.copy_from_slice(&d[at + 8..at + 24]);
    vip.copy_from_slice(&d[at + 24..at + 40]);
    d.copy_within(at..at + quoted, at + HDR);
    let len = 8 + quoted;
    let ip = &mut d[at..at + 40];
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    ip[6] = PROTO_ICMPV6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&vip);
    ip[24..40].copy_from_slice(&client);
    let msg = &mut d[at + 40..at + 40 + len];
    msg[0..4].copy_from_slice(&[ICMPV6_PACKET_TOO_BIG, 0, 0, 0]);
    msg[4..8].copy_from_slice(&u32::from(mtu).to_be_bytes());
    let (vip, client) = (Ipv6Addr::from(vip), Ipv6Addr::from(client));
    let pseudo = pseudo_header_v6(&vip, &client, PROTO_ICMPV6, len as u32);
    let c = !fold(combine(pseudo, sum(msg)));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    frame.truncate(at + 40 + len);
    send(
        frame,
        &Hop {
            port: rx_port,
            dst_mac: src_mac,
            src_mac: dst_mac,
        },
    )
}
