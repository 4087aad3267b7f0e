//! DR — Direct Routing (ipvsadm `-g`, "Route"; `ip_vs_dr_xmit`).
//!
//! The frame is sent unchanged above layer 2: only the destination MAC
//! becomes the real server's and the source MAC the director's port. The
//! IP packet still says client → VIP, so the real server must accept the
//! VIP as a local address without answering ARP for it (VIP on `lo` with
//! `arp_ignore=1`, `arp_announce=2` — what the old "hidden" patch did) and
//! must sit on the same layer-2 segment as the director. It answers the
//! client directly; replies never pass the director.
//!
//! The packet leaves as it came, so it must fit the egress port's MTU;
//! one that does not is answered with "fragmentation needed" (DF) or
//! dropped, as IPVS's `ensure_mtu_is_adequate` does.
//!
//! IPv6 (`ip_vs_dr_xmit_v6`): the same, with the VIP on the real server's
//! `lo` added `nodad` and no neighbour advertisement for it (see
//! `scripts/realserver.sh`). The hop limit is decremented
//! (`hop::decrement_hop_limit`): IPVS decrements it in every mode
//! since Linux 4.10 ("ipvs: Decrement ttl", `decrement_ttl` in
//! `__ip_vs_get_out_rt_v6`), and a packet arriving with 1 is dropped
//! (`hop_limit`). IPv4 DR keeps its TTL (the older IPVS behaviour).

use super::hop::{Hop, check_mtu, decrement_hop_limit, send};
use crate::frame::{Frame, Verdict};
use crate::wire::Layout;

/// Forwards the frame to the real server behind `hop`.
#[inline]
pub fn xmit(frame: &mut Frame<'_>, hop: &Hop) -> Verdict {
    send(frame, hop)
}

/// Whether the packet is too big for the egress MTU `mtu`: `Some` with
/// the MTU to report (`None` inside: it may be fragmented).
#[inline]
pub fn too_big(frame: &Frame<'_>, l: &Layout, mtu: u16) -> Option<Option<u16>> {
    check_mtu(frame, l, 0, mtu)
}

/// Forwards an IPv6 frame (its header at `l2_len`) to the real server
/// behind `hop`, its hop limit decremented.
#[inline]
pub fn xmit6(frame: &mut Frame<'_>, l2_len: usize, hop: &Hop) -> Verdict {
    if let Err(v) = decrement_hop_limit(frame, l2_len) {
        return v;
    }
    send(frame, hop)
}
