//! UDP datagrams (RFC 768).
//!
//! The buffer is the IP payload. `new_checked` proves `8 <= len() <=
//! buffer.len()`; `payload()` and the checksum stop at the UDP length, not
//! at the end of the buffer.
//!
//! A checksum field of 0 means "not computed" in IPv4 and is invalid in
//! IPv6, so a computed 0 is sent as 0xffff; an incremental update that
//! yields 0 must be mapped the same way by its caller.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::ipv4::PROTO_UDP;
use super::{WireError, read_u16, write_u16};

pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without looking at it. Getters panic if the length
    /// field does not fit the buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking `8 <= length field <= buffer.len()`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let packet = UdpPacket { buffer };
        let field_len = usize::from(packet.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(WireError::BadLength);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// The length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Sum of the datagram (up to its length field) with `pseudo`.
    #[inline]
    fn sum_with(&self, pseudo: u32) -> u16 {
        let datagram = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::fold(checksum::combine(pseudo, checksum::sum(datagram)))
    }

    /// True if the checksum is correct for IPv4 from `src` to `dst`, or
    /// absent (0).
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || self.sum_with(checksum::pseudo_header_v4(src, dst, PROTO_UDP, self.len())) == 0xffff
    }

    /// True if the checksum is correct for IPv6 from `src` to `dst` (where
    /// it is mandatory: 0 fails).
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let pseudo = checksum::pseudo_header_v6(src, dst, PROTO_UDP, u32::from(self.len()));
        self.checksum() != 0 && self.sum_with(pseudo) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], port);
    }

    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], len);
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], checksum);
    }

    #[inline]
    fn fill_with(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = !self.sum_with(pseudo);
        // 0 on the wire means "no checksum"; send zero as 0xffff.
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes the checksum for IPv4 from `src` to `dst` (a computed 0 is
    /// written as 0xffff).
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.len();
        self.fill_with(checksum::pseudo_header_v4(src, dst, PROTO_UDP, len));
    }

    /// Computes the checksum for IPv6 from `src` to `dst` (a computed 0 is
    /// written as 0xffff).
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = u32::from(self.len());
        self.fill_with(checksum::pseudo_header_v6(src, dst, PROTO_UDP, len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    /// A DNS query for example.com A, 192.168.1.10:41853 -> 192.168.1.1:53.
    /// Checksum computed independently of this crate.
    const DNS_QUERY: [u8; 37] = [
        0xa3, 0x7d, 0x00, 0x35, 0x00, 0x25, 0xee, 0xfc, // UDP header
        0x1a, 0x2b, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // DNS header
        0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, // QNAME
        0x00, 0x01, 0x00, 0x01, // QTYPE A, QCLASS IN
    ];

    #[test]
    fn dns_fixture() {
        let u = UdpPacket::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(u.src_port(), 41853);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 37);
        assert_eq!(u.checksum(), 0xeefc);
        assert_eq!(u.payload().len(), 29);
        assert_eq!(&u.payload()[..2], &[0x1a, 0x2b]);
        assert!(u.verify_checksum_v4(SRC, DST));
        assert!(!u.verify_checksum_v4(SRC, Ipv4Addr::new(192, 168, 1, 2)));
    }

    #[test]
    fn padding_is_not_covered() {
        let mut b = DNS_QUERY.to_vec();
        b.extend_from_slice(&[0xee; 9]);
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(u.payload().len(), 29);
        assert!(u.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn refuses() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&DNS_QUERY[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in HEADER_LEN..DNS_QUERY.len() {
            assert_eq!(
                UdpPacket::new_checked(&DNS_QUERY[..len]),
                Err(WireError::BadLength)
            );
        }
        for field_len in 0..8u16 {
            let mut b = DNS_QUERY;
            b[4..6].copy_from_slice(&field_len.to_be_bytes());
            assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::BadLength));
        }
        let mut b = DNS_QUERY;
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(UdpPacket::new_checked(&b[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn zero_checksum() {
        let mut b = DNS_QUERY;
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_checksum(0);
        assert!(u.verify_checksum_v4(SRC, DST), "0 = not computed in IPv4");
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert!(!u.verify_checksum_v6(&s6, &d6), "0 is invalid in IPv6");
        u.fill_checksum_v6(&s6, &d6);
        assert!(u.verify_checksum_v6(&s6, &d6));

        // Make the payload sum come out so the computed checksum is 0:
        // find the payload word that forces it, then check 0xffff is sent.
        let mut b = [0u8; 10];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(1000);
        u.set_dst_port(2000);
        u.set_len(10);
        let pseudo = checksum::pseudo_header_v4(SRC, DST, PROTO_UDP, 10);
        let rest = checksum::fold(checksum::combine(pseudo, checksum::sum(&u.buffer[..8])));
        // Payload word w with rest + w = 0xffff (one's complement).
        u.buffer[8..10].copy_from_slice(&(0xffff - rest).to_be_bytes());
        u.fill_checksum_v4(SRC, DST);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum_v4(SRC, DST));
        u.fill_checksum_v6(&s6, &d6);
        assert!(u.verify_checksum_v6(&s6, &d6));
    }

    #[test]
    fn setters() {
        let mut b = DNS_QUERY;
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_src_port(5353);
        u.set_dst_port(5354);
        u.set_len(20);
        u.fill_checksum_v4(SRC, DST);
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (5353, 5354, 20));
        assert_eq!(u.payload().len(), 12);
        assert!(u.verify_checksum_v4(SRC, DST));
    }
}
