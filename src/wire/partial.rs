//! Partial TCP/UDP checksums: recognising and finishing them.
//!
//! A sender that leaves its transport checksum to the device
//! (`CHECKSUM_PARTIAL`: veth, virtio-net, tun and container networks with
//! the default tx offload) writes into the checksum field only the folded
//! one's-complement sum of the pseudo-header, *not* complemented
//! (Linux `__tcp_v4_send_check` and `udp4_hwcsum` store
//! `~csum_tcpudp_magic(..)`; seen on a veth with tcpdump, and relied on by
//! tests/offloads.rs), and expects the device to sum the segment from
//! the transport header on and store the complement. A virtual device never
//! does, it hands the skb on with the promise; AF_XDP gives us the bytes
//! without that promise. So a director on such a port must finish the job
//! itself, or the real server drops the segment (`TcpInCsumErrors`).
//!
//! There is no metadata to say which frames are partial, so the field is
//! judged by its value: a frame whose field equals exactly the pseudo-header
//! pattern is finished. Finishing is cheap to get right: the field already
//! holds the pseudo-header sum, so the complement of the sum over the
//! transport segment *as it is* is the full checksum (what the device's
//! `csum_start`/`csum_offset` engine computes).
//!
//! Two properties make the value test safe:
//! - A frame whose *complete* checksum happens to equal the pattern (one in
//!   65 536) is left as it was: completing it recomputes the same value.
//! - Any other value is left untouched, so a really corrupt frame stays
//!   corrupt and the receiver's own check drops it. Nothing is verified
//!   here: frames that are not partial cost one pseudo-header sum.
//!
//! A UDP checksum of 0 means "no checksum" (RFC 768) and is left as 0; a
//! finished UDP checksum that computes to 0 is sent as 0xffff.
//!
//! IPv6 senders do the same (`__tcp_v6_send_check`, `udp6_hwcsum_outgoing`
//! store `~csum_ipv6_magic(..)`): [`complete_v6`] finishes them over the
//! IPv6 pseudo-header.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum::{checksum, fold, pseudo_header_v4, pseudo_header_v6};
use super::ipv4::{PROTO_TCP, PROTO_UDP};

/// Offset of the checksum field in the TCP header.
const TCP_CHECK: usize = 16;
/// Offset of the checksum field in the UDP header.
const UDP_CHECK: usize = 6;

/// Where a TCP or UDP segment's checksum lives: the segment (from the
/// transport header to the end of what the checksum covers), the field's
/// offset in it, and the pseudo-header pattern a partial sender leaves
/// there. `None` for anything else, or a segment without room for its
/// header.
struct Site {
    /// The transport segment's range in the packet.
    start: usize,
    len: usize,
    /// The checksum field's offset in the segment.
    at: usize,
    udp: bool,
    /// The folded pseudo-header sum: the partial pattern.
    pattern: u16,
}

#[inline]
fn site(ip: &[u8], ihl: usize) -> Option<Site> {
    let h = ip.first_chunk::<20>()?;
    let proto = h[9];
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    if total > ip.len() || ihl > total {
        return None;
    }
    let l4 = &ip[ihl..total];
    let (at, len) = match proto {
        PROTO_TCP if l4.len() >= 20 => (TCP_CHECK, l4.len()),
        PROTO_UDP if l4.len() >= 8 => {
            // The checksum covers the datagram its header names, not any
            // padding after it.
            let len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if len < 8 || len > l4.len() {
                return None;
            }
            (UDP_CHECK, len)
        }
        _ => return None,
    };
    let len16 = u16::try_from(len).ok()?;
    Some(Site {
        start: ihl,
        len,
        at,
        udp: proto == PROTO_UDP,
        pattern: fold(pseudo_header_v4(src, dst, proto, len16)),
    })
}

/// Finishes the TCP or UDP checksum of an IPv4 packet if it holds the
/// partial pattern. `ip` starts at the IPv4 header and holds at least the
/// whole packet (its total length), `ihl` is the header's length. Returns
/// whether the checksum was finished; anything that is not a TCP or UDP
/// segment with room for its header, or whose field is not the pattern,
/// is left alone.
#[inline]
pub fn complete_v4(ip: &mut [u8], ihl: usize) -> bool {
    match site(ip, ihl) {
        Some(s) => complete(ip, &s),
        None => false,
    }
}

/// Where the checksum of the TCP or UDP segment at `l4` of IPv6 packet
/// `ip` (from its fixed header to the end of its payload) lives.
#[inline]
fn site6(ip: &[u8], l4: usize, proto: u8) -> Option<Site> {
    let h = ip.first_chunk::<40>()?;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).ok()?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&h[24..40]).ok()?);
    let seg = ip.get(l4..)?;
    let (at, len) = match proto {
        PROTO_TCP if seg.len() >= 20 => (TCP_CHECK, seg.len()),
        PROTO_UDP if seg.len() >= 8 => {
            let len = usize::from(u16::from_be_bytes([seg[4], seg[5]]));
            if len < 8 || len > seg.len() {
                return None;
            }
            (UDP_CHECK, len)
        }
        _ => return None,
    };
    Some(Site {
        start: l4,
        len,
        at,
        udp: proto == PROTO_UDP,
        pattern: fold(pseudo_header_v6(&src, &dst, proto, len as u32)),
    })
}

/// [`complete_v4`] for IPv6: `ip` starts at the IPv6 header and ends
/// with its payload, the `proto` segment starts at `l4` (after any
/// extension headers).
#[inline]
pub fn complete_v6(ip: &mut [u8], l4: usize, proto: u8) -> bool {
    match site6(ip, l4, proto) {
        Some(s) => complete(ip, &s),
        None => false,
    }
}

/// [`make_partial_v4`] for IPv6 ([`complete_v6`]'s arguments).
pub fn make_partial_v6(ip: &mut [u8], l4: usize, proto: u8) -> bool {
    match site6(ip, l4, proto) {
        Some(s) => make_partial(ip, &s),
        None => false,
    }
}

/// Finishes the checksum at `s` if it holds the partial pattern.
#[inline]
fn complete(ip: &mut [u8], s: &Site) -> bool {
    let seg = &mut ip[s.start..s.start + s.len];
    let field = u16::from_be_bytes([seg[s.at], seg[s.at + 1]]);
    if s.udp && field == 0 {
        return false; // no checksum at all, and it stays so
    }
    if field != s.pattern {
        return false;
    }
    let mut c = checksum(seg);
    if s.udp && c == 0 {
        c = 0xffff;
    }
    seg[s.at..s.at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Turns a packet's complete TCP or UDP checksum into the partial pattern
/// a `CHECKSUM_PARTIAL` sender leaves (test and benchmark equipment: what
/// a veth peer with tx offload hands the director). Same arguments as
/// [`complete_v4`]; returns false for anything else, or a UDP datagram
/// without a checksum.
pub fn make_partial_v4(ip: &mut [u8], ihl: usize) -> bool {
    match site(ip, ihl) {
        Some(s) => make_partial(ip, &s),
        None => false,
    }
}

/// Writes the partial pattern into the checksum at `s`.
fn make_partial(ip: &mut [u8], s: &Site) -> bool {
    let seg = &mut ip[s.start..s.start + s.len];
    if s.udp && seg[s.at..s.at + 2] == [0, 0] {
        return false;
    }
    seg[s.at..s.at + 2].copy_from_slice(&s.pattern.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{combine, sum};
    use proptest::prelude::*;

    /// An IPv4 packet (no options) carrying `proto` with a correct
    /// transport checksum.
    fn packet(proto: u8, payload: &[u8]) -> Vec<u8> {
        let l4_len = if proto == PROTO_TCP { 20 } else { 8 } + payload.len();
        let total = 20 + l4_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..20].copy_from_slice(&[198, 18, 0, 10, 198, 18, 1, 1]);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = &mut p[20..];
        l4[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        if proto == PROTO_TCP {
            l4[12] = 0x50;
            l4[13] = 0x18;
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        let hdr = if proto == PROTO_TCP { 20 } else { 8 };
        l4[hdr..].copy_from_slice(payload);
        let at = if proto == PROTO_TCP {
            TCP_CHECK
        } else {
            UDP_CHECK
        };
        let c = full(&p);
        p[20 + at..20 + at + 2].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// The transport checksum of `p` computed from scratch with the field
    /// taken as zero (the oracle).
    fn full(p: &[u8]) -> u16 {
        let proto = p[9];
        let at = if proto == PROTO_TCP {
            TCP_CHECK
        } else {
            UDP_CHECK
        };
        let mut l4 = p[20..].to_vec();
        l4[at..at + 2].fill(0);
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let ph = pseudo_header_v4(src, dst, proto, l4.len() as u16);
        let c = !fold(combine(ph, sum(&l4)));
        if proto == PROTO_UDP && c == 0 {
            0xffff
        } else {
            c
        }
    }

    fn field(p: &[u8]) -> u16 {
        let at = 20
            + if p[9] == PROTO_TCP {
                TCP_CHECK
            } else {
                UDP_CHECK
            };
        u16::from_be_bytes([p[at], p[at + 1]])
    }

    #[test]
    fn the_pattern_is_linux_s() {
        // 198.18.0.10 -> 198.18.1.1, TCP, 20 bytes: the words c612 000a
        // c612 0101 0006 0014 sum to 0x18d49, folded 0x8d4a — the value
        // `~csum_tcpudp_magic` gives and a veth sender leaves in the field.
        let mut p = packet(PROTO_TCP, &[]);
        assert!(make_partial_v4(&mut p, 20));
        assert_eq!(field(&p), 0x8d4a);
        assert!(complete_v4(&mut p, 20));
        assert_eq!(field(&p), full(&p));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut p = packet(PROTO_UDP, b"hello");
        p[26..28].fill(0);
        assert!(!make_partial_v4(&mut p.clone(), 20));
        let before = p.clone();
        assert!(!complete_v4(&mut p, 20));
        assert_eq!(p, before);
    }

    #[test]
    fn others_and_short_packets_are_left_alone() {
        let mut p = packet(PROTO_TCP, b"abc");
        p[9] = 1; // ICMP
        let before = p.clone();
        assert!(!complete_v4(&mut p, 20));
        assert_eq!(p, before);
        let mut p = packet(PROTO_TCP, b"abc");
        p.truncate(30);
        assert!(!complete_v4(&mut p, 20));
        assert!(!complete_v4(&mut [0u8; 10], 20));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A partial frame comes out with the full checksum; a complete one
        /// comes out unchanged; a corrupt one (any other field value) too.
        #[test]
        fn completes_exactly_the_partial(
            udp in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            wrong in any::<u16>(),
        ) {
            let proto = if udp { PROTO_UDP } else { PROTO_TCP };
            let good = packet(proto, &payload);
            let c = field(&good);
            prop_assert_eq!(c, full(&good));

            // Unchanged bytes whether or not the field happens to be the
            // pattern (one in 65 536).
            let mut p = good.clone();
            complete_v4(&mut p, 20);
            prop_assert_eq!(&p, &good);

            let mut p = good.clone();
            prop_assert!(make_partial_v4(&mut p, 20));
            prop_assert!(complete_v4(&mut p, 20));
            prop_assert_eq!(&p, &good);

            let mut p = good.clone();
            prop_assert!(make_partial_v4(&mut p, 20));
            let pattern = field(&p);
            prop_assume!(wrong != pattern && wrong != c && !(udp && wrong == 0));
            let at = 20 + if udp { UDP_CHECK } else { TCP_CHECK };
            p[at..at + 2].copy_from_slice(&wrong.to_be_bytes());
            let before = p.clone();
            prop_assert!(!complete_v4(&mut p, 20));
            prop_assert_eq!(p, before);
        }
    }

    /// An IPv6 packet of `proto` with a full transport checksum, behind
    /// one 8-byte destination-options header (the segment at 48).
    fn packet6(udp: bool, src: [u8; 16], dst: [u8; 16], data: &[u8]) -> Vec<u8> {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let hdr = if udp { 8 } else { 20 };
        let mut seg = vec![0u8; hdr];
        seg[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        if udp {
            seg[4..6].copy_from_slice(&((hdr + data.len()) as u16).to_be_bytes());
        } else {
            seg[12] = 0x50;
        }
        seg.extend_from_slice(data);
        let at = if udp { UDP_CHECK } else { TCP_CHECK };
        let (s6, d6) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
        let pseudo = pseudo_header_v6(&s6, &d6, proto, seg.len() as u32);
        let mut c = !fold(combine(pseudo, sum(&seg)));
        if udp && c == 0 {
            c = 0xffff;
        }
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((8 + seg.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[60, 64]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&seg);
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// IPv6: a partial segment comes out with its full checksum, a
        /// complete one unchanged.
        #[test]
        fn v6_partial_is_completed_and_full_is_kept(
            udp in any::<bool>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let proto = if udp { PROTO_UDP } else { PROTO_TCP };
            let full = packet6(udp, src, dst, &data);
            let mut p = full.clone();
            prop_assume!(make_partial_v6(&mut p, 48, proto));
            if p != full {
                prop_assert!(complete_v6(&mut p, 48, proto));
            }
            prop_assert_eq!(&p, &full);
            let mut q = full.clone();
            prop_assert!(!complete_v6(&mut q, 48, proto) || q == full);
            prop_assert_eq!(q, full);
        }
    }
}
