//! wrr — weighted round robin (`ip_vs_wrr.c`, `ip_vs_wrr_schedule`).
//!
//! IPVS keeps a mark `(cl, cw)`: the server chosen last (or the list head)
//! and the current weight. `di` is the gcd of the positive weights and
//! `mw = max weight - (di - 1)`. A decision walks the list after `cl` and
//! takes the first server that is not overloaded and weighs at least `cw`;
//! each time the walk passes the list head, `cw` drops by `di`, wrapping to
//! `mw` below 1. One period is therefore `max / di` passes, pass `j`
//! (counting down to 1) taking, in list order, every server whose
//! `weight / di >= j`: `sum(weight / di)` decisions.
//!
//! Without overload the mark runs through that period whatever the
//! connection counts say, so `build` writes one period down as list
//! positions and the mark becomes an index into it. Overload only skips:
//! IPVS's walk from a mark meets its candidates in exactly the period's
//! order, so its choice is the first entry at or after the index whose
//! server is not overloaded, and the mark moves just past that entry. One
//! compare-and-swap per new connection publishes the new index, so all
//! workers share one exact IPVS sequence without a lock (the CAS makes the
//! decisions of concurrent workers a single sequence). When nothing is
//! available IPVS moves its mark too: it stays if it was in the last pass
//! (`cw = 1`) and otherwise returns to the list head with `cw = mw`, that
//! is index 0; so does ours.
//!
//! Periods longer than [`MAX_TABLE`] entries (weights up to 65535 on many
//! servers) are not tabulated: the mark is then IPVS's own `(cl, cw)`,
//! packed into one `u64` and advanced by IPVS's walk with the same
//! compare-and-swap. That is exact as well and needs no memory, but a
//! decision walks the list as IPVS does (under its lock): with a few heavy
//! servers among many light ones, every high pass crosses most of the list
//! for each decision. A decision on the table, overload aside, costs one
//! entry whatever the weights; hence the table wherever it fits. Tests check
//! that the two agree step for step.
//!
//! Where exactness ends: IPVS keeps `cw` when servers are added, removed or
//! reweighted (it only moves `cl` back to the head and rounds `cw` to the
//! new step), while a rebuilt `Wrr` starts at the head with `cw = mw`, as
//! `ip_vs_wrr_init_svc` does. After a change IPVS may first finish the
//! passes of its old `cw`; ours starts a fresh period. Every later period
//! is the same. Overload flags are read during the scan, as IPVS reads them
//! during its walk; a flag flipping meanwhile may or may not be seen.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};

/// The longest period kept as a table: 4 MiB of list positions. Past it the
/// walk is affordable: a period visits each of the `n` servers once per
/// pass, `max / di <= 65535` passes spread over more than 2^20 decisions,
/// so a decision walks fewer than `n / 16` servers on average (at most `n`
/// plus the overloaded ones, as in IPVS).
pub const MAX_TABLE: u64 = 1 << 20;

pub struct Wrr {
    mark: Mark,
}

enum Mark {
    Table(Table),
    Walk(Walk),
}

/// One period of IPVS's sequence and an index into it.
struct Table {
    /// List positions, pass after pass, `cw = mw` first.
    seq: Box<[u32]>,
    /// Where the last pass (`cw = 1`, every server of positive weight)
    /// starts.
    last_pass: usize,
    /// The entry the next decision starts at, `< seq.len()`; 0 is IPVS's
    /// `(list head, mw)`.
    next: AtomicUsize,
}

/// IPVS's mark itself, for periods too long to tabulate.
struct Walk {
    di: u64,
    /// 0 when no server has a positive weight.
    mw: u64,
    /// `(cl, cw)` packed by [`pack`]; `cl` is 0 for the list head and
    /// `p + 1` for the server at list position `p`, so a walk after `cl`
    /// starts at position `cl`.
    mark: AtomicU64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Wrr {
    /// Tabulates periods of at most `limit` entries.
    fn with_table_limit(dests: &Dests<'_>, limit: u64) -> Wrr {
        let weights = || dests.iter().map(|d| u64::from(d.weight));
        // `ip_vs_wrr_gcd_weight`: gcd of the positive weights, 1 if none.
        let di = weights().filter(|&w| w > 0).reduce(gcd).unwrap_or(1);
        let period: u64 = weights().map(|w| w / di).sum();
        let mark = if period <= limit {
            Mark::Table(Table::new(dests, di, period))
        } else {
            // `ip_vs_wrr_max_weight` looks at every weight, 0 included.
            let mw = weights().max().unwrap_or(0) - (di - 1);
            Mark::Walk(Walk {
                di,
                mw,
                mark: AtomicU64::new(pack(0, mw)),
            })
        };
        Wrr { mark }
    }

    #[cfg(test)]
    fn is_table(&self) -> bool {
        matches!(self.mark, Mark::Table(_))
    }
}

impl Table {
    fn new(dests: &Dests<'_>, di: u64, period: u64) -> Table {
        // A server takes part in the passes `weight / di` down to 1.
        let level: Vec<u64> = dests.iter().map(|d| u64::from(d.weight) / di).collect();
        let mut tops: Vec<u64> = level.iter().copied().filter(|&l| l > 0).collect();
        tops.sort_unstable_by(|a, b| b.cmp(a));
        tops.dedup();
        let mut seq = Vec::with_capacity(period as usize);
        let mut pass = Vec::with_capacity(level.len());
        // Between two consecutive distinct levels every pass takes the
        // same servers: build that pass once, repeat it.
        for (i, &top) in tops.iter().enumerate() {
            let below = tops.get(i + 1).copied().unwrap_or(0);
            pass.clear();
            pass.extend(
                (0..level.len())
                    .filter(|&p| level[p] >= top)
                    .map(|p| p as u32),
            );
            for _ in below..top {
                seq.extend_from_slice(&pass);
            }
        }
        debug_assert_eq!(seq.len() as u64, period);
        Table {
            last_pass: seq.len() - pass.len(),
            seq: seq.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }

    fn schedule(&self, dests: &Dests<'_>) -> Option<usize> {
        let len = self.seq.len();
        if len == 0 {
            return None;
        }
        // Relaxed: the index orders nothing but itself; the CAS makes
        // concurrent workers take distinct, consecutive turns.
        let mut at = self.next.load(Ordering::Relaxed);
        loop {
            let (pick, next) = match self.first_available(dests, at) {
                Some(j) => (
                    Some(self.seq[j] as usize),
                    if j + 1 == len { 0 } else { j + 1 },
                ),
                // IPVS's failed walk leaves a last-pass mark where it was
                // and puts any other back at (head, mw).
                None if at <= self.last_pass => (None, 0),
                None => (None, at),
            };
            match self
                .next
                .compare_exchange_weak(at, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return pick,
                Err(now) => at = now,
            }
        }
    }

    /// The first entry from `from` on, wrapping, whose server is not
    /// overloaded (entries already satisfy IPVS's `weight >= cw`).
    fn first_available(&self, dests: &Dests<'_>, from: usize) -> Option<usize> {
        let len = self.seq.len();
        let servers = len - self.last_pass;
        let mut j = from;
        for scanned in 0..len {
            // A long run of overloaded entries: the last pass names every
            // candidate once, so a look at it ends a hopeless scan early.
            if scanned == servers
                && self.seq[self.last_pass..]
                    .iter()
                    .all(|&p| dests.at(p as usize).counters.overloaded())
            {
                return None;
            }
            if !dests.at(self.seq[j] as usize).counters.overloaded() {
                return Some(j);
            }
            j = if j + 1 == len { 0 } else { j + 1 };
        }
        None
    }
}

fn pack(cl: usize, cw: u64) -> u64 {
    debug_assert!(cl <= u32::MAX as usize && cw <= u64::from(u32::MAX));
    ((cl as u64) << 32) | cw
}

fn unpack(mark: u64) -> (usize, u64) {
    ((mark >> 32) as usize, mark & 0xffff_ffff)
}

impl Walk {
    fn schedule(&self, dests: &Dests<'_>) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        // Relaxed, as for the table index.
        let mut mark = self.mark.load(Ordering::Relaxed);
        loop {
            let (pick, (cl, cw)) = self.walk(dests, unpack(mark));
            match self.mark.compare_exchange_weak(
                mark,
                pack(cl, cw),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return pick,
                Err(now) => mark = now,
            }
        }
    }

    /// One `ip_vs_wrr_schedule` decision from the mark `(last, cw)`: the
    /// server chosen and the mark it leaves.
    fn walk(
        &self,
        dests: &Dests<'_>,
        (last, mut cw): (usize, u64),
    ) -> (Option<usize>, (usize, u64)) {
        let (mut from, mut stop) = (last, None);
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            for p in from..dests.len() {
                let d = dests.at(p);
                if !d.counters.overloaded() && u64::from(d.weight) >= cw {
                    return (Some(p), (p + 1, cw));
                }
                if stop == Some(p + 1) {
                    return (None, (p + 1, cw));
                }
            }
            // Past the list head.
            from = 0;
            if cw <= self.di {
                cw = self.mw;
                // Every server was tried at `cw = 1` after `last`, and,
                // if `last` is the head, before it too.
                if last_pass || last == 0 {
                    return (None, (0, cw));
                }
                restarted = true;
            } else {
                cw -= self.di;
            }
            last_pass = cw <= self.di;
            if last_pass && restarted && last != 0 {
                // The first pass at `cw = 1` only covered the servers after
                // `last`: this one covers those up to it, then gives up.
                stop = Some(last);
            }
        }
    }
}

impl Scheduler for Wrr {
    const NAME: &'static str = "wrr";

    fn build(dests: &Dests<'_>, _: &Params) -> Wrr {
        Wrr::with_table_limit(dests, MAX_TABLE)
    }

    #[inline]
    fn schedule(&self, dests: &Dests<'_>, _: &Flow) -> Option<usize> {
        match &self.mark {
            Mark::Table(t) => t.schedule(dests),
            Mark::Walk(w) => w.schedule(dests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::Dest;
    use crate::sched::testutil::{dests, flow};
    use proptest::prelude::*;

    /// Both marks: the table, and IPVS's walk (forced by a zero limit).
    fn both(d: &Dests<'_>) -> [Wrr; 2] {
        let (t, w) = (
            Wrr::with_table_limit(d, MAX_TABLE),
            Wrr::with_table_limit(d, 0),
        );
        assert!(t.is_table() && (!w.is_table() || d.iter().all(|d| d.weight == 0)));
        [t, w]
    }

    fn set_overloaded(all: &[Option<Dest>], p: usize, on: bool) {
        all[p].as_ref().unwrap().counters.set_overloaded(on);
    }

    /// `ip_vs_wrr_schedule` from a fresh mark (head, cw = mw = 4, di = 1):
    /// pass cw=4 takes A; cw=3 A B; cw=2 A B C; cw=1 A B C.
    #[test]
    fn follows_ip_vs_wrr_schedule() {
        let (order, all) = dests(&[4, 3, 2]);
        let d = Dests::new(&order, &all);
        let period = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        for wrr in both(&d) {
            let got: Vec<_> = (0..18)
                .map(|i| {
                    let p = wrr.schedule(&d, &flow()).unwrap();
                    d.at(p).counters.bind();
                    if i % 3 == 0 {
                        d.at(p).counters.set_active(true);
                    }
                    p
                })
                .collect();
            assert_eq!(got, [period, period].concat());
        }
    }

    /// The gcd divides the weights first: 8,6,4 is 4,3,2; 6,3 is 2,1.
    #[test]
    fn gcd_scales_weights() {
        for (weights, want) in [
            (&[8, 6, 4][..], &[0, 0, 1, 0, 1, 2, 0, 1, 2][..]),
            (&[6, 3], &[0, 0, 1]),
            (&[0, 5, 0, 5], &[1, 3]),
        ] {
            let (order, all) = dests(weights);
            let d = Dests::new(&order, &all);
            for wrr in both(&d) {
                let got: Vec<_> = (0..want.len() * 2)
                    .map(|_| wrr.schedule(&d, &flow()).unwrap())
                    .collect();
                assert_eq!(got, [want, want].concat(), "weights {weights:?}");
            }
        }
    }

    /// Servers that cross their upper threshold (`ipvsadm -x 3`) are skipped
    /// where IPVS's walk skips them, and the mark moves on from the server
    /// taken instead. Worked out from `ip_vs_wrr_schedule`, marks as (cl, cw).
    #[test]
    fn overloaded_servers_are_skipped_in_walk_order() {
        let (order, mut all) = dests(&[4, 3, 2]);
        all[0].as_mut().unwrap().upper_threshold = 3;
        let d = Dests::new(&order, &all);
        for wrr in both(&d) {
            let pick = || {
                let p = wrr.schedule(&d, &flow()).unwrap();
                d.at(p).bind();
                p
            };
            // (A,4) (A,3): A has 2 connections; (B,3).
            assert_eq!([pick(), pick(), pick()], [0, 0, 1]);
            // (A,2) takes A's third connection: overloaded from now on.
            assert_eq!(pick(), 0);
            assert!(d.at(0).counters.overloaded());
            // (B,2) (C,2); cw=1: A skipped, (B,1) (C,1); cw=4: nobody
            // left but A; cw=3: (B,3); cw=2: (B,2) (C,2).
            let got: Vec<_> = (0..7).map(|_| pick()).collect();
            assert_eq!(got, [1, 2, 1, 2, 1, 1, 2]);
            // Two of A's connections close; the first already lifts the
            // mark (2 * 4 < 3 * 3, `ip_vs_unbind_dest`). From (C,2): (A,1)
            // (B,1) (C,1), then (A,4) brings A back to 3 connections.
            d.at(0).unbind(true);
            d.at(0).unbind(true);
            assert!(!d.at(0).counters.overloaded());
            let got: Vec<_> = (0..4).map(|_| pick()).collect();
            assert_eq!(got, [0, 1, 2, 0]);
            assert!(d.at(0).counters.overloaded());
            // Reset for the walk-mode run.
            for p in 0..3 {
                while d.at(p).counters.conns().1 > 0 {
                    d.at(p).unbind(true);
                }
            }
        }
    }

    /// A failed decision moves IPVS's mark: back to (head, mw) from any
    /// pass but the last, nowhere from the last. Weights 2,1: the period
    /// is (A,2) (A,1) (B,1).
    #[test]
    fn failed_decisions_move_the_mark_as_ipvs_does() {
        let (order, all) = dests(&[2, 1]);
        let d = Dests::new(&order, &all);
        for wrr in both(&d) {
            let pick = || wrr.schedule(&d, &flow());
            assert_eq!(pick(), Some(0)); // mark (A,2)
            (0..2).for_each(|p| set_overloaded(&all, p, true));
            assert_eq!(pick(), None); // mark back to (head,2)
            (0..2).for_each(|p| set_overloaded(&all, p, false));
            let got: Vec<_> = (0..4).map(|_| pick().unwrap()).collect();
            assert_eq!(got, [0, 0, 1, 0]); // mark (A,2) again
            assert_eq!(pick(), Some(0)); // mark (A,1): the last pass
            (0..2).for_each(|p| set_overloaded(&all, p, true));
            assert_eq!(pick(), None); // mark stays (A,1)
            (0..2).for_each(|p| set_overloaded(&all, p, false));
            let got: Vec<_> = (0..4).map(|_| pick().unwrap()).collect();
            assert_eq!(got, [1, 0, 0, 1]);
        }
    }

    #[test]
    fn none_without_positive_weights() {
        for weights in [&[][..], &[0], &[0, 0, 0]] {
            let (order, all) = dests(weights);
            let d = Dests::new(&order, &all);
            for wrr in both(&d) {
                assert_eq!(wrr.schedule(&d, &flow()), None);
            }
        }
    }

    /// 17 servers of weight 65535 and one of 1: a period of 17 * 65535 + 1
    /// entries is walked, not tabulated, and starts with 17 passes' worth
    /// of the heavy servers in list order.
    #[test]
    fn long_periods_walk() {
        let mut weights = vec![65535; 17];
        weights.push(1);
        let (order, all) = dests(&weights);
        let d = Dests::new(&order, &all);
        let wrr = Wrr::build(&d, &Params::default());
        assert!(!wrr.is_table());
        for round in 0..3 {
            for p in 0..17 {
                assert_eq!(wrr.schedule(&d, &flow()), Some(p), "round {round}");
            }
        }
    }

    #[test]
    fn exact_shares_across_threads() {
        let (order, all) = dests(&[4, 3, 2]);
        let d = Dests::new(&order, &all);
        for wrr in both(&d) {
            let mut counts = [0usize; 3];
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            let mut c = [0usize; 3];
                            for _ in 0..9 * 500 {
                                c[wrr.schedule(&d, &flow()).unwrap()] += 1;
                            }
                            c
                        })
                    })
                    .collect();
                for h in hs {
                    for (t, c) in counts.iter_mut().zip(h.join().unwrap()) {
                        *t += c;
                    }
                }
            });
            assert_eq!(counts, [4000, 3000, 2000]);
        }
    }

    proptest! {
        /// Over one period every server gets exactly weight / gcd turns;
        /// quiescent servers none.
        #[test]
        fn shares_follow_weights(weights in proptest::collection::vec(0u32..=10, 1..=8)) {
            let (order, all) = dests(&weights);
            let d = Dests::new(&order, &all);
            let g = weights.iter().copied().filter(|&w| w > 0).reduce(|a, b| gcd(a.into(), b.into()) as u32);
            let period: u32 = weights.iter().map(|w| w / g.unwrap_or(1)).sum();
            for wrr in both(&d) {
                let mut counts = vec![0u32; weights.len()];
                for _ in 0..period {
                    counts[wrr.schedule(&d, &flow()).unwrap()] += 1;
                }
                let want: Vec<u32> = weights.iter().map(|w| w / g.unwrap_or(1)).collect();
                prop_assert_eq!(counts, want);
                prop_assert_eq!(wrr.schedule(&d, &flow()).is_some(), g.is_some());
            }
        }

        /// The table and IPVS's walk choose alike, step for step, while
        /// servers go in and out of overload; neither returns a quiescent
        /// or overloaded server, nor None while one is available.
        #[test]
        fn table_matches_walk_under_overload(
            weights in proptest::collection::vec(0u32..=10, 1..=8),
            ops in proptest::collection::vec((0u8..4, 0usize..8), 1..200),
        ) {
            let (order, all) = dests(&weights);
            let d = Dests::new(&order, &all);
            let [table, walk] = both(&d);
            for (op, p) in ops {
                if op == 0 {
                    let c = &d.at(p % d.len()).counters;
                    c.set_overloaded(!c.overloaded());
                    continue;
                }
                let got = table.schedule(&d, &flow());
                prop_assert_eq!(got, walk.schedule(&d, &flow()));
                match got {
                    Some(p) => prop_assert!(d.at(p).available()),
                    None => prop_assert!(d.iter().all(|d| !d.available())),
                }
            }
        }
    }
}
