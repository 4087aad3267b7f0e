//! lc — least connection (`ip_vs_lc.c`, `ip_vs_lc_schedule`).
//!
//! The overhead of a server is `ActiveConn * 256 + InActConn`
//! (`ip_vs_dest_conn_overhead`); the choice is the server of least overhead,
//! weights aside, the first in list order winning ties (a later server must
//! be strictly less loaded to take over). Quiescent (weight 0) and
//! overloaded servers are skipped. The sum is taken in 64 bits, where
//! IPVS's 32-bit one would wrap past 2^24 active connections.

use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};
use crate::dest::Dest;

pub struct Lc;

#[inline]
fn overhead(d: &Dest) -> u64 {
    let (active, inactive) = d.counters.conns();
    u64::from(active) * 256 + u64::from(inactive)
}

impl Scheduler for Lc {
    const NAME: &'static str = "lc";

    fn build(_: &Dests<'_>, _: &Params) -> Lc {
        Lc
    }

    fn schedule(&self, dests: &Dests<'_>, _: &Flow) -> Option<usize> {
        // No overhead reaches u64::MAX, so the first available server
        // always takes over from the sentinel.
        let (mut least, mut loh) = (None, u64::MAX);
        for (p, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let doh = overhead(d);
            if doh < loh {
                (least, loh) = (Some(p), doh);
            }
        }
        least
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, flow, loaded};
    use proptest::prelude::*;

    /// Drives `ip_vs_lc_schedule` by hand. Server 1 is quiescent; the
    /// weights of the others do not matter. Each chosen server gets a new
    /// (inactive) connection; some get established.
    #[test]
    fn follows_ip_vs_lc_schedule() {
        let (order, all) = dests(&[1, 0, 3, 1]);
        let d = Dests::new(&order, &all);
        let lc = Lc::build(&d, &Params::default());
        let pick = |establish: bool| {
            let p = lc.schedule(&d, &flow()).unwrap();
            d.at(p).bind();
            if establish {
                d.at(p).counters.set_active(true);
            }
            p
        };
        // Overheads 0,-,0,0: the first least, then the next ones in turn.
        assert_eq!([pick(false), pick(false), pick(false)], [0, 2, 3]);
        // All at 1: server 0 again, and its connection is established,
        // so it weighs 256 + 0 from now on.
        assert_eq!(pick(true), 0);
        // 256,-,1,1 then 256,-,2,1 ... servers 2 and 3 share until 256.
        let got: Vec<_> = (0..4).map(|_| pick(false)).collect();
        assert_eq!(got, [2, 3, 2, 3]);
        // Server 0's connection ends: 0 < 3.
        d.at(0).unbind(false);
        assert_eq!(pick(false), 0);
        // 2,-,3,3: server 0 until it reaches 3, then the tie goes to it.
        let got: Vec<_> = (0..4).map(|_| pick(false)).collect();
        assert_eq!(got, [0, 0, 2, 3]);
        // 255 inactive on server 1 against one active on server 0.
        let (order, all) = dests(&[1, 1]);
        let d = Dests::new(&order, &all);
        d.at(0).bind();
        d.at(0).counters.set_active(true);
        (0..255).for_each(|_| d.at(1).bind());
        assert_eq!(lc.schedule(&d, &flow()), Some(1), "255 < 256");
        d.at(1).bind();
        assert_eq!(lc.schedule(&d, &flow()), Some(0), "tie: first in list");
        d.at(0).counters.set_overloaded(true);
        assert_eq!(lc.schedule(&d, &flow()), Some(1), "overloaded is skipped");
    }

    proptest! {
        /// Never a quiescent or overloaded server; None only when no
        /// server is available; otherwise one of least overhead.
        #[test]
        fn only_available_servers(
            servers in proptest::collection::vec((0u32..=4, any::<bool>(), 0u32..4, 0u32..4), 0..=8),
        ) {
            let (order, all) = loaded(&servers);
            let d = Dests::new(&order, &all);
            let lc = Lc::build(&d, &Params::default());
            for _ in 0..8 {
                match lc.schedule(&d, &flow()) {
                    Some(p) => {
                        prop_assert!(d.at(p).available());
                        let min = d.iter().filter(|d| d.available()).map(overhead).min();
                        prop_assert_eq!(Some(overhead(d.at(p))), min);
                        d.at(p).counters.bind();
                    }
                    None => prop_assert!(d.iter().all(|d| !d.available())),
                }
            }
        }
    }
}
