//! nq — never queue (`ip_vs_nq.c`, `ip_vs_nq_schedule`).
//!
//! Two speeds: the first server in list order that is available (neither
//! quiescent nor overloaded) and idle (no active connection) takes the new
//! connection at once; when none is idle the choice is sed's, among the
//! available servers: least `(ActiveConn + 1) / weight`, cross-multiplied in
//! 64-bit integers (`loh * w(d) > doh * w(least)`), the first in list order
//! winning ties. Inactive connections count for neither test.

use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};

pub struct Nq;

impl Scheduler for Nq {
    const NAME: &'static str = "nq";

    fn build(_: &Dests<'_>, _: &Params) -> Nq {
        Nq
    }

    fn schedule(&self, dests: &Dests<'_>, _: &Flow) -> Option<usize> {
        // (position, overhead, weight) of the best busy server so far.
        let mut least: Option<(usize, u64, u64)> = None;
        for (p, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let active = u64::from(d.counters.conns().0);
            if active == 0 {
                return Some(p);
            }
            let (doh, w) = (active + 1, u64::from(d.weight));
            if least.is_none_or(|(_, loh, lw)| loh * w > doh * lw) {
                least = Some((p, doh, w));
            }
        }
        least.map(|(p, ..)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, flow, loaded};
    use proptest::prelude::*;

    /// Drives `ip_vs_nq_schedule` by hand with weights 1,2,3: each chosen
    /// server gets a connection that is established at once. Busy
    /// candidates as (active + 1) / weight.
    #[test]
    fn follows_ip_vs_nq_schedule() {
        let (order, all) = dests(&[1, 2, 3]);
        let d = Dests::new(&order, &all);
        let nq = Nq::build(&d, &Params::default());
        let pick = || {
            let p = nq.schedule(&d, &flow()).unwrap();
            d.at(p).bind();
            d.at(p).counters.set_active(true);
            p
        };
        // Idle servers first, in list order, whatever their weights.
        assert_eq!([pick(), pick(), pick()], [0, 1, 2]);
        // 2/1 2/2 2/3 -> 2;  2/1 2/2 3/3 -> 1;  2/1 3/2 3/3 -> 2.
        assert_eq!([pick(), pick(), pick()], [2, 1, 2]);
        // Server 0's connection ends: idle again, so it wins outright.
        d.at(0).unbind(false);
        assert_eq!(pick(), 0);
        // An idle server that is overloaded is passed over: 2/1 4/3 -> 2.
        d.at(1).unbind(false);
        d.at(1).unbind(false);
        d.at(1).counters.set_overloaded(true);
        assert_eq!(pick(), 2);
        // Inactive connections do not make a server busy.
        d.at(1).counters.set_overloaded(false);
        d.at(1).bind();
        assert_eq!(nq.schedule(&d, &flow()), Some(1));
        // A quiescent server is never taken, idle or not.
        let (order, all) = dests(&[0, 1]);
        let d = Dests::new(&order, &all);
        d.at(1).bind();
        d.at(1).counters.set_active(true);
        assert_eq!(nq.schedule(&d, &flow()), Some(1));
    }

    proptest! {
        /// Never a quiescent or overloaded server; None only when no
        /// server is available; an idle one whenever one is available.
        #[test]
        fn only_available_servers(
            servers in proptest::collection::vec((0u32..=4, any::<bool>(), 0u32..4, 0u32..4), 0..=8),
        ) {
            let (order, all) = loaded(&servers);
            let d = Dests::new(&order, &all);
            let nq = Nq::build(&d, &Params::default());
            let idle = |p: usize| d.at(p).counters.conns().0 == 0;
            for _ in 0..8 {
                match nq.schedule(&d, &flow()) {
                    Some(p) => {
                        prop_assert!(d.at(p).available());
                        let first_idle = (0..d.len()).find(|&q| d.at(q).available() && idle(q));
                        if let Some(q) = first_idle {
                            prop_assert_eq!(p, q);
                        }
                        d.at(p).counters.bind();
                        d.at(p).counters.set_active(true);
                    }
                    None => prop_assert!(d.iter().all(|d| !d.available())),
                }
            }
        }
    }
}
