//! Fragments of NAT real servers' replies (a UDP reply larger than the
//! MTU, say): translated, never forwarded with the real server's address.
//!
//! Only the first fragment carries the ports, so the translation is learnt
//! from it, as Maglev does: the first fragment is looked up as a reply of
//! its connection (5-tuple from its TCP/UDP header), translated as any
//! reply is (source RIP:rport → VIP:vport, the L4 checksum updated
//! incrementally — it covers the whole datagram, and the change is in its
//! pseudo-header and ports only) and remembered in a small per-worker
//! [`FragTable`](crate::conn::frag::FragTable) under (source,
//! destination, IP id, protocol). Every later
//! fragment of that datagram is found there and gets the same source
//! address (its IP header only; it has no L4 header), out of the same way.
//! The entry goes with the last fragment, or [`FRAG_TIMEOUT`] seconds
//! after the first.
//!
//! What cannot be translated is dropped and counted, never passed on: a
//! first fragment without a connection here (`fragment`), a later
//! fragment whose first one this worker did not see — it came earlier
//! (out of order), was lost, or went to another worker
//! (`fragment_untracked`). The worker hand-over steers by ports, which
//! fragments lack, so fragments are served by the worker that receives
//! them: the fragments of one datagram share a receive queue (RSS hashes
//! fragments by addresses alone; a veth sends them from one queue), but
//! that worker owns the connection only when there is one worker or the
//! queue happens to be the owner's. Fragments to a VIP are still dropped
//! (`fragment`: this forwarder does not reassemble).

use super::parse::{Parsed, bad_frame};
use super::{FRAG_TIMEOUT, FragTranslation, State};
use crate::conn::frag::FragKey;
use crate::conn::{Direction, FlowKey, Side};
use crate::dest::Forward;
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::service::Snapshot;
use crate::stats::Counter;
use crate::wire::Layout;
use crate::wire::ethernet::{ETHERTYPE_IPV4, EthernetFrame};
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::{WireError, checksum};

/// Where a fragment's headers are and what it is.
struct Fragment {
    layout: Layout,
    key: FragKey,
    first: bool,
    last: bool,
}

impl State {
    /// A frame the parser refused as unsupported: a fragment (handled
    /// here when it comes from a NAT real server), or anything else
    /// [`bad_frame`] decides.
    #[cold]
    #[inline(never)]
    pub(super) fn fragment(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        e: WireError,
        now: Tick,
    ) -> Verdict {
        let Some(f) = fragment_of(frame.data()) else {
            return bad_frame(snap, frame.data(), e);
        };
        if !snap.is_nat_real_v4(f.key.saddr) {
            return bad_frame(snap, frame.data(), e);
        }
        let d = frame.data();
        let ip_at = f.layout.l2_len;
        if checksum::checksum(&d[ip_at..f.layout.l4()]) != 0 {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        if f.first {
            return self.first_fragment(snap, frame, &f, now);
        }
        let Some(t) = self.frags.take(&f.key, now, f.last) else {
            return Verdict::Drop(DropReason::FragmentUntracked);
        };
        if let Some(dest) = snap.dest(t.dest) {
            self.count(dest, Side::Server, f.layout.ip_len);
        }
        if f.layout.ip_len > usize::from(t.egress.mtu) {
            return Verdict::Drop(DropReason::TooBig);
        }
        let v = crate::xmit::nat::xmit_out_fragment(frame, &f.layout, t.vip, &t.egress.hop);
        if let Verdict::Tx { .. } = v {
            self.stats.inc(Counter::TxReplies);
        }
        v
    }

    /// The first fragment: a reply of its connection, translated as one;
    /// the translation is kept for the datagram's other fragments.
    fn first_fragment(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        f: &Fragment,
        now: Tick,
    ) -> Verdict {
        let d = frame.data();
        let l4 = &d[f.layout.l4()..f.layout.l2_len + f.layout.ip_len];
        // The whole L4 header (ports and checksum) must be in this
        // fragment: RFC 791 guarantees 8 bytes, and UDP needs no more.
        let (header, tcp_flags) = match f.key.proto {
            PROTO_TCP => (20, l4.get(13).copied()),
            _ => (8, Some(0)),
        };
        let Some(tcp_flags) = tcp_flags.filter(|_| l4.len() >= header) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let p = Parsed {
            layout: f.layout,
            key: FlowKey {
                proto: f.key.proto,
                saddr: f.key.saddr,
                sport: u16::from_be_bytes([l4[0], l4[1]]),
                daddr: f.key.daddr,
                dport: u16::from_be_bytes([l4[2], l4[3]]),
            },
            tcp_flags,
        };
        let hash = self.v4.conns.hash(&p.key);
        let i = match self.v4.conns.lookup(&p.key, hash) {
            Some((i, Side::Server)) if self.v4.conns.get(i).expires() > now => i,
            _ => return Verdict::Drop(DropReason::Fragment),
        };
        let c = *self.v4.conns.get(i);
        if c.forward() != Forward::Nat {
            return Verdict::Drop(DropReason::Fragment);
        }
        let Some(dest) = snap.dest(c.dest()) else {
            return Verdict::Drop(DropReason::DestGone);
        };
        self.update_state(
            snap,
            frame.data(),
            i,
            dest,
            Direction::Output,
            &p,
            false,
            now,
        );
        self.count(dest, Side::Server, f.layout.ip_len);
        let e = super::client_way(snap, &c);
        let vip = (c.vaddr, c.vport);
        let v = self
            .tx
            .to_client(frame, &f.layout, c.proto(), vip, &e, &mut self.stats, now);
        if let Verdict::Tx { .. } = v {
            let t = FragTranslation {
                vip: c.vaddr,
                egress: e,
                dest: c.dest(),
            };
            self.frags
                .insert(f.key, t, now.saturating_add(FRAG_TIMEOUT));
        }
        v
    }
}

/// The frame as an IPv4 TCP or UDP fragment, if it is one.
fn fragment_of(d: &[u8]) -> Option<Fragment> {
    let eth = EthernetFrame::new_checked(d).ok()?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return None;
    }
    let l2_len = eth.header_len();
    let ip = Ipv4Packet::new_checked(&d[l2_len..]).ok()?;
    let proto = ip.protocol();
    if !ip.is_fragment() || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return None;
    }
    Some(Fragment {
        layout: Layout {
            l2_len,
            ihl: ip.header_len(),
            ip_len: usize::from(ip.total_len()),
        },
        key: FragKey {
            saddr: ip.src_addr(),
            daddr: ip.dst_addr(),
            id: ip.ident(),
            proto,
        },
        first: ip.frag_offset() == 0,
        last: !ip.more_frags(),
    })
}
