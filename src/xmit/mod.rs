//! Rewrite: one file per forwarding mode. Each takes the frame as parsed
//! and the connection's real server, rewrites the frame in place (moving it
//! into the headroom where it grows) and says where it goes.

pub mod dr;
pub mod icmp;
pub mod nat;
pub mod tun;

use crate::pipeline::{DropReason, Frame, Verdict};

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

/// The MACs of the next hop and of the director's own port.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    pub port: u8,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
}

/// Writes the Ethernet addresses and sends the frame out of `hop.port`.
#[inline]
pub(crate) fn send(frame: &mut Frame<'_>, hop: &Hop) -> Verdict {
    let d = frame.data_mut();
    d[0..6].copy_from_slice(&hop.dst_mac);
    d[6..12].copy_from_slice(&hop.src_mac);
    Verdict::Tx {
        port: hop.port,
        len: frame.len(),
    }
}

/// Shorthand for the drops a rewrite can cause.
#[inline]
pub(crate) fn drop(r: DropReason) -> Verdict {
    Verdict::Drop(r)
}
