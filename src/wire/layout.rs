//! Where a parsed IPv4 packet sits in its frame: the offsets every stage
//! after the parser works from.

/// Where the parsed packet sits in the frame (offsets from the frame's
/// first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Length of the Ethernet header (14, or 18 with a VLAN tag).
    pub l2_len: usize,
    /// Length of the IPv4 header, options included.
    pub ihl: usize,
    /// IPv4 total length.
    pub ip_len: usize,
}

impl Layout {
    #[inline]
    pub fn l4(&self) -> usize {
        self.l2_len + self.ihl
    }
}

/// Where a parsed IPv6 packet sits in its frame (offsets from the frame's
/// first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout6 {
    /// Length of the Ethernet header (14, or 18 with a VLAN tag).
    pub l2_len: usize,
    /// Start of the transport header, after any extension headers.
    pub l4: usize,
    /// The IPv6 packet's length: the fixed header and its payload length.
    pub ip_len: usize,
}
