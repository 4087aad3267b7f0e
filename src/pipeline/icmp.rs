//! ICMP errors about connections (`ip_vs_in_icmp`, `ip_vs_out_icmp`): the
//! pipeline finds the connection the quoted packet belongs to and hands
//! the error to the transmitters ([`crate::xmit::icmp`] rewrites it).

use super::State;
use super::parse::ip_header_ok;
use crate::conn::{FlowKey, Side};
use crate::frame::{DropReason, Frame, Tick, Verdict};
use crate::service::Snapshot;
use crate::stats::Counter;
use crate::wire::checksum;
use crate::wire::ethernet::{ETHERTYPE_IPV4, EthernetFrame};
use crate::xmit::icmp::quote;

impl State {
    /// An ICMP error about one of our connections goes where the packet it
    /// quotes came from; anything else that is not TCP or UDP is the
    /// kernel's.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp_error(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        now: Tick,
    ) -> Verdict {
        let d = frame.data();
        let Ok(eth) = EthernetFrame::new_checked(d) else {
            return Verdict::NotOurs;
        };
        if eth.ethertype() != ETHERTYPE_IPV4 {
            return Verdict::NotOurs;
        }
        let Some(q) = quote(d, eth.header_len()) else {
            return Verdict::NotOurs;
        };
        // The quoted packet went the other way: its reverse is the 5-tuple
        // of the connection's packets in the direction the error travels.
        let key = FlowKey {
            proto: q.proto,
            saddr: q.dst,
            sport: q.dport,
            daddr: q.src,
            dport: q.sport,
        };
        let Some((i, side)) = self.v4.conns.lookup(&key, self.v4.conns.hash(&key)) else {
            return Verdict::NotOurs;
        };
        let c = *self.v4.conns.get(i);
        let Some(dest) = snap.dest(c.dest()).filter(|_| c.expires() > now) else {
            return Verdict::NotOurs;
        };
        if !ip_header_ok(d, &q.layout) {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        // As `ip_vs_in_icmp`: once it is known to concern a connection, an
        // error whose ICMP checksum is wrong is dropped, not relayed.
        let icmp = &d[q.layout.l4()..q.layout.l2_len + q.layout.ip_len];
        if checksum::checksum(icmp) != 0 {
            return Verdict::Drop(DropReason::BadIcmpChecksum);
        }
        let v = match side {
            Side::Server => {
                let e = super::client_way(snap, &c);
                self.tx.icmp_to_client(frame, &q, (c.vaddr, c.vport), &e)
            }
            Side::Client => {
                let Some(e) = super::egress(snap, dest, dest.src) else {
                    return Verdict::Drop(DropReason::NoNeighbour);
                };
                self.tx.icmp_to_server(frame, &q, &super::target(&c), &e)
            }
        };
        if let Verdict::Tx { .. } = v {
            self.stats.inc(Counter::IcmpRelayed);
            self.count(dest, side, q.layout.ip_len);
        }
        v
    }
}
