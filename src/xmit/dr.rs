//! DR — Direct Routing (ipvsadm `-g`, "Route"; `ip_vs_dr_xmit`).
//!
//! The frame is sent unchanged above layer 2: only the destination MAC
//! becomes the real server's and the source MAC the director's port. The
//! IP packet still says client → VIP, so the real server must accept the
//! VIP as a local address without answering ARP for it (VIP on `lo` with
//! `arp_ignore=1`, `arp_announce=2` — what the old "hidden" patch did) and
//! must sit on the same layer-2 segment as the director. It answers the
//! client directly; replies never pass the director.

use super::{Hop, send};
use crate::pipeline::{Frame, Verdict};

/// Forwards the frame to the real server behind `hop`.
#[inline]
pub fn xmit(frame: &mut Frame<'_>, hop: &Hop) -> Verdict {
    send(frame, hop)
}
