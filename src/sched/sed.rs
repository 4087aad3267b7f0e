//! sed — shortest expected delay (`ip_vs_sed.c`, `ip_vs_sed_schedule`).
//!
//! A new connection sent to server `i` expects a delay of `(Ci + 1) / Ui`:
//! `Ci` its active connections only (`ip_vs_sed_dest_overhead`, inactive
//! ones do not count), `Ui` its weight. The first server in list order that
//! is neither quiescent nor overloaded is the starting candidate; a later
//! one that is not overloaded takes over only when strictly better, compared
//! cross-multiplied in 64-bit integers (`loh * w(d) > doh * w(least)`). A
//! quiescent server never wins: its weight makes the left side 0.

use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};
use crate::dest::Dest;

pub struct Sed;

/// `ActiveConn + 1`.
#[inline]
fn overhead(d: &Dest) -> u64 {
    u64::from(d.counters.conns().0) + 1
}

impl Scheduler for Sed {
    const NAME: &'static str = "sed";

    fn build(_: &Dests<'_>, _: &Params) -> Sed {
        Sed
    }

    fn schedule(&self, dests: &Dests<'_>, _: &Flow) -> Option<usize> {
        let first = (0..dests.len()).find(|&p| dests.at(p).available())?;
        let (mut least, mut loh) = (dests.at(first), overhead(dests.at(first)));
        let mut pos = first;
        for p in first + 1..dests.len() {
            let d = dests.at(p);
            if d.counters.overloaded() {
                continue;
            }
            let doh = overhead(d);
            if loh * u64::from(d.weight) > doh * u64::from(least.weight) {
                (least, loh, pos) = (d, doh, p);
            }
        }
        Some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, flow, loaded};
    use proptest::prelude::*;

    /// Drives `ip_vs_sed_schedule` by hand with weights 1,2,3: each chosen
    /// server gets a connection that is established at once, unless said
    /// otherwise. Candidates as (active + 1) / weight.
    #[test]
    fn follows_ip_vs_sed_schedule() {
        let (order, all) = dests(&[1, 2, 3]);
        let d = Dests::new(&order, &all);
        let sed = Sed::build(&d, &Params::default());
        let pick = |establish: bool| {
            let p = sed.schedule(&d, &flow()).unwrap();
            d.at(p).bind();
            if establish {
                d.at(p).counters.set_active(true);
            }
            p
        };
        // 1/1 1/2 1/3 -> 2;  1/1 1/2 2/3 -> 1 (2/3 > 1/2);
        // 1/1 2/2 2/3 -> 2;  1/1 2/2 3/3 -> 0 (ties keep the first);
        // 2/1 2/2 3/3 -> 1;  2/1 3/2 3/3 -> 2.
        let got: Vec<_> = (0..6).map(|_| pick(true)).collect();
        assert_eq!(got, [2, 1, 2, 0, 1, 2]);
        // 2/1 3/2 4/3 -> 2, and inactive connections do not count: the
        // same again while they stay unestablished.
        assert_eq!([pick(false), pick(false), pick(false)], [2, 2, 2]);
        // One of server 1's connections ends: 2/1 2/2 4/3 -> 1.
        d.at(1).unbind(false);
        assert_eq!(pick(true), 1);
        // Overloaded servers are skipped: 2/1 3/2 -> 1 without server 2.
        d.at(2).counters.set_overloaded(true);
        assert_eq!(pick(true), 1);
        // Quiescent ones never win, however idle.
        let (order, all) = dests(&[0, 1]);
        let d = Dests::new(&order, &all);
        (0..5).for_each(|_| {
            d.at(1).bind();
            d.at(1).counters.set_active(true);
        });
        assert_eq!(sed.schedule(&d, &flow()), Some(1));
    }

    proptest! {
        /// Never a quiescent or overloaded server; None only when no
        /// server is available; otherwise one of least expected delay.
        #[test]
        fn only_available_servers(
            servers in proptest::collection::vec((0u32..=4, any::<bool>(), 0u32..4, 0u32..4), 0..=8),
        ) {
            let (order, all) = loaded(&servers);
            let d = Dests::new(&order, &all);
            let sed = Sed::build(&d, &Params::default());
            for _ in 0..8 {
                match sed.schedule(&d, &flow()) {
                    Some(p) => {
                        let best = d.at(p);
                        prop_assert!(best.available());
                        for o in d.iter().filter(|o| o.available()) {
                            prop_assert!(overhead(best) * u64::from(o.weight) <= overhead(o) * u64::from(best.weight));
                        }
                        best.counters.bind();
                        best.counters.set_active(true);
                    }
                    None => prop_assert!(d.iter().all(|d| !d.available())),
                }
            }
        }
    }
}
