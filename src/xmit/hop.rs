//! What every transmitter shares: the next hop, and writing it into the
//! frame.

use crate::frame::{DropReason, Frame, Verdict};
use crate::wire::Layout;

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

/// Whether a packet of `ip_len` bytes (`extra` more once encapsulated)
/// exceeds `mtu`: `Some(Some(room))` with the MTU to report when it has DF
/// set, `Some(None)` when it may be fragmented, `None` when it fits.
#[inline]
pub(crate) fn check_mtu(
    frame: &Frame<'_>,
    l: &Layout,
    extra: usize,
    mtu: u16,
) -> Option<Option<u16>> {
    if l.ip_len + extra <= usize::from(mtu) {
        return None;
    }
    let d = frame.data();
    let df = crate::wire::ipv4::Ipv4Packet::new_unchecked(&d[l.l2_len..]).dont_frag();
    Some(df.then(|| mtu.saturating_sub(extra as u16)))
}

/// Shorthand for the drops a rewrite can cause.
#[inline]
pub(crate) fn drop(r: DropReason) -> Verdict {
    Verdict::Drop(r)
}
