//! rr — round robin (`ip_vs_rr.c`, `ip_vs_rr_schedule`).
//!
//! The cursor remembers the last server chosen; the next decision scans the
//! list after it, wrapping, and takes the first server that is neither
//! quiescent (weight 0) nor overloaded. IPVS keeps the cursor under a lock;
//! here it is one atomic shared by all workers, advanced with
//! compare-and-swap, so the rotation stays exact across workers without a
//! lock (one CAS per new connection, none per packet).
//!
//! When the service's servers change, the cursor stays on the server it
//! was on, as IPVS's list pointer does; if that server was deleted, it
//! moves back to the nearest earlier server still there
//! (`ip_vs_rr_del_dest`), or to the list head.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};
use crate::dest::DestRef;

pub struct Rr {
    /// The list position where the next scan starts (one past the last
    /// server chosen); 0 is IPVS's "list head".
    next: AtomicUsize,
    /// The servers, in list order, when this was built.
    order: Box<[DestRef]>,
}

impl Scheduler for Rr {
    const NAME: &'static str = "rr";

    fn build(dests: &Dests<'_>, _: &Params) -> Rr {
        Rr {
            next: AtomicUsize::new(0),
            order: dests.iter().map(|d| d.r).collect(),
        }
    }

    fn rebuild(dests: &Dests<'_>, params: &Params, prev: &Rr) -> Rr {
        let rr = Rr::build(dests, params);
        let at = prev.next.load(Ordering::Relaxed);
        // The last server chosen, else the nearest one before it that is
        // still in the list; none (the head) gives 0.
        let next = prev.order[..at.min(prev.order.len())]
            .iter()
            .rev()
            .find_map(|r| rr.order.iter().position(|x| x == r))
            .map_or(0, |pos| pos + 1);
        rr.next.store(next, Ordering::Relaxed);
        rr
    }

    fn schedule(&self, dests: &Dests<'_>, _: &Flow) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        // Relaxed: the cursor orders nothing but itself; the CAS makes
        // concurrent workers take distinct turns.
        let mut start = self.next.load(Ordering::Relaxed);
        loop {
            let pos = (0..n)
                .map(|k| (start + k) % n)
                .find(|&p| dests.at(p).available())?;
            match self.next.compare_exchange_weak(
                start,
                pos + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(pos),
                Err(now) => start = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, flow};

    fn picks(weights: &[u32], n: usize) -> Vec<usize> {
        let (order, all) = dests(weights);
        let d = Dests::new(&order, &all);
        let rr = Rr::build(&d, &Params::default());
        (0..n).map(|_| rr.schedule(&d, &flow()).unwrap()).collect()
    }

    /// `ip_vs_rr_schedule`: from the list head, each decision takes the next
    /// available server; weights do not matter except 0.
    #[test]
    fn rotates_in_list_order() {
        assert_eq!(picks(&[1, 5, 1], 7), vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skips_quiescent_and_overloaded() {
        assert_eq!(picks(&[1, 0, 1], 4), vec![0, 2, 0, 2]);
        let (order, all) = dests(&[1, 1, 1]);
        let d = Dests::new(&order, &all);
        let rr = Rr::build(&d, &Params::default());
        all[1].as_ref().unwrap().counters.set_overloaded(true);
        let got: Vec<_> = (0..4).map(|_| rr.schedule(&d, &flow()).unwrap()).collect();
        assert_eq!(got, vec![0, 2, 0, 2]);
    }

    /// `ip_vs_rr_schedule` keeps its list pointer across additions (new
    /// servers join at the head) and `ip_vs_rr_del_dest` moves it back
    /// when its server is deleted.
    #[test]
    fn cursor_survives_server_changes() {
        let (order, all) = dests(&[1, 1, 1, 1]);
        let d = Dests::new(&order, &all);
        let rr = Rr::build(&d, &Params::default());
        for _ in 0..2 {
            rr.schedule(&d, &flow()).unwrap();
        }
        // Last chosen: position 1. A server is added at the head: the same
        // server is now at position 2; the next pick is the one after it.
        let (mut order2, all2) = dests(&[1, 1, 1, 1, 1]);
        order2.rotate_right(1); // slot 4 first, as a newly added server
        let d2 = Dests::new(&order2, &all2);
        let rr2 = Rr::rebuild(&d2, &Params::default(), &rr);
        assert_eq!(rr2.schedule(&d2, &flow()), Some(3));
        // The last chosen (slot 2, at position 3) is deleted: back to the
        // server before it (slot 1), so the next pick is slot 3.
        let order3: Vec<u32> = order2.iter().copied().filter(|&s| s != 2).collect();
        let d3 = Dests::new(&order3, &all2);
        let rr3 = Rr::rebuild(&d3, &Params::default(), &rr2);
        let p = rr3.schedule(&d3, &flow()).unwrap();
        assert_eq!(order3[p], 3);
    }

    #[test]
    fn none_when_nothing_available() {
        let (order, all) = dests(&[0, 0]);
        let d = Dests::new(&order, &all);
        assert_eq!(
            Rr::build(&d, &Params::default()).schedule(&d, &flow()),
            None
        );
        let (order, all) = dests(&[]);
        let d = Dests::new(&order, &all);
        assert_eq!(
            Rr::build(&d, &Params::default()).schedule(&d, &flow()),
            None
        );
    }

    #[test]
    fn exact_rotation_across_threads() {
        let (order, all) = dests(&[1, 1, 1]);
        let d = Dests::new(&order, &all);
        let rr = Rr::build(&d, &Params::default());
        let mut counts = [0usize; 3];
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = [0usize; 3];
                        for _ in 0..3000 {
                            c[rr.schedule(&d, &flow()).unwrap()] += 1;
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
        assert_eq!(counts, [2000, 2000, 2000]);
    }
}
