//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages.
//!
//! The buffer is the whole message (the IP payload): both checksums cover
//! all of it. `new_checked` proves the 8-byte header is present. For error
//! messages `payload()` is the embedded (invoking) datagram, which the
//! caller parses with the IP views to find the connection it belongs to;
//! it may be truncated, so parse it with `new_checked` like anything else.

use core::net::Ipv6Addr;

use super::checksum;
use super::ipv6::PROTO_ICMPV6;
use super::{WireError, read_u16, read_u32, write_u16, write_u32};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAM_PROBLEM: u8 = 12;
/// Destination Unreachable code: fragmentation needed and DF set (PMTUD).
pub const CODE_FRAG_NEEDED: u8 = 4;

pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub const ICMPV6_PARAM_PROBLEM: u8 = 4;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// Type, code, checksum and the 4-byte rest of header.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
}

/// A view over an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// A view over an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Accessors shared by both versions: the header layout is the same.
macro_rules! common {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` without looking at it. Getters panic if it is
            /// shorter than 8 bytes.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wraps `buffer` after checking the 8-byte header is present.
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self, WireError> {
                if buffer.as_ref().len() < HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                Ok($name { buffer })
            }

            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            #[inline]
            pub fn msg_type(&self) -> u8 {
                self.buffer.as_ref()[field::TYPE]
            }

            #[inline]
            pub fn code(&self) -> u8 {
                self.buffer.as_ref()[field::CODE]
            }

            #[inline]
            pub fn checksum(&self) -> u16 {
                read_u16(&self.buffer.as_ref()[field::CHECKSUM])
            }

            /// Bytes 4..8: identifier and sequence for echo, MTU for
            /// "too big", unused (0) for most errors.
            #[inline]
            pub fn rest_of_header(&self) -> u32 {
                read_u32(&self.buffer.as_ref()[field::REST])
            }

            /// Everything after the 8-byte header; for error messages the
            /// embedded datagram.
            #[inline]
            pub fn payload(&self) -> &[u8] {
                &self.buffer.as_ref()[HEADER_LEN..]
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            #[inline]
            pub fn set_msg_type(&mut self, msg_type: u8) {
                self.buffer.as_mut()[field::TYPE] = msg_type;
            }

            #[inline]
            pub fn set_code(&mut self, code: u8) {
                self.buffer.as_mut()[field::CODE] = code;
            }

            #[inline]
            pub fn set_checksum(&mut self, checksum: u16) {
                write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], checksum);
            }

            #[inline]
            pub fn set_rest_of_header(&mut self, rest: u32) {
                write_u32(&mut self.buffer.as_mut()[field::REST], rest);
            }

            #[inline]
            pub fn payload_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[HEADER_LEN..]
            }
        }
    };
}

common!(Icmpv4Packet);
common!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::NEXT_HOP_MTU])
    }

    /// Destination Unreachable, Source Quench, Redirect, Time Exceeded or
    /// Parameter Problem: the messages that quote a datagram.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(self.msg_type(), 3 | 4 | 5 | 11 | 12)
    }

    /// True if the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(&mut self.buffer.as_mut()[field::NEXT_HOP_MTU], mtu);
    }

    /// Recomputes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// MTU of a Packet Too Big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// Error messages are types 0..=127 (RFC 4443 §2.1).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    #[inline]
    fn sum_with(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, PROTO_ICMPV6, data.len() as u32);
        checksum::fold(checksum::combine(pseudo, checksum::sum(data)))
    }

    /// True if the checksum (which covers the IPv6 pseudo-header) is
    /// correct for a message from `src` to `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.sum_with(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        self.set_rest_of_header(mtu);
    }

    /// Recomputes the checksum for a message from `src` to `dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = !self.sum_with(src, dst);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ping` from Linux: echo request id 0x1c46 seq 1, 16 bytes of data.
    /// Checksum computed independently of this crate.
    const ECHO: [u8; 24] = [
        0x08, 0x00, 0x22, 0xf8, 0x1c, 0x46, 0x00, 0x01, // header
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e,
        0x1f,
    ];
    const ECHO_CHECKSUM: u16 = 0x22f8;

    /// Fragmentation needed, next-hop MTU 1400, quoting an IPv4+TCP header.
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x05, 0x78, // type 3 code 4, MTU 1400
        0x45, 0x00, 0x05, 0xdc, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, // quoted IPv4 header
        0x00, 0x50, 0xc8, 0x22, 0x00, 0x00, 0x00, 0x01, // first 8 bytes of TCP
    ];

    #[test]
    fn echo_fixture() {
        let b = ECHO;
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), ICMP_ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), ECHO_CHECKSUM);
        assert_eq!(p.rest_of_header(), 0x1c46_0001);
        assert!(!p.is_error());
        assert_eq!(p.payload().len(), 16);
        assert!(p.verify_checksum());
    }

    #[test]
    fn frag_needed() {
        let mut b = FRAG_NEEDED;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.is_error());
        assert_eq!(
            (p.msg_type(), p.code()),
            (ICMP_DEST_UNREACH, CODE_FRAG_NEEDED)
        );
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(p.payload()[0], 0x45);
        assert_eq!(p.payload().len(), 28);
        p.set_next_hop_mtu(1280);
        assert!(!p.verify_checksum());
        assert_eq!(&b[6..8], &[0x05, 0x00]);
    }

    #[test]
    fn setters_v4() {
        let mut b = ECHO;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ICMP_ECHO_REPLY);
        p.set_code(0);
        p.set_rest_of_header(0xdead_beef);
        p.payload_mut()[0] = 0xff;
        // Echo reply by the incremental path: only the type word changed.
        let c = checksum::update16(ECHO_CHECKSUM, 0x0800, 0x0000);
        let c = checksum::update32(c, 0x1c46_0001, 0xdead_beef);
        let c = checksum::update16(c, 0x1011, 0xff11);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), ICMP_ECHO_REPLY);
        assert_eq!(p.rest_of_header(), 0xdead_beef);
        for t in [3, 4, 5, 11, 12] {
            p.set_msg_type(t);
            assert!(p.is_error());
        }
        for t in [0, 8, 13, 14] {
            p.set_msg_type(t);
            assert!(!p.is_error());
        }
    }

    #[test]
    fn v6() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b = [0u8; 56];
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ICMPV6_PACKET_TOO_BIG);
        p.set_code(0);
        p.set_mtu(1280);
        p.payload_mut()[0] = 0x60;
        p.fill_checksum(&src, &dst);
        assert!(p.verify_checksum(&src, &dst));
        assert!(!p.verify_checksum(&src, &"2001:db8::3".parse().unwrap()));
        assert!(p.is_error());
        assert_eq!(p.mtu(), 1280);
        assert_eq!(p.rest_of_header(), 1280);
        assert_eq!(p.payload().len(), 48);
        p.set_msg_type(ICMPV6_ECHO_REQUEST);
        assert!(!p.is_error());
        p.set_msg_type(ICMPV6_ECHO_REPLY);
        assert!(!p.is_error());
        for t in [
            ICMPV6_DEST_UNREACH,
            ICMPV6_TIME_EXCEEDED,
            ICMPV6_PARAM_PROBLEM,
            127,
        ] {
            p.set_msg_type(t);
            assert!(p.is_error());
        }
    }

    #[test]
    fn refuses() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&ECHO[..len]),
                Err(WireError::Truncated)
            );
            assert_eq!(
                Icmpv6Packet::new_checked(&ECHO[..len]),
                Err(WireError::Truncated)
            );
        }
        assert!(
            Icmpv4Packet::new_checked(&ECHO[..8])
                .unwrap()
                .payload()
                .is_empty()
        );
    }
}
