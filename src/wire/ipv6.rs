//! IPv6 headers (RFC 8200) and the walk over extension headers.
//!
//! `new_checked` proves the fixed header is present and that
//! `40 + payload_len <= buffer.len()`; `payload()` ends at the payload
//! length, so trailing Ethernet padding is excluded. Jumbograms (payload
//! length 0 with a Hop-by-Hop jumbo option) are not supported: they read as
//! an empty payload.
//!
//! [`Ipv6Packet::upper_layer`] finds the transport header behind any
//! extension headers. The walk is bounded (at most [`MAX_EXT_HEADERS`]) so
//! a hostile chain costs a fixed amount of work, and every length it reads
//! is checked against the payload before it is used.

use core::net::Ipv6Addr;

use super::{WireError, read_u16, read_u32, write_u16};

/// Fixed header length.
pub const HEADER_LEN: usize = 40;
pub const PROTO_ICMPV6: u8 = 58;

const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AUTH: u8 = 51;
const NH_DEST_OPTS: u8 = 60;

/// Extension headers [`Ipv6Packet::upper_layer`] walks before it gives up.
pub const MAX_EXT_HEADERS: usize = 8;

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Where the upper-layer (transport) header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The first next-header value that is not a known extension header
    /// (e.g. TCP, UDP, ICMPv6, ESP, or No Next Header).
    pub protocol: u8,
    /// Byte offset of that header from the start of the IPv6 header.
    pub offset: usize,
    /// A Fragment header was present: the upper-layer header may be in
    /// another fragment (non-zero offset) or the payload incomplete.
    pub fragment: bool,
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without looking at it. Getters panic if the payload
    /// length does not fit the buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and that the payload
    /// length fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let packet = Ipv6Packet { buffer };
        if packet.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if packet.end() > packet.buffer.as_ref().len() {
            return Err(WireError::BadTotalLen);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// End of the packet: header plus payload length.
    #[inline]
    fn end(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// The DSCP and ECN byte.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Length of everything after the fixed header, extension headers
    /// included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Ipv6Addr::from(a)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Ipv6Addr::from(a)
    }

    /// Everything after the fixed header up to the payload length,
    /// extension headers included.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.end()]
    }

    /// Walks the extension headers to the upper-layer header.
    ///
    /// Knows Hop-by-Hop, Routing, Fragment, Destination Options and AH;
    /// stops at any other next-header value (ESP and No Next Header
    /// included) and returns it. `Truncated` if an extension header runs
    /// past the payload, `Unsupported` after [`MAX_EXT_HEADERS`].
    pub fn upper_layer(&self) -> Result<UpperLayer, WireError> {
        let data = &self.buffer.as_ref()[..self.end()];
        let mut protocol = self.next_header();
        let mut offset = HEADER_LEN;
        let mut fragment = false;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match protocol {
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                    let hdr_len = *data.get(offset + 1).ok_or(WireError::Truncated)?;
                    (usize::from(hdr_len) + 1) * 8
                }
                NH_AUTH => {
                    let payload_len = *data.get(offset + 1).ok_or(WireError::Truncated)?;
                    (usize::from(payload_len) + 2) * 4
                }
                NH_FRAGMENT => {
                    fragment = true;
                    8
                }
                _ => {
                    return Ok(UpperLayer {
                        protocol,
                        offset,
                        fragment,
                    });
                }
            };
            if offset + len > data.len() {
                return Err(WireError::Truncated);
            }
            protocol = data[offset];
            offset += len;
        }
        Err(WireError::Unsupported)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub fn set_src_addr(&mut self, addr: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], len);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::1 -> 2001:db8::2, TC 0xb8 (EF), flow 0x12345, hop limit
    /// 64, then Hop-by-Hop (8 bytes: PadN), Fragment (offset 0, M=1,
    /// id 0xdeadbeef), and an 8-byte UDP header 1234 -> 53.
    const HBH_FRAG: [u8; 64] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x18, 0x00, 0x40, // ver/tc/flow, len 24, HBH, hlim
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // HBH -> Fragment, PadN
        0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // Fragment -> UDP, M=1
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
    ];

    #[test]
    fn fixed_header() {
        let p = Ipv6Packet::new_checked(&HBH_FRAG[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), NH_HOP_BY_HOP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &HBH_FRAG[40..]);
    }

    #[test]
    fn walks_extension_headers() {
        let p = Ipv6Packet::new_checked(&HBH_FRAG[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: 17,
                offset: 56,
                fragment: true
            })
        );
        // No extension headers.
        let mut b = HBH_FRAG;
        b[6] = 6;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: 6,
                offset: 40,
                fragment: false
            })
        );
        // Hop-by-Hop then No Next Header: returned as the protocol.
        let mut b = HBH_FRAG;
        b[40] = 59;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: 59,
                offset: 48,
                fragment: false
            })
        );
        // ESP stops the walk too.
        b[40] = 50;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap().protocol, 50);
    }

    #[test]
    fn auth_header_length() {
        // AH with payload len 4: (4 + 2) * 4 = 24 bytes, then TCP.
        let mut b = HBH_FRAG[..40].to_vec();
        b[4..6].copy_from_slice(&24u16.to_be_bytes());
        b[6] = NH_AUTH;
        b.extend_from_slice(&[6, 4, 0, 0]);
        b.extend_from_slice(&[0xaa; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: 6,
                offset: 64,
                fragment: false
            })
        );
        // One byte short.
        b.pop();
        b[4..6].copy_from_slice(&23u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
    }

    #[test]
    fn walk_refuses() {
        // The walk stays inside payload_len even if the buffer is longer.
        let mut b = HBH_FRAG;
        b[4..6].copy_from_slice(&15u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
        b[4..6].copy_from_slice(&1u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(WireError::Truncated));
        // A chain of 9 Destination Options headers is too long; 8 is fine.
        for (n, want) in [(8, Ok(17)), (9, Err(WireError::Unsupported))] {
            let mut b = HBH_FRAG[..40].to_vec();
            b[4..6].copy_from_slice(&(n as u16 * 8).to_be_bytes());
            b[6] = NH_DEST_OPTS;
            for i in 0..n {
                let next = if i + 1 == n { 17 } else { NH_DEST_OPTS };
                b.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.upper_layer().map(|u| u.protocol), want);
        }
    }

    #[test]
    fn refuses() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv6Packet::new_checked(&HBH_FRAG[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in HEADER_LEN..HBH_FRAG.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&HBH_FRAG[..len]),
                Err(WireError::BadTotalLen)
            );
        }
        let mut b = HBH_FRAG;
        b[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(WireError::BadVersion));
        // Padding after the payload is not payload.
        let mut b = HBH_FRAG.to_vec();
        b.extend_from_slice(&[0; 4]);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().payload().len(), 24);
    }

    #[test]
    fn setters() {
        let mut b = HBH_FRAG;
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        let a: Ipv6Addr = "fd00::10".parse().unwrap();
        let d: Ipv6Addr = "fd00::20".parse().unwrap();
        p.set_src_addr(&a);
        p.set_dst_addr(&d);
        p.set_hop_limit(3);
        p.set_payload_len(16);
        p.payload_mut()[0] = 59;
        assert_eq!((p.src_addr(), p.dst_addr(), p.hop_limit()), (a, d, 3));
        assert_eq!(p.payload().len(), 16);
        assert_eq!(p.upper_layer().unwrap().protocol, 59);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0x12345)
        );
    }
}
