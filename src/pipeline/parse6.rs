//! Parsing a received IPv6 frame into a flow key: the first stage of the
//! IPv6 path (`v6.rs`), which the pipeline takes only for frames the IPv4
//! parser found not to be IPv4, so the IPv4 fast path is unchanged.
//!
//! Invariants: the extension-header walk is [`Ipv6Packet::upper_layer`]'s
//! (bounded, every length checked against the payload length); NDP, RA and
//! MLD — and every other ICMPv6 message for now — are the kernel's
//! (`Ok(None)`); a Fragment header is [`DropReason::Ipv6Fragment`]; any
//! malformed chain or transport header cut short is
//! [`DropReason::BadIpv6`]. Nothing here allocates or panics.

use std::net::Ipv6Addr;

use crate::conn::FlowKey;
use crate::frame::DropReason;
use crate::wire::ethernet::{ETHERTYPE_IPV6, EthernetFrame};
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use crate::wire::ipv6::{Ipv6Packet, PROTO_ICMPV6};

/// Whether `d` is an IPv6 frame (untagged or VLAN-tagged).
#[inline]
pub(super) fn is_ipv6(d: &[u8]) -> bool {
    EthernetFrame::new_checked(d).is_ok_and(|e| e.ethertype() == ETHERTYPE_IPV6)
}

/// A parsed IPv6 TCP/UDP packet; offsets from the frame's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed6 {
    pub l2_len: usize,
    /// Start of the transport header (after any extension headers).
    pub l4: usize,
    /// End of the IPv6 payload (Ethernet padding excluded).
    pub end: usize,
    pub hop_limit: u8,
    pub key: FlowKey<Ipv6Addr>,
    pub tcp_flags: u8,
}

impl Parsed6 {
    /// Where the packet sits, for the transmitters.
    #[inline]
    pub fn layout(&self) -> crate::wire::Layout6 {
        crate::wire::Layout6 {
            l2_len: self.l2_len,
            l4: self.l4,
            ip_len: self.end - self.l2_len,
        }
    }
}

/// `Ok(None)`: not IPv6, or not TCP/UDP (ICMPv6 included: NDP, RA and MLD
/// must reach the kernel untouched).
pub fn parse6(d: &[u8]) -> Result<Option<Parsed6>, DropReason> {
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        return Ok(None);
    };
    if eth.ethertype() != ETHERTYPE_IPV6 {
        return Ok(None);
    }
    let l2_len = eth.header_len();
    let ip = Ipv6Packet::new_checked(&d[l2_len..]).map_err(|_| DropReason::BadIpv6)?;
    let ul = ip.upper_layer().map_err(|_| DropReason::BadIpv6)?;
    if ul.protocol == PROTO_ICMPV6 && !ul.fragment {
        return Ok(None);
    }
    if ul.fragment {
        // Only TCP/UDP/ICMPv6 could be ours; the kernel keeps the rest.
        return match ul.protocol {
            PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 => Err(DropReason::Ipv6Fragment),
            _ => Ok(None),
        };
    }
    let end = l2_len + 40 + usize::from(ip.payload_len());
    let l4 = l2_len + ul.offset;
    let t = &d[l4..end];
    let tcp_flags = match ul.protocol {
        PROTO_TCP => {
            if t.len() < 20 {
                return Err(DropReason::BadIpv6);
            }
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > t.len() {
                return Err(DropReason::BadIpv6);
            }
            t[13]
        }
        PROTO_UDP => {
            let ulen = usize::from(u16::from_be_bytes([
                t.get(4).copied().unwrap_or(0),
                t.get(5).copied().unwrap_or(0),
            ]));
            if t.len() < 8 || ulen < 8 || ulen > t.len() {
                return Err(DropReason::BadIpv6);
            }
            0
        }
        _ => return Ok(None),
    };
    Ok(Some(Parsed6 {
        l2_len,
        l4,
        end,
        hop_limit: ip.hop_limit(),
        key: FlowKey {
            proto: ul.protocol,
            saddr: ip.src_addr(),
            sport: u16::from_be_bytes([t[0], t[1]]),
            daddr: ip.dst_addr(),
            dport: u16::from_be_bytes([t[2], t[3]]),
        },
        tcp_flags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut d = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let plen = (ext.len() + l4.len()) as u16;
        d.extend_from_slice(&[0x60, 0, 0, 0]);
        d.extend_from_slice(&plen.to_be_bytes());
        d.extend_from_slice(&[next, 64]);
        d.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        d.extend_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        d.extend_from_slice(ext);
        d.extend_from_slice(l4);
        d
    }

    const TCP_SYN: [u8; 20] = [
        0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    const UDP: [u8; 8] = [0x04, 0xd2, 0, 53, 0, 8, 0, 0];

    #[test]
    fn tcp_behind_dest_opts() {
        let d = frame(60, &[6, 0, 1, 4, 0, 0, 0, 0], &TCP_SYN);
        let p = parse6(&d).unwrap().unwrap();
        assert_eq!((p.l2_len, p.l4, p.end), (14, 62, d.len()));
        assert_eq!(
            (p.key.proto, p.key.sport, p.key.dport, p.tcp_flags),
            (6, 1234, 80, 0x02)
        );
        assert_eq!(p.key.daddr, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        let d = frame(17, &[], &UDP);
        assert_eq!(parse6(&d).unwrap().unwrap().key.dport, 53);
    }

    #[test]
    fn kernel_keeps_icmpv6_and_others() {
        // Neighbour solicitation (135) behind Hop-by-Hop (MLD uses one).
        let ns = [135, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse6(&frame(58, &[], &ns)), Ok(None));
        assert_eq!(parse6(&frame(0, &[58, 0, 5, 2, 0, 0, 1, 0], &ns)), Ok(None));
        assert_eq!(parse6(&frame(50, &[], &UDP)), Ok(None));
        let mut v4 = frame(17, &[], &UDP);
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse6(&v4), Ok(None));
    }

    #[test]
    fn hostile_frames_are_counted_drops() {
        let frag = [6, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(
            parse6(&frame(44, &frag, &TCP_SYN)),
            Err(DropReason::Ipv6Fragment)
        );
        // Truncated transport headers.
        assert_eq!(
            parse6(&frame(6, &[], &TCP_SYN[..19])),
            Err(DropReason::BadIpv6)
        );
        let mut bad_doff = TCP_SYN;
        bad_doff[12] = 0x40;
        assert_eq!(parse6(&frame(6, &[], &bad_doff)), Err(DropReason::BadIpv6));
        assert_eq!(parse6(&frame(17, &[], &UDP[..7])), Err(DropReason::BadIpv6));
        // Extension header longer than the payload; a chain too long.
        assert_eq!(
            parse6(&frame(60, &[6, 9, 0, 0, 0, 0, 0, 0], &TCP_SYN)),
            Err(DropReason::BadIpv6)
        );
        let chain: Vec<u8> = (0..9).flat_map(|_| [60, 0, 1, 4, 0, 0, 0, 0]).collect();
        assert_eq!(
            parse6(&frame(60, &chain, &TCP_SYN)),
            Err(DropReason::BadIpv6)
        );
        // Every truncation of a good frame is a drop or not ours, never a panic.
        let d = frame(60, &[6, 0, 1, 4, 0, 0, 0, 0], &TCP_SYN);
        for n in 0..d.len() {
            let _ = parse6(&d[..n]);
        }
    }
}
