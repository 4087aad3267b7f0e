//! rr — round robin (`ip_vs_rr.c`, `ip_vs_rr_schedule`).
//!
//! The cursor remembers the last server chosen; the next decision scans the
//! list after it, wrapping, and takes the first server that is neither
//! quiescent (weight 0) nor overloaded. IPVS keeps the cursor under a lock;
//! here it is one atomic shared by all workers, advanced with
//! compare-and-swap, so the rotation stays exact across workers without a
//! lock (one CAS per new connection, none per packet).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Dests, Flow, Params, Scheduler};

pub struct Rr {
    /// The list position where the next scan starts (one past the last
    /// server chosen); 0 is IPVS's "list head".
    next: AtomicUsize,
}

impl Scheduler for Rr {
    const NAME: &'static str = "rr";

    fn build(_: &Dests<'_>, _: &Params) -> Rr {
        Rr {
            next: AtomicUsize::new(0),
        }
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
