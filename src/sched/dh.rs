//! dh — destination hashing (`ip_vs_dh.c`).
//!
//! A 256-bucket table is dealt out over the real servers in list order, one
//! bucket each, round and round (`ip_vs_dh_reassign`): bucket `i` holds the
//! server at list position `i mod n`. Weights do not shape the table; a
//! weight of 0 only makes the server's buckets answer "none". The packet's
//! destination address ([`Flow::vip`]) picks the bucket with
//! `ip_vs_dh_hashkey`, `hash_32(addr, 8)` (IPv6 addresses folded). When the
//! server there is quiescent or overloaded there is no fallback: `None`, as
//! IPVS returns NULL (a cache cluster then bypasses the cache).
//!
//! Exactness: table and hash are those of current Linux, so a director
//! running IPVS with the same real servers added in the same order sends
//! every destination address to the same server. (Kernels before the
//! `hash_32` conversion used `(addr * 2654435761) & 255`.)
//!
//! What holds when servers change: quiescing or overloading a server
//! affects only the addresses hashed to its buckets; everything else stays.
//! Adding or removing a server re-deals the whole table (this is not
//! consistent hashing): only the buckets before the removed server's list
//! position keep their server.

use super::hash::{addr_fold, hash_32};
use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};

/// `IP_VS_DH_TAB_BITS` (`CONFIG_IP_VS_DH_TAB_BITS`, default 8).
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
/// An empty bucket (no real servers).
const NONE: u32 = u32::MAX;

pub struct Dh {
    /// List position per bucket.
    table: Box<[u32; TAB_SIZE]>,
}

/// `ip_vs_dh_hashkey`: the bucket of destination address `addr`.
#[inline]
fn hashkey(addr: std::net::IpAddr) -> usize {
    hash_32(addr_fold(addr), TAB_BITS) as usize
}

impl Scheduler for Dh {
    const NAME: &'static str = "dh";

    fn build(dests: &Dests<'_>, _: &Params) -> Dh {
        let n = dests.len();
        let mut table = Box::new([NONE; TAB_SIZE]);
        if n > 0 {
            for (i, b) in table.iter_mut().enumerate() {
                *b = (i % n) as u32;
            }
        }
        Dh { table }
    }

    #[inline]
    fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize> {
        let pos = self.table[hashkey(flow.vip)];
        if pos == NONE {
            return None;
        }
        let pos = pos as usize;
        dests.at(pos).available().then_some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, flow};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn to(vip: [u8; 4]) -> Flow {
        Flow {
            vip: IpAddr::V4(Ipv4Addr::from(vip)),
            ..flow()
        }
    }

    /// `ip_vs_dh_reassign` + `ip_vs_dh_hashkey`, worked out by hand:
    /// bucket = (addr * 0x61C88647 mod 2^32) >> 24, server = bucket mod n.
    ///
    /// | destination  | addr       | addr * φ32 mod 2^32 | bucket | mod 3 |
    /// |--------------|------------|---------------------|--------|-------|
    /// | 198.18.1.1   | 0xC6120101 | 0x854CCD47          | 133    | 1     |
    /// | 198.18.1.2   | 0xC6120102 | 0xE715538E          | 231    | 0     |
    /// | 198.18.1.4   | 0xC6120104 | 0xAAA6601C          | 170    | 2     |
    /// | 10.0.0.2     | 0x0A000002 | 0x89910C8E          | 137    | 2     |
    /// | 203.0.113.7  | 0xCB007107 | 0x7CC102F1          | 124    | 1     |
    #[test]
    fn follows_ip_vs_dh_schedule() {
        let (order, all) = dests(&[1, 5, 1]);
        let d = Dests::new(&order, &all);
        let dh = Dh::build(&d, &Params::default());
        let cases = [
            ([198, 18, 1, 1], 1),
            ([198, 18, 1, 2], 0),
            ([198, 18, 1, 4], 2),
            ([10, 0, 0, 2], 2),
            ([203, 0, 113, 7], 1),
        ];
        for (vip, want) in cases {
            assert_eq!(dh.schedule(&d, &to(vip)), Some(want), "{vip:?}");
        }
        // The source address and ports play no part.
        let f = Flow {
            client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)),
            cport: 1,
            vport: 8080,
            ..to([198, 18, 1, 2])
        };
        assert_eq!(dh.schedule(&d, &f), Some(0));
        // Quiescent or overloaded: none, no fallback; the others stay.
        let (order, all) = dests(&[1, 5, 0]);
        let d = Dests::new(&order, &all);
        let dh = Dh::build(&d, &Params::default());
        assert_eq!(dh.schedule(&d, &to([198, 18, 1, 4])), None);
        assert_eq!(dh.schedule(&d, &to([10, 0, 0, 2])), None);
        assert_eq!(dh.schedule(&d, &to([198, 18, 1, 2])), Some(0));
        all[0].as_ref().unwrap().counters.set_overloaded(true);
        assert_eq!(dh.schedule(&d, &to([198, 18, 1, 2])), None);
        assert_eq!(dh.schedule(&d, &to([198, 18, 1, 1])), Some(1));
    }

    #[test]
    fn none_without_servers() {
        let (order, all) = dests(&[]);
        let d = Dests::new(&order, &all);
        assert_eq!(
            Dh::build(&d, &Params::default()).schedule(&d, &flow()),
            None
        );
    }

    proptest! {
        /// Same key, same server, whatever else the flow carries.
        #[test]
        fn same_key_same_server(n in 1usize..20, vip: u32, client: u32, cport: u16) {
            let (order, all) = dests(&vec![1; n]);
            let d = Dests::new(&order, &all);
            let dh = Dh::build(&d, &Params::default());
            let a = dh.schedule(&d, &to(vip.to_be_bytes()));
            let f = Flow { client: IpAddr::V4(Ipv4Addr::from(client)), cport, ..to(vip.to_be_bytes()) };
            prop_assert_eq!(a, dh.schedule(&d, &f));
            prop_assert_eq!(a, Some(hashkey(f.vip) % n));
        }

        /// Overloading or quiescing server `k` moves exactly the keys that
        /// mapped to it, to none; every other key keeps its server.
        #[test]
        fn unavailable_moves_only_its_keys(
            n in 1usize..20, k in 0usize..20, quiesce: bool,
            keys in prop::collection::vec(any::<u32>(), 200),
        ) {
            let k = k % n;
            let (order, all) = dests(&vec![1; n]);
            let d = Dests::new(&order, &all);
            let dh = Dh::build(&d, &Params::default());
            let before: Vec<_> = keys.iter().map(|v| dh.schedule(&d, &to(v.to_be_bytes()))).collect();
            let mut weights = vec![1; n];
            if quiesce { weights[k] = 0; }
            let (order2, all2) = dests(&weights);
            if !quiesce { all2[k].as_ref().unwrap().counters.set_overloaded(true); }
            let d2 = Dests::new(&order2, &all2);
            let dh2 = Dh::build(&d2, &Params::default());
            for (v, b) in keys.iter().zip(before) {
                let a = dh2.schedule(&d2, &to(v.to_be_bytes()));
                if b == Some(k) { prop_assert_eq!(a, None); } else { prop_assert_eq!(a, b); }
            }
        }

        /// Removing the server at list position `k` re-deals the table:
        /// buckets before `k` keep their server; the removed server is
        /// never chosen again.
        #[test]
        fn removal_keeps_buckets_before_it(
            n in 2usize..20, k in 0usize..20,
            keys in prop::collection::vec(any::<u32>(), 200),
        ) {
            let k = k % n;
            let (order, all) = dests(&vec![1; n]);
            let d = Dests::new(&order, &all);
            let dh = Dh::build(&d, &Params::default());
            let order2: Vec<u32> = order.iter().copied().filter(|&s| s as usize != k).collect();
            let d2 = Dests::new(&order2, &all);
            let dh2 = Dh::build(&d2, &Params::default());
            let removed = d.at(k).addr;
            for v in keys {
                let f = to(v.to_be_bytes());
                let after = dh2.schedule(&d2, &f).map(|p| d2.at(p).addr);
                prop_assert_ne!(after, Some(removed));
                if hashkey(f.vip) < k {
                    prop_assert_eq!(after, dh.schedule(&d, &f).map(|p| d.at(p).addr));
                }
            }
        }

        /// Never a quiescent or overloaded server.
        #[test]
        fn never_unavailable(
            state in prop::collection::vec((0u32..3, any::<bool>()), 1..20),
            keys in prop::collection::vec(any::<u32>(), 100),
        ) {
            let weights: Vec<u32> = state.iter().map(|s| s.0).collect();
            let (order, all) = dests(&weights);
            for (i, s) in state.iter().enumerate() {
                all[i].as_ref().unwrap().counters.set_overloaded(s.1);
            }
            let d = Dests::new(&order, &all);
            let dh = Dh::build(&d, &Params::default());
            for v in keys {
                if let Some(p) = dh.schedule(&d, &to(v.to_be_bytes())) {
                    prop_assert!(d.at(p).available());
                }
            }
        }
    }
}
