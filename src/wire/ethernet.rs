//! Ethernet II frames, untagged or with exactly one 802.1Q/802.1ad tag.
//!
//! `new_checked` proves the whole L2 header is present, including the tag
//! when there is one, so `ethertype()` and `payload()` never look past the
//! buffer. A second stacked tag is refused as `Unsupported` rather than
//! parsed: the data path has no use for QinQ inner tags, and refusing keeps
//! the header length one of two constants.

use super::WireError;
use super::read_u16;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Untagged header: destination, source, ethertype.
pub const HEADER_LEN: usize = 14;
/// Header with one VLAN tag (TPID + TCI) before the inner ethertype.
pub const VLAN_HEADER_LEN: usize = 18;

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

#[inline]
fn is_tag(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ
}

/// A view over an Ethernet II frame (without FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without looking at it. Getters panic if it is shorter
    /// than the header they read.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking that the whole header, tag included,
    /// is present and that there is at most one tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let data = buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if is_tag(read_u16(&data[field::ETHERTYPE])) {
            if data.len() < VLAN_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            if is_tag(read_u16(&data[field::VLAN_ETHERTYPE])) {
                return Err(WireError::Unsupported);
            }
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    #[inline]
    fn is_tagged(&self) -> bool {
        is_tag(read_u16(&self.buffer.as_ref()[field::ETHERTYPE]))
    }

    /// The tag control information (PCP, DEI, VLAN ID) if the frame is
    /// tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| read_u16(&self.buffer.as_ref()[field::VLAN_TCI]))
    }

    /// The ethertype of the payload: the inner one if the frame is tagged.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let data = self.buffer.as_ref();
        if self.is_tagged() {
            read_u16(&data[field::VLAN_ETHERTYPE])
        } else {
            read_u16(&data[field::ETHERTYPE])
        }
    }

    /// [`HEADER_LEN`] or, when tagged, [`VLAN_HEADER_LEN`].
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: &[u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(addr);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: &[u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(addr);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An untagged IPv4 frame header (from a capture) with 4 payload bytes.
    const UNTAGGED: [u8; 18] = [
        0x00, 0x1b, 0x21, 0x3c, 0x9d, 0xf8, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14,
    ];

    /// Tagged: TPID 0x8100, PCP 5, DEI 0, VID 100, inner IPv6.
    const TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc, // src
        0x81, 0x00, 0xa0, 0x64, // tag
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    #[test]
    fn untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [0x00, 0x1b, 0x21, 0x3c, 0x9d, 0xf8]);
        assert_eq!(f.src_addr(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.header_len(), HEADER_LEN);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
    }

    #[test]
    fn tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.vlan_tci().unwrap() & 0x0fff, 100);
        assert_eq!(f.vlan_tci().unwrap() >> 13, 5);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.header_len(), VLAN_HEADER_LEN);
        assert_eq!(f.payload(), &[0x60, 0x00]);

        let mut qinq = TAGGED;
        qinq[12..14].copy_from_slice(&ETHERTYPE_QINQ.to_be_bytes());
        let f = EthernetFrame::new_checked(&qinq[..]).unwrap();
        assert_eq!(
            (f.vlan_tci(), f.ethertype()),
            (Some(0xa064), ETHERTYPE_IPV6)
        );
    }

    #[test]
    fn refuses() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&UNTAGGED[..len]),
                Err(WireError::Truncated)
            );
        }
        for len in HEADER_LEN..VLAN_HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&TAGGED[..len]),
                Err(WireError::Truncated)
            );
        }
        // Header only, empty payload: fine.
        assert!(EthernetFrame::new_checked(&TAGGED[..VLAN_HEADER_LEN]).is_ok());
        for inner in [ETHERTYPE_VLAN, ETHERTYPE_QINQ] {
            let mut stacked = TAGGED;
            stacked[16..18].copy_from_slice(&inner.to_be_bytes());
            assert_eq!(
                EthernetFrame::new_checked(&stacked[..]),
                Err(WireError::Unsupported)
            );
        }
    }

    #[test]
    fn setters() {
        let mut buf = TAGGED;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(&[1, 2, 3, 4, 5, 6]);
        f.set_src_addr(&[7, 8, 9, 10, 11, 12]);
        f.payload_mut()[0] = 0x61;
        assert_eq!(f.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(buf[18], 0x61);
        assert_eq!(&buf[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }
}
