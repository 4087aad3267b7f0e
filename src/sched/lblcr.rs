//! lblcr — locality-based least-connection with replication
//! (`ip_vs_lblcr.c`, `ip_vs_lblcr_schedule`).
//!
//! As lblc, but a destination address maps to a *set* of servers, so a
//! popular address can be served by several caches. A lookup refreshes the
//! entry's last use and takes the set's weighted least-connection server
//! (`ip_vs_dest_set_min`, set order: newest first). If the set has more
//! than one server and has not changed for `lblcr_expiration` (24 h), its
//! weighted most-loaded server is dropped (`ip_vs_dest_set_max`). The
//! server found is used unless there is none or it `is_overloaded` (more
//! active connections than its weight while another server is below half
//! of its own); then the service's weighted least-connection server
//! (`__ip_vs_lblcr_schedule`) is used and joins the set. A miss records a
//! new set of that one server. Entries age as lblc's (see
//! [`super::locality`]).
//!
//! Deviations, both forced by the table being preallocated:
//! - A set holds at most [`SET_MAX`] servers. IPVS's sets have no bound,
//!   but never hold a server twice, so services of up to 8 real servers
//!   behave exactly; beyond, a server that would join a full set is used
//!   without joining it (as IPVS does when it cannot allocate).
//! - IPVS keeps a deleted server in a set, unavailable, until
//!   `ip_vs_dest_set_max` picks it (it can: it reads the deleted server's
//!   counters); it still counts in the set's size. Its counters are gone
//!   here, so it leaves the set the first time the entry is used after the
//!   deletion.

use std::sync::Arc;

use super::locality::{
    self, Locality, Member, Positions, Record, is_overloaded, overhead, time_after,
};
use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};
use super::wlc::Wlc;

/// The most servers one destination address is replicated to.
pub const SET_MAX: usize = 8;

pub struct Lblcr {
    table: Arc<Locality<SET_MAX>>,
    positions: Positions,
}

impl Lblcr {
    /// With a table of `1 << bits` slots and the given
    /// `lblcr_expiration` (seconds).
    pub fn with_table(dests: &Dests<'_>, bits: u32, expiration: u32) -> Lblcr {
        Lblcr {
            table: Arc::new(Locality::new(bits, expiration)),
            positions: Positions::new(dests),
        }
    }
}

/// `ip_vs_dest_set_min`: the set's weighted least-connection server, in
/// set order, among those neither quiescent nor overloaded (a quiescent
/// one could never win the comparison anyway).
fn set_min(set: &[(usize, Member)], dests: &Dests<'_>) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for &(p, _) in set {
        let d = dests.at(p);
        if !d.available() {
            continue;
        }
        let doh = overhead(d);
        match least {
            Some((l, loh)) if loh * i64::from(d.weight) <= doh * i64::from(dests.at(l).weight) => {}
            _ => least = Some((p, doh)),
        }
    }
    least.map(|l| l.0)
}

/// `ip_vs_dest_set_max`: the index in `set` of its weighted most-loaded
/// server, quiescent ones excepted, the first one winning ties.
fn set_max(set: &[(usize, Member)], dests: &Dests<'_>) -> Option<usize> {
    let mut most: Option<(usize, i64)> = None;
    for (i, &(p, _)) in set.iter().enumerate() {
        let d = dests.at(p);
        if d.weight == 0 {
            continue;
        }
        let doh = overhead(d);
        match most {
            Some((m, moh))
                if moh * i64::from(d.weight) >= doh * i64::from(dests.at(set[m].0).weight) => {}
            _ => most = Some((i, doh)),
        }
    }
    most.map(|m| m.0)
}

impl Scheduler for Lblcr {
    const NAME: &'static str = "lblcr";

    fn build(dests: &Dests<'_>, _: &Params) -> Lblcr {
        Lblcr::with_table(dests, locality::DEFAULT_BITS, locality::DEFAULT_EXPIRATION)
    }

    /// IPVS keeps the table while servers come and go.
    fn rebuild(dests: &Dests<'_>, _: &Params, prev: &Lblcr) -> Lblcr {
        Lblcr {
            table: Arc::clone(&prev.table),
            positions: Positions::new(dests),
        }
    }

    fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize> {
        let Some(key) = locality::key(flow.vip) else {
            return Wlc.schedule(dests, flow);
        };
        let now = flow.now;
        let Some(e) = self.table.lookup(key, now) else {
            let p = Wlc.schedule(dests, flow)?;
            self.table.record(key, dests.at(p).r, now, Record::Add);
            return Some(p);
        };
        // The set with list positions; servers no longer in the service
        // leave it.
        let mut set = [(0, Member::default()); SET_MAX];
        let mut n = 0;
        for m in self.table.members(e).as_slice() {
            match self.positions.get(dests, m.r) {
                Some(p) => {
                    set[n] = (p, *m);
                    n += 1;
                }
                None => {
                    self.table.remove(e, m);
                }
            }
        }
        let set = &set[..n];
        let least = set_min(set, dests);
        let lastmod = self.table.lastmod(e);
        if n > 1 && time_after(now, lastmod.wrapping_add(self.table.expiration())) {
            // One worker wins `lastmod` and drops the most loaded server.
            if let Some(i) = set_max(set, dests)
                && self.table.touch_lastmod(e, lastmod, now)
            {
                self.table.remove(e, &set[i].1);
            }
        }
        if let Some(p) = least
            && !is_overloaded(dests.at(p), dests)
        {
            return Some(p);
        }
        let p = Wlc.schedule(dests, flow)?;
        self.table.add(e, dests.at(p).r, now);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::locality::tests_support::{self as ts, activate, go, to};
    use crate::sched::testutil::dests;
    use proptest::prelude::*;

    /// `ip_vs_lblcr_schedule` worked by hand, servers 0, 1, 2 of weight 1
    /// and destination addresses A (10.0.0.1) and B (.2): a set grows when
    /// its least-loaded server `is_overloaded`, and loses its most loaded
    /// server when it has not changed for 24 h.
    #[test]
    fn follows_ip_vs_lblcr_schedule() {
        let (order, all) = dests(&[1, 1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblcr::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0, "miss: least connection");
        assert_eq!(go(&s, &d, 1, 10), 0, "hit");
        assert_eq!(go(&s, &d, 2, 10), 1, "miss: overheads 2,0,0");
        assert_eq!(ts::recorded(&s.table, 1, 10), Some(vec![0]));
        // Server 0: 2 active > weight 1 while server 1 has none:
        // `is_overloaded`. Least connection over the service (512, 1, 0)
        // is server 2, which joins A's set at its head.
        activate(d.at(0), 2);
        assert_eq!(go(&s, &d, 1, 20), 2);
        assert_eq!(ts::recorded(&s.table, 1, 20), Some(vec![2, 0]));
        assert_eq!(go(&s, &d, 1, 30), 2, "set_min: 1 vs 512");
        // Server 2 overloaded the same way: set_min ties 512/512, the
        // newest (2) wins and `is_overloaded`; server 1 (2) joins.
        activate(d.at(2), 2);
        assert_eq!(go(&s, &d, 1, 40), 1);
        assert_eq!(ts::recorded(&s.table, 1, 40), Some(vec![1, 2, 0]));
        assert_eq!(go(&s, &d, 1, 50), 1);
        // lastmod 40: at 86441 > 40 + 86400 the most loaded (2 and 0 tie
        // at 512: the first in set order, 2) leaves; set_min (chosen
        // before) is still 1.
        assert_eq!(go(&s, &d, 1, 86_440), 1, "not after lastmod + 24 h yet");
        assert_eq!(ts::recorded(&s.table, 1, 86_440), Some(vec![1, 2, 0]));
        assert_eq!(go(&s, &d, 1, 86_441), 1);
        assert_eq!(ts::recorded(&s.table, 1, 86_441), Some(vec![1, 0]));
        assert_eq!(go(&s, &d, 1, 86_442), 1, "lastmod is 86441 now");
        assert_eq!(ts::recorded(&s.table, 1, 86_442), Some(vec![1, 0]));
        // B, last used at 10 (due 86410), went at the full check of
        // 49 * 1800.
        assert_eq!(ts::recorded(&s.table, 2, 88_199), Some(vec![1]));
        assert_eq!(ts::recorded(&s.table, 2, 88_200), None);
        // A, last used at 86442, lives until 174600; lastmod 86441:
        // shrinks again after 172841, to one server, and no further.
        assert_eq!(go(&s, &d, 1, 172_842), 1);
        assert_eq!(ts::recorded(&s.table, 1, 172_842), Some(vec![1]));
        assert_eq!(go(&s, &d, 1, 259_300), 1);
        assert_eq!(ts::recorded(&s.table, 1, 259_300), Some(vec![1]));
    }

    /// `ip_vs_dest_set_min` walks the set newest first: on a tie the
    /// server that joined last wins, where least connection over the
    /// service list would take the first.
    #[test]
    fn set_order_breaks_ties() {
        let (order, all) = dests(&[1, 1]);
        let d = Dests::new(&order, &all);
        let s = Lblcr::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0);
        d.at(0).counters.bind();
        activate(d.at(0), 2);
        assert_eq!(go(&s, &d, 1, 1), 1, "0 is_overloaded: 1 joins");
        d.at(1).counters.bind();
        activate(d.at(1), 2);
        // Both 2 active, none below half its weight: a tie.
        assert_eq!(ts::recorded(&s.table, 1, 2), Some(vec![1, 0]));
        assert_eq!(go(&s, &d, 1, 2), 1);
        assert_eq!(Wlc.schedule(&d, &to(1, 2)), Some(0));
    }

    /// A server deleted from the service leaves the sets; the table lives
    /// on across rebuilds, whatever the list order.
    #[test]
    fn deleted_servers_leave_the_set() {
        let (_, all) = dests(&[1, 1, 1]);
        let order = [0, 1, 2];
        let d = Dests::new(&order, &all);
        let s = Lblcr::build(&d, &Params::default());
        assert_eq!(go(&s, &d, 1, 0), 0);
        d.at(0).counters.bind();
        activate(d.at(0), 2);
        assert_eq!(go(&s, &d, 1, 0), 1);
        assert_eq!(ts::recorded(&s.table, 1, 0), Some(vec![1, 0]));
        let order = [2, 1];
        let d = Dests::new(&order, &all);
        let s = Lblcr::rebuild(&d, &Params::default(), &s);
        assert_eq!(go(&s, &d, 1, 1), 1, "slot 1, now at position 1");
        assert_eq!(ts::recorded(&s.table, 1, 1), Some(vec![1]));
    }

    /// A set full at SET_MAX servers: the newcomer is used, not recorded.
    #[test]
    fn full_set() {
        let (order, all) = dests(&[1; SET_MAX + 1]);
        let d = Dests::new(&order, &all);
        let s = Lblcr::build(&d, &Params::default());
        for i in 0..=SET_MAX {
            // Each server in turn becomes the least loaded and the set's
            // servers all overloaded (the newcomer has no active one).
            assert_eq!(go(&s, &d, 1, 0), i);
            activate(d.at(i), 1);
            d.at(i).counters.bind();
            activate(d.at(i), 1);
        }
        let set = ts::recorded(&s.table, 1, 0).unwrap();
        assert_eq!(set.len(), SET_MAX);
        assert_eq!(set[0], SET_MAX as u32 - 1);
    }

    proptest! {
        /// Never a quiescent, overloaded or deleted server; `None` only
        /// when no server is available.
        #[test]
        fn only_available_servers(ops in proptest::collection::vec(ts::op(), 1..200)) {
            ts::run_ops::<Lblcr>(&ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Two workers at once, on a table small enough to fill.
        #[test]
        fn two_workers(seed in any::<u64>(), bits in 2u32..6) {
            let s = ts::two_workers(seed, |d| Lblcr::with_table(d, bits, 600));
            for (_, rs) in s.table.entries() {
                prop_assert!(rs.len() <= SET_MAX);
            }
        }
    }
}
