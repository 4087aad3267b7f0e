//! Parsing a received frame: the shape nearly every packet has on a fast
//! path of fixed offsets, everything else through the [`crate::wire`]
//! views, which accept and reject exactly the same frames (tested below).

use std::net::Ipv4Addr;

use crate::conn::FlowKey;
use crate::frame::{DropReason, Verdict};
use crate::service::Snapshot;
use crate::wire::ethernet::{ETHERTYPE_IPV4, EthernetFrame};
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use crate::wire::{Layout, WireError, checksum};

pub(super) const TCP_SYN: u8 = crate::wire::tcp::SYN;
pub(super) const TCP_ACK: u8 = crate::wire::tcp::ACK;
pub(super) const TCP_RST: u8 = crate::wire::tcp::RST;

/// A parsed IPv4 TCP/UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub layout: Layout,
    pub key: FlowKey<Ipv4Addr>,
    pub tcp_flags: u8,
}

/// Parses a frame: [`parse_common`] for the shape nearly every packet has,
/// the general views otherwise.
#[inline]
pub fn parse(d: &[u8]) -> Result<Option<Parsed>, WireError> {
    match parse_common(d) {
        Some(p) => Ok(Some(p)),
        None => parse_any(d),
    }
}

/// The fast path: an untagged Ethernet frame with an IPv4 header without
/// options, not a fragment, carrying a well-formed TCP or UDP header. Reads
/// fixed offsets of fixed-size arrays, so the checks below are the only
/// ones; anything else (or anything doubtful) returns `None` and goes
/// through the views in [`parse_any`], which accept and reject exactly the
/// same frames. The equivalence is tested below.
#[inline]
fn parse_common(d: &[u8]) -> Option<Parsed> {
    let h: &[u8; 42] = d.first_chunk()?;
    if h[12..14] != ETHERTYPE_IPV4.to_be_bytes() || h[14] != 0x45 {
        return None;
    }
    let ip_len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let frag = u16::from_be_bytes([h[20], h[21]]) & 0x3fff; // MF and offset
    if ip_len > d.len() - 14 || frag != 0 {
        return None;
    }
    let proto = h[23];
    let l4_len = ip_len.checked_sub(20)?;
    let tcp_flags = match proto {
        PROTO_TCP => {
            let t: &[u8; 54] = d.first_chunk()?;
            let doff = usize::from(t[46] >> 4) * 4;
            if doff < 20 || doff > l4_len {
                return None;
            }
            t[47]
        }
        PROTO_UDP => {
            let len = usize::from(u16::from_be_bytes([h[38], h[39]]));
            if len < 8 || len > l4_len {
                return None;
            }
            0
        }
        _ => return None,
    };
    Some(Parsed {
        layout: Layout {
            l2_len: 14,
            ihl: 20,
            ip_len,
        },
        key: FlowKey {
            proto,
            saddr: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
            sport: u16::from_be_bytes([h[34], h[35]]),
            daddr: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
            dport: u16::from_be_bytes([h[36], h[37]]),
        },
        tcp_flags,
    })
}

/// The general parser, over the `wire` views.
fn parse_any(d: &[u8]) -> Result<Option<Parsed>, WireError> {
    let eth = EthernetFrame::new_checked(d)?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return Ok(None);
    }
    let l2_len = eth.header_len();
    let ip = Ipv4Packet::new_checked(&d[l2_len..])?;
    let proto = ip.protocol();
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return Ok(None);
    }
    let ihl = ip.header_len();
    let ip_len = usize::from(ip.total_len());
    let mut parsed = Parsed {
        layout: Layout {
            l2_len,
            ihl,
            ip_len,
        },
        key: FlowKey {
            proto,
            saddr: ip.src_addr(),
            sport: 0,
            daddr: ip.dst_addr(),
            dport: 0,
        },
        tcp_flags: 0,
    };
    if ip.is_fragment() {
        return Err(WireError::Unsupported);
    }
    let l4 = ip.payload();
    if proto == PROTO_TCP {
        let tcp = TcpPacket::new_checked(l4)?;
        (parsed.key.sport, parsed.key.dport) = (tcp.src_port(), tcp.dst_port());
        parsed.tcp_flags = tcp.flags();
    } else {
        let udp = UdpPacket::new_checked(l4)?;
        (parsed.key.sport, parsed.key.dport) = (udp.src_port(), udp.dst_port());
    }
    Ok(Some(parsed))
}

/// Whether the IPv4 header checksum is right (the header sums to 0xffff).
#[inline]
pub fn ip_header_ok(d: &[u8], l: &Layout) -> bool {
    let sum = match d[l.l2_len..].first_chunk::<20>() {
        // Without options: ten words, summed as five 32-bit ones.
        Some(h) if l.ihl == 20 => h
            .chunks_exact(4)
            .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            .sum::<u64>(),
        _ => u64::from(checksum::sum(&d[l.l2_len..l.l4()])),
    };
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    checksum::fold(((sum & 0xffff_ffff) + (sum >> 32)) as u32) == 0xffff
}

/// Verdict for a frame that failed to parse: fragments and garbage to a
/// VIP or from a NAT real server are dropped; anything else is the
/// kernel's business.
#[cold]
#[inline(never)]
pub fn bad_frame(snap: &Snapshot, d: &[u8], e: WireError) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return Verdict::Drop(DropReason::Malformed);
    }
    let ip = match Ipv4Packet::new_checked(eth.payload()) {
        Ok(ip) => ip,
        Err(_) => return Verdict::Drop(DropReason::Malformed),
    };
    if !snap.is_ours_v4(ip.src_addr(), ip.dst_addr()) {
        return Verdict::NotOurs;
    }
    match e {
        WireError::Unsupported => Verdict::Drop(DropReason::Fragment),
        _ => Verdict::Drop(DropReason::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid frame: untagged IPv4 without options, TCP or UDP.
    fn frame(udp: bool, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let l4 = if udp { 8 } else { 20 };
        let total = 20 + l4 + payload;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = if udp { PROTO_UDP } else { PROTO_TCP };
        ip[12..20].copy_from_slice(&[198, 18, 0, 10, 198, 18, 1, 1]);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut h = vec![0u8; l4];
        h[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        if udp {
            h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        } else {
            h[12] = 0x50;
            h[13] = 0x12;
        }
        f.extend_from_slice(&h);
        f.extend(std::iter::repeat_n(0xab, payload));
        f
    }

    #[test]
    fn fast_path_takes_the_common_shape() {
        for udp in [false, true] {
            let f = frame(udp, 10);
            assert!(parse_common(&f).is_some());
            assert_eq!(
                parse_common(&f).map(Ok),
                Some(parse_any(&f).map(|p| p.unwrap()))
            );
            assert!(ip_header_ok(&f, &parse_common(&f).unwrap().layout));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The fast path accepts a subset of what the views accept and, where
        /// it accepts, parses the same; the header check agrees with the
        /// full RFC 1071 checksum.
        #[test]
        fn fast_path_agrees_with_the_views(
            udp in any::<bool>(),
            payload in 0usize..40,
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
            cut in 0usize..80,
        ) {
            let mut f = frame(udp, payload);
            for (at, x) in flips {
                let n = f.len();
                f[at % n] ^= x;
            }
            let n = f.len();
            f.truncate(n - cut.min(n));
            if let Some(fast) = parse_common(&f) {
                prop_assert_eq!(parse_any(&f), Ok(Some(fast)));
                let full = checksum::checksum(&f[14..34]) == 0;
                prop_assert_eq!(ip_header_ok(&f, &fast.layout), full);
            }
        }
    }
}
