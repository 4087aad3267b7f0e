//! IPv4 headers (RFC 791).
//!
//! `new_checked` proves `20 <= header_len() <= total_len() <= buffer.len()`,
//! so the header, its options and `payload()` (which ends at `total_len`,
//! not at the end of the buffer: short frames carry Ethernet padding) are
//! all in bounds. It does not verify the checksum; that is the caller's
//! choice ([`Ipv4Packet::verify_checksum`]), and it does not reassemble:
//! [`Ipv4Packet::is_fragment`] tells the caller when the L4 header may be
//! absent.

use core::net::Ipv4Addr;

use super::checksum;
use super::{WireError, read_u16, read_u32, write_u16, write_u32};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Header without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without looking at it. Getters panic if the lengths
    /// in the header do not fit the buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and that
    /// `20 <= IHL*4 <= total_len <= buffer.len()`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let data = buffer.as_ref();
        if data.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let packet = Ipv4Packet { buffer };
        if packet.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = packet.header_len();
        let len = packet.buffer.as_ref().len();
        if header_len < MIN_HEADER_LEN || header_len > len {
            return Err(WireError::BadHeaderLen);
        }
        let total_len = usize::from(packet.total_len());
        if total_len < header_len || total_len > len {
            return Err(WireError::BadTotalLen);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::IDENT])
    }

    #[inline]
    fn flags_frag(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.flags_frag() & OFFSET_MASK
    }

    /// True for any fragment, first included (MF set or offset non-zero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(&self.buffer.as_ref()[field::SRC]))
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(&self.buffer.as_ref()[field::DST]))
    }

    /// Option bytes (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The bytes after the header up to `total_len` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True if the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble and the IHL from a header length in bytes
    /// (a multiple of 4, at most 60).
    #[inline]
    pub fn set_version_ihl(&mut self, version: u8, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && header_len <= 60);
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], len);
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(&mut self.buffer.as_mut()[field::IDENT], ident);
    }

    /// Sets DF, MF and the fragment offset (8-byte units, 13 bits).
    #[inline]
    pub fn set_flags_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = offset & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        write_u16(&mut self.buffer.as_mut()[field::FLG_OFF], v);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], checksum);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_u32(&mut self.buffer.as_mut()[field::SRC], addr.to_bits());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_u32(&mut self.buffer.as_mut()[field::DST], addr.to_bits());
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real header: 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF,
    /// total length 115, checksum 0xb861. Followed by 95 payload bytes.
    fn real() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        p.extend((0..95).map(|i| i as u8));
        p
    }

    /// IHL 6 with a Router Alert option (94 04 0000), an IGMPv2 report
    /// header as sent by Linux: 10.0.0.1 -> 224.0.0.22, TTL 1, TOS 0xc0.
    const WITH_OPTIONS: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0xfa, 0x00, 0x0a, 0x00, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00, // option
        0x16, 0x00, 0x09, 0x03, 0xe0, 0x00, 0x00, 0xfc, // IGMP
    ];

    #[test]
    fn real_header() {
        let buf = real();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0);
        assert_eq!(p.total_len(), 115);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 95);
        assert_eq!(p.payload()[94], 94);
        assert!(p.verify_checksum());
    }

    #[test]
    fn options_header() {
        let p = Ipv4Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0xc0);
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), 2);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &WITH_OPTIONS[24..]);
        assert_eq!(p.dst_addr(), Ipv4Addr::new(224, 0, 0, 22));
        assert!(p.verify_checksum());
        // The checksum covers the options.
        let mut buf = WITH_OPTIONS;
        buf[22] = 1;
        assert!(!Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn padding_is_not_payload() {
        let mut buf = real();
        buf.extend_from_slice(&[0; 6]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 95);
    }

    #[test]
    fn refuses() {
        let buf = real();
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in MIN_HEADER_LEN..buf.len() {
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..len]),
                Err(WireError::BadTotalLen)
            );
        }
        let with = |i: usize, v: u8| {
            let mut b = real();
            b[i] = v;
            b
        };
        assert_eq!(
            Ipv4Packet::new_checked(&with(0, 0x65)[..]),
            Err(WireError::BadVersion)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&with(0, 0x05)[..]),
            Err(WireError::BadVersion)
        );
        for ihl in 0..5 {
            assert_eq!(
                Ipv4Packet::new_checked(&with(0, 0x40 | ihl)[..]),
                Err(WireError::BadHeaderLen)
            );
        }
        // IHL 15 = 60 bytes > a 24-byte buffer.
        let mut short = WITH_OPTIONS[..24].to_vec();
        short[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&short[..]),
            Err(WireError::BadHeaderLen)
        );
        // total_len below the header length.
        let mut b = real();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadTotalLen));
        let mut b = WITH_OPTIONS;
        b[2..4].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadTotalLen));
        // total_len past the buffer.
        let mut b = real();
        b[2..4].copy_from_slice(&116u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(WireError::BadTotalLen));
        // Header only is fine.
        let mut b = real();
        b[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert!(
            Ipv4Packet::new_checked(&b[..])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn fragments() {
        let mut buf = real();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_flags_frag(false, true, 0);
        assert!(p.is_fragment() && p.more_frags() && !p.dont_frag());
        p.set_flags_frag(false, false, 185);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 185);
        p.set_flags_frag(true, true, 0xffff);
        assert_eq!(p.frag_offset(), 0x1fff);
        assert!(p.dont_frag() && p.more_frags());
        assert_eq!(&buf[6..8], &[0x7f, 0xff]);
    }

    #[test]
    fn build_and_rewrite() {
        let mut buf = [0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version_ihl(4, 20);
        p.set_tos(0x10);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_flags_frag(true, false, 0);
        p.set_ttl(63);
        p.set_protocol(PROTO_IPIP);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.version(), p.header_len(), p.tos(), p.ident()),
            (4, 20, 0x10, 0x1234)
        );
        assert_eq!((p.ttl(), p.protocol()), (63, PROTO_IPIP));
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);

        // The data-path rewrite: new destination, incremental checksum.
        let mut buf2 = buf;
        let mut p = Ipv4Packet::new_checked(&mut buf2[..]).unwrap();
        let old = p.dst_addr();
        let new = Ipv4Addr::new(172, 16, 5, 9);
        p.set_dst_addr(new);
        let c = checksum::update32(p.checksum(), old.to_bits(), new.to_bits());
        p.set_checksum(c);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
        // TTL decrement as a 16-bit word with the protocol.
        let old = u16::from_be_bytes([p.ttl(), p.protocol()]);
        p.set_ttl(p.ttl() - 1);
        let c = checksum::update16(
            p.checksum(),
            old,
            u16::from_be_bytes([p.ttl(), p.protocol()]),
        );
        p.set_checksum(c);
        assert!(p.verify_checksum());
    }
}
