//! lblc — locality-based least-connection (`ip_vs_lblc.c`,
//! `ip_vs_lblc_schedule`).
//!
//! Meant for cache clusters, where the packet's destination address names
//! the content: each destination address is sent to the server it went to
//! before, so that server's cache stays warm. The table (see
//! [`super::locality`]) maps the address to one server. A lookup refreshes
//! the entry's last use; its server is taken if it is still in the service,
//! not quiescent and not `is_overloaded` (more active connections than its
//! weight while another server is below half of its own). Otherwise the
//! weighted least-connection server (`__ip_vs_lblc_schedule`, the loop of
//! [`super::wlc`]: overhead `ActiveConn * 256 + InActConn` over weight) is
//! taken and recorded for the address.
//!
//! Deviation: IPVS does not look at a cached server's overload mark
//! (`ipvsadm -x`), only at `is_overloaded`; here a marked server is never
//! returned (the [`super::Scheduler`] contract), so the address is
//! scheduled anew and re-recorded.

use std::sync::Arc;

use super::locality::{self, Locality, Positions, Record, is_overloaded};
use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};
use super::wlc::Wlc;

pub struct Lblc {
    table: Arc<Locality<1>>,
    positions: Positions,
}

impl Lblc {
    /// With a table of `1 << bits` slots and the given
    /// `lblc_expiration` (seconds).
    pub fn with_table(dests: &Dests<'_>, bits: u32, expiration: u32) -> Lblc {
        Lblc {
            table: Arc::new(Locality::new(bits, expiration)),
            positions: Positions::new(dests),
        }
    }
}

impl Scheduler for Lblc {
    const NAME: &'static str = "lblc";

    fn build(dests: &Dests<'_>, _: &Params) -> Lblc {
        Lblc::with_table(dests, locality::DEFAULT_BITS, locality::DEFAULT_EXPIRATION)
    }

    /// IPVS keeps the table while servers come and go.
    fn rebuild(dests: &Dests<'_>, _: &Params, prev: &Lblc) -> Lblc {
        Lblc {
            table: Arc::clone(&prev.table),
            positions: Positions::new(dests),
        }
    }

    fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize> {
        let Some(key) = locality::key(flow.vip) else {
            return Wlc.schedule(dests, flow);
        };
        let hit = self.table.lookup(key, flow.now);
        if let Some(e) = hit {
            let cached = self.table.members(e).as_slice().first().map(|m| m.r);
            if let Some(p) = cached.and_then(|r| self.positions.get(dests, r)) {
                let d = dests.at(p);
                if d.available() && !is_overloaded(d, dests) {
                    return Some(p);
                }
            }
        }
        let p = Wlc.schedule(dests, flow)?;
        let r = dests.at(p).r;
        match hit {
            Some(e) => self.table.replace(e, r),
            None => self.table.record(key, r, flow.now, Record::Replace),
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::locality::tests_support::{self as ts, activate, go, to};
    use crate::sched::testutil::{dests, flow};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// `ip_vs_lblc_schedule` worked by hand, servers 0, 1, 2 of weight 1
    /// and destination addresses A (10.0.0.1), B (.2), C (.3).
    #[test]
    fn follows_ip_vs_lblc_schedule() {
        let (order, all) = dests(&[1, 1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblc::build(&d, &Params::default());
        // Misses go to the least-connection server
        // (`__ip_vs_lblc_schedule`): overheads 0,0,0 → 0; 1,0,0 → 1;
        // 1,1,0 → 2.
        assert_eq!(go(&s, &d, 1, 0), 0);
        assert_eq!(go(&s, &d, 2, 0), 1);
        assert_eq!(go(&s, &d, 3, 0), 2);
        // Hits stay, however unbalanced the overheads (inactive ones do
        // not count in `is_overloaded`).
        for _ in 0..5 {
            assert_eq!(go(&s, &d, 1, 10), 0);
        }
        assert_eq!(go(&s, &d, 2, 10), 1);
        assert_eq!(go(&s, &d, 4, 10), 2, "D: overheads 6,2,1");
        // Server 0: 2 active > weight 1, and server 2 (0 active) is
        // below half its weight: `is_overloaded`, A moves to the
        // least-connection server: overheads 2*256+4, 2, 2 → 1.
        activate(d.at(0), 2);
        assert_eq!(go(&s, &d, 1, 20), 1);
        assert_eq!(ts::recorded(&s.table, 1, 20), Some(vec![1]));
        assert_eq!(go(&s, &d, 1, 20), 1, "and stays there");
        // Server 1 over its weight too, but no server is below half its
        // weight any more: not `is_overloaded`, A stays on 1.
        activate(d.at(1), 2);
        activate(d.at(2), 1);
        assert_eq!(go(&s, &d, 1, 30), 1);
        // B's server 1 is quiescent now: B is rescheduled. Overheads
        // 2*256+4, -, 256+1 → 2.
        let (order2, mut all2) = (order.clone(), all.clone());
        all2[1].as_mut().unwrap().weight = 0;
        let d2 = Dests::new(&order2, &all2);
        let s2 = Lblc::rebuild(&d2, &Params::default(), &s);
        assert_eq!(go(&s2, &d2, 2, 40), 2);
        assert_eq!(ts::recorded(&s2.table, 2, 40), Some(vec![2]));
        // C is still on 2, as recorded before the rebuild.
        assert_eq!(go(&s2, &d2, 3, 40), 2);
    }

    /// An entry lives until the first full check (every 30 minutes from
    /// the first use, `ip_vs_lblc_check_expire` → `ip_vs_lblc_full_check`)
    /// at or after its last use + `lblc_expiration` (24 h); until then a
    /// hit keeps it, however loaded its server.
    #[test]
    fn expires_at_the_full_check_after_24h() {
        let (order, all) = dests(&[1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblc::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0);
        assert_eq!(go(&s, &d, 2, 100), 1);
        // Inactive connections only: no `is_overloaded`.
        for _ in 0..10 {
            d.at(1).counters.bind();
        }
        assert_eq!(go(&s, &d, 2, 100), 1, "B: 12 connections to 1");
        // A, last used at 0, is due at 86400 = 48 * 1800: a hit just
        // before keeps it for another day.
        assert_eq!(go(&s, &d, 1, 86_399), 0);
        // B, last used at 100, is due at 86500: the first check at or
        // after it is 49 * 1800 = 88200.
        assert_eq!(ts::recorded(&s.table, 2, 88_199), Some(vec![1]));
        assert_eq!(ts::recorded(&s.table, 2, 88_200), None);
        assert_eq!(go(&s, &d, 2, 88_200), 0, "a miss: 2 vs 12 connections");
        assert_eq!(ts::recorded(&s.table, 2, 88_200), Some(vec![0]));
        // A, refreshed at 86399, is due at 172799: checked at 172800.
        assert_eq!(ts::recorded(&s.table, 1, 172_799), Some(vec![0]));
        assert_eq!(ts::recorded(&s.table, 1, 172_800), None);
    }

    /// Entries name servers by `DestRef`: they survive reordering and
    /// additions, and a deleted server is never returned.
    #[test]
    fn survives_reordering_and_deletion() {
        let (_, all) = dests(&[1, 1, 1, 1]);
        let order = [2, 1, 0];
        let d = Dests::new(&order, &all);
        let s = Lblc::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0, "slot 2 first in the list");
        assert_eq!(go(&s, &d, 2, 0), 1);
        // Slot 3 added at the head: list positions shift.
        let order = [3, 2, 1, 0];
        let d = Dests::new(&order, &all);
        let s = Lblc::rebuild(&d, &Params::default(), &s);
        assert_eq!(go(&s, &d, 1, 1), 1, "still slot 2");
        assert_eq!(go(&s, &d, 2, 1), 2, "still slot 1");
        // Slot 2 deleted: A is rescheduled to the least loaded (slot 3).
        let order = [3, 1, 0];
        let d = Dests::new(&order, &all);
        let s = Lblc::rebuild(&d, &Params::default(), &s);
        assert_eq!(go(&s, &d, 1, 2), 0);
        assert_eq!(ts::recorded(&s.table, 1, 2), Some(vec![3]));
    }

    #[test]
    fn marked_overloaded_is_left() {
        let (order, all) = dests(&[1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblc::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0);
        d.at(0).counters.set_overloaded(true);
        assert_eq!(go(&s, &d, 1, 0), 1);
        d.at(1).counters.set_overloaded(true);
        assert_eq!(s.schedule(&d, &to(1, 0)), None);
        d.at(0).counters.set_overloaded(false);
        d.at(1).counters.set_overloaded(false);
        assert_eq!(go(&s, &d, 1, 0), 1, "recorded when it moved");
    }

    #[test]
    fn unrecordable_addresses_get_least_connection() {
        let (order, all) = dests(&[1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblc::build(&d, &Params::default());
        let v6 = Flow {
            vip: "2001:db8::1".parse().unwrap(),
            ..flow()
        };
        let unspecified = Flow {
            vip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..flow()
        };
        let mut got = Vec::new();
        for f in [v6, unspecified, v6, unspecified] {
            let p = s.schedule(&d, &f).unwrap();
            d.at(p).counters.bind();
            got.push(p);
        }
        assert_eq!(got, vec![0, 1, 0, 1]);
        assert!(s.table.entries().is_empty());
    }

    /// The service table carries the locality table into the next
    /// snapshot (`ServiceTable::next_snapshot`).
    #[test]
    fn carried_across_snapshots() {
        use crate::config::{Forward, Protocol, RealConfig, ServiceConfig};
        use crate::conn::Timeouts;
        use crate::service::ServiceTable;
        let vip = "198.18.1.1:80".parse().unwrap();
        let real = |a: &str| RealConfig {
            addr: a.parse().unwrap(),
            forward: Forward::Dr,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        let mut t = ServiceTable::new(Vec::new(), None, Timeouts::default());
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "lblc"))
            .unwrap();
        t.add_dest(Protocol::Tcp, vip, &real("198.18.2.11:80"))
            .unwrap();
        t.add_dest(Protocol::Tcp, vip, &real("198.18.2.12:80"))
            .unwrap();
        let snap = t.snapshot();
        let svc = &snap.services()[0];
        let d = snap.dests_of(svc);
        let p = svc.sched.schedule(&d, &to(1, 0)).unwrap();
        d.at(p).counters.bind();
        let first = d.at(p).addr;
        t.add_dest(Protocol::Tcp, vip, &real("198.18.2.13:80"))
            .unwrap();
        for (next, sticks) in [(t.next_snapshot(&snap), true), (t.snapshot(), false)] {
            let svc = &next.services()[0];
            let d = next.dests_of(svc);
            let p = svc.sched.schedule(&d, &to(1, 1)).unwrap();
            assert_eq!(d.at(p).addr == first, sticks);
        }
    }

    proptest! {
        /// Never a quiescent, overloaded or deleted server; `None` only
        /// when no server is available.
        #[test]
        fn only_available_servers(ops in proptest::collection::vec(ts::op(), 1..200)) {
            ts::run_ops::<Lblc>(&ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Two workers at once, on a table small enough to fill.
        #[test]
        fn two_workers(seed in any::<u64>(), bits in 2u32..6) {
            let s = ts::two_workers(seed, |d| Lblc::with_table(d, bits, 600));
            for (_, rs) in s.table.entries() {
                prop_assert!(rs.len() <= 1);
            }
        }
    }
}
