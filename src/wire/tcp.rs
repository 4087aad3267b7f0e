//! TCP segments (RFC 9293).
//!
//! The buffer is the whole segment, i.e. exactly the IP payload: the
//! checksum covers every byte of it, and its length is the segment length
//! in the pseudo-header. `new_checked` proves `20 <= header_len() <=
//! buffer.len()`.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::ipv4::PROTO_TCP;
use super::{WireError, read_u16, read_u32, write_u16, write_u32};

/// Header without options.
pub const MIN_HEADER_LEN: usize = 20;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without looking at it. Getters panic if the data
    /// offset points past the buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking `20 <= data offset × 4 <= len`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let packet = TcpPacket { buffer };
        let header_len = packet.header_len();
        if header_len < MIN_HEADER_LEN || header_len > len {
            return Err(WireError::BadDataOffset);
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }

    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & PSH != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & ACK != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::URGENT])
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Sum of the segment with the given pseudo-header, checksum included.
    #[inline]
    fn sum_with(&self, pseudo: u32) -> u16 {
        checksum::fold(checksum::combine(
            pseudo,
            checksum::sum(self.buffer.as_ref()),
        ))
    }

    /// True if the checksum is correct for this segment carried in IPv4
    /// from `src` to `dst`.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.buffer.as_ref().len() as u16;
        self.sum_with(checksum::pseudo_header_v4(src, dst, PROTO_TCP, len)) == 0xffff
    }

    /// As [`TcpPacket::verify_checksum_v4`] for IPv6.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let len = self.buffer.as_ref().len() as u32;
        self.sum_with(checksum::pseudo_header_v6(src, dst, PROTO_TCP, len)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], port);
    }

    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQ_NUM], seq);
    }

    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        write_u32(&mut self.buffer.as_mut()[field::ACK_NUM], ack);
    }

    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the data offset: a header of `len` bytes (a multiple of 4,
    /// 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(len.is_multiple_of(4) && (MIN_HEADER_LEN..=60).contains(&len));
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4;
    }

    #[inline]
    pub fn set_window(&mut self, window: u16) {
        write_u16(&mut self.buffer.as_mut()[field::WIN_SIZE], window);
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], checksum);
    }

    #[inline]
    fn fill_with(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = !self.sum_with(pseudo);
        self.set_checksum(c);
    }

    /// Recomputes the checksum for IPv4 from `src` to `dst`.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u16;
        self.fill_with(checksum::pseudo_header_v4(src, dst, PROTO_TCP, len));
    }

    /// Recomputes the checksum for IPv6 from `src` to `dst`.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill_with(checksum::pseudo_header_v6(src, dst, PROTO_TCP, len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    /// A Linux SYN, 192.168.1.10:51234 -> 93.184.216.34:80, with the usual
    /// options (MSS 1460, SACK permitted, timestamps, window scale 7).
    /// Checksum computed independently of this crate.
    const SYN_SEGMENT: [u8; 40] = [
        0xc8, 0x22, 0x00, 0x50, // ports
        0x5f, 0x3a, 0x9c, 0x01, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
        0xcb, 0x71, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x8a, 0x1f, 0x3c, 0x42, 0x00, 0x00, 0x00, 0x00, // timestamps
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ];

    #[test]
    fn syn_fixture() {
        let t = TcpPacket::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!(t.src_port(), 51234);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0x5f3a_9c01);
        assert_eq!(t.ack_number(), 0);
        assert_eq!(t.header_len(), 40);
        assert_eq!(t.flags(), SYN);
        assert!(t.syn() && !t.ack() && !t.fin() && !t.rst() && !t.psh());
        assert_eq!(t.window(), 64240);
        assert_eq!(t.checksum(), 0xcb71);
        assert_eq!(t.urgent(), 0);
        assert_eq!(&t.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(t.options().len(), 20);
        assert!(t.payload().is_empty());
        assert!(t.verify_checksum_v4(SRC, DST));
        assert!(!t.verify_checksum_v4(SRC, Ipv4Addr::new(93, 184, 216, 35)));
    }

    #[test]
    fn refuses() {
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(
                TcpPacket::new_checked(&SYN_SEGMENT[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in MIN_HEADER_LEN..SYN_SEGMENT.len() {
            assert_eq!(
                TcpPacket::new_checked(&SYN_SEGMENT[..len]),
                Err(WireError::BadDataOffset)
            );
        }
        for doff in 0..5u8 {
            let mut b = SYN_SEGMENT;
            b[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&b[..]),
                Err(WireError::BadDataOffset)
            );
        }
        let mut b = SYN_SEGMENT;
        b[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&b[..]),
            Err(WireError::BadDataOffset)
        );
        // Bare 20-byte header.
        let mut b = SYN_SEGMENT;
        b[12] = 0x50;
        let t = TcpPacket::new_checked(&b[..20]).unwrap();
        assert!(t.options().is_empty() && t.payload().is_empty());
    }

    #[test]
    fn rewrite_and_checksum() {
        let mut b = SYN_SEGMENT.to_vec();
        b.extend_from_slice(b"hello");
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_seq_number(3);
        t.set_ack_number(4);
        t.set_flags(ACK | PSH | FIN);
        t.fill_checksum_v4(SRC, DST);
        assert!(t.verify_checksum_v4(SRC, DST));
        assert_eq!(
            (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number()),
            (1, 2, 3, 4)
        );
        assert!(t.ack() && t.psh() && t.fin() && !t.syn());
        assert_eq!(t.payload(), b"hello");

        // NAT: new destination port and address, incrementally.
        let new_dst = Ipv4Addr::new(10, 0, 0, 7);
        let c = checksum::update16(t.checksum(), t.dst_port(), 8080);
        let c = checksum::update32(c, DST.to_bits(), new_dst.to_bits());
        t.set_dst_port(8080);
        t.set_checksum(c);
        assert!(t.verify_checksum_v4(SRC, new_dst));

        let s6: Ipv6Addr = "2001:db8::a".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::b".parse().unwrap();
        t.fill_checksum_v6(&s6, &d6);
        assert!(t.verify_checksum_v6(&s6, &d6));
        let n6: Ipv6Addr = "fd00::1:2:3".parse().unwrap();
        let c = checksum::update_bytes(t.checksum(), &d6.octets(), &n6.octets());
        t.set_checksum(c);
        assert!(t.verify_checksum_v6(&s6, &n6));
    }
}
