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

/// Decrements the hop limit of the IPv6 packet at `l2_len`, as every
/// forwarder must (RFC 8200 §3) and IPVS's `decrement_ttl` does for
/// IPv6 in every mode; one that arrives with hop limit 1 or 0 is dropped
/// (`hop_limit`; no ICMPv6 time exceeded is sent). IPv6 has no header
/// checksum, and the hop limit is in no pseudo-header: nothing else
/// changes.
#[inline]
pub(crate) fn decrement_hop_limit(frame: &mut Frame<'_>, l2_len: usize) -> Result<(), Verdict> {
    let at = l2_len + 7;
    let d = frame.data_mut();
    match d[at] {
        0 | 1 => Err(drop(DropReason::HopLimit)),
        h => {
            d[at] = h - 1;
            Ok(())
        }
    }
}

/// Shorthand for the drops a rewrite can cause.
#[inline]
pub(crate) fn drop(r: DropReason) -> Verdict {
    Verdict::Drop(r)
}
