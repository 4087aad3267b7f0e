//! sh — source hashing (`ip_vs_sh.c`).
//!
//! A 256-bucket table is dealt out over the real servers in list order,
//! each taking as many consecutive buckets as its weight, round and round
//! (`ip_vs_sh_reassign`; a server of weight 0 still takes one bucket, whose
//! clients then find it unavailable). The client's address — and its port
//! with `sh-port` — picks the bucket with `ip_vs_sh_hashkey`,
//! `hash_32(port + addr, 8)` (IPv6 addresses folded). When the server there
//! is quiescent or overloaded the answer is `None`, unless `sh-fallback`
//! is set: then the table is walked as `ip_vs_sh_get_fallback` walks it —
//! bucket `hashkey(offset = (i + first) mod 256)` for i = 0, 1, ..., which
//! visits every bucket once starting at twice the first bucket — and the
//! first available server is taken.
//!
//! Exactness: table, hash and fallback order are those of current Linux,
//! so a director running IPVS with the same real servers added in the same
//! order and the same weights sends every client to the same server.
//! (Kernels before the `hash_32` conversion used
//! `((port + addr) * 2654435761) & 255`.)
//!
//! What holds when servers change: overloading a server, or quiescing a
//! server of weight 1, affects only the clients hashed to its buckets (to
//! `None`, or with `sh-fallback` to another server); everything else stays.
//! Any other change of weight, and adding or removing a server, re-deals
//! the table (this is not consistent hashing): only the buckets before the
//! changed server's first bucket keep their server.

use std::net::IpAddr;

use super::hash::{addr_fold, hash_32};
use super::params::Params;
use super::scheduler::{Dests, Flow, Scheduler};

/// `IP_VS_SH_TAB_BITS` (`CONFIG_IP_VS_SH_TAB_BITS`, default 8).
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;
/// An empty bucket (no real servers).
const NONE: u32 = u32::MAX;

pub struct Sh {
    /// List position per bucket.
    table: Box<[u32; TAB_SIZE]>,
    /// `sh-fallback`.
    fallback: bool,
    /// `sh-port`.
    port: bool,
}

/// `ip_vs_sh_hashkey`: the bucket for client `addr:port`, moved on by
/// `offset`.
#[inline]
fn hashkey(addr: IpAddr, port: u16, offset: u32) -> usize {
    let key = u32::from(port).wrapping_add(addr_fold(addr));
    (offset.wrapping_add(hash_32(key, TAB_BITS)) & TAB_MASK) as usize
}

impl Scheduler for Sh {
    const NAME: &'static str = "sh";

    fn build(dests: &Dests<'_>, params: &Params) -> Sh {
        let n = dests.len();
        let mut table = Box::new([NONE; TAB_SIZE]);
        if n > 0 {
            let (mut pos, mut count) = (0, 0);
            for b in table.iter_mut() {
                *b = pos as u32;
                // Move on once the server has its weight in buckets.
                count += 1;
                if count >= dests.at(pos).weight {
                    pos = (pos + 1) % n;
                    count = 0;
                }
            }
        }
        Sh {
            table,
            fallback: params.flags.fallback(),
            port: params.flags.port(),
        }
    }

    #[inline]
    fn schedule(&self, dests: &Dests<'_>, flow: &Flow) -> Option<usize> {
        let port = if self.port { flow.cport } else { 0 };
        let first = hashkey(flow.client, port, 0);
        let pos = self.table[first];
        if pos == NONE {
            return None;
        }
        if dests.at(pos as usize).available() {
            return Some(pos as usize);
        }
        if !self.fallback {
            return None;
        }
        (0..TAB_SIZE as u32)
            .map(|i| self.table[hashkey(flow.client, port, (i + first as u32) & TAB_MASK)])
            .map(|pos| pos as usize)
            .find(|&pos| dests.at(pos).available())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SchedFlags;
    use crate::sched::testutil::{dests, flow};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn from(client: [u8; 4], cport: u16) -> Flow {
        Flow {
            client: IpAddr::V4(Ipv4Addr::from(client)),
            cport,
            ..flow()
        }
    }

    fn params(flags: u8) -> Params {
        Params {
            mh_seed: None,
            flags: SchedFlags(flags),
            ..Params::default()
        }
    }

    #[test]
    fn table_follows_ip_vs_sh_reassign() {
        let (order, all) = dests(&[2, 1, 3, 0]);
        let d = Dests::new(&order, &all);
        let sh = Sh::build(&d, &Params::default());
        // 2 + 1 + 3 + 1 (weight 0 still takes one) = a cycle of 7.
        let cycle = [0, 0, 1, 2, 2, 2, 3];
        for (b, &pos) in sh.table.iter().enumerate() {
            assert_eq!(pos, cycle[b % 7], "bucket {b}");
        }
        // A weight above 256 fills the table with the first server.
        let (order, all) = dests(&[300, 1]);
        let sh = Sh::build(&Dests::new(&order, &all), &Params::default());
        assert!(sh.table.iter().all(|&p| p == 0));
    }

    /// `ip_vs_sh_schedule` → `ip_vs_sh_get` / `ip_vs_sh_get_fallback`,
    /// worked out by hand with the table above (cycle 0,0,1,2,2,2,3):
    ///
    /// | client           | port + addr | hash_32(.., 8) | bucket mod 7 | server |
    /// |------------------|-------------|----------------|--------------|--------|
    /// | 198.18.0.10      | 0xC612000A  | 44             | 2            | 1      |
    /// | 198.18.0.13      | 0xC612000D  | 82             | 5            | 2      |
    /// | 198.18.0.15      | 0xC612000F  | 21             | 0            | 0      |
    /// | 198.18.0.27      | 0xC612001B  | 171            | 3            | 2      |
    /// | 198.18.0.36      | 0xC6120024  | 27             | 6            | 3 (w 0)|
    /// | .10 port 40000   | 0xC6129C4A  | 208            | 5            | 2      |
    /// | .10 port 40001   | 0xC6129C4B  | 50             | 1            | 0      |
    ///
    /// The fallback walk for first bucket `h` looks at buckets
    /// `(2h + i) mod 256`, i = 0, 1, ...: for .36 (h = 27) bucket 54 (mod 7
    /// = 5, server 2); for .27 (h = 171) bucket 86 (mod 7 = 2, server 1 —
    /// a walk from h + 1 would have found server 0 first); for .10 (h = 44)
    /// buckets 88, 89 (server 2), 90 (server 3), 91 (server 0).
    #[test]
    fn follows_ip_vs_sh_schedule() {
        let (order, all) = dests(&[2, 1, 3, 0]);
        let d = Dests::new(&order, &all);
        let plain = Sh::build(&d, &Params::default());
        let cases = [
            ([198, 18, 0, 10], 1),
            ([198, 18, 0, 13], 2),
            ([198, 18, 0, 15], 0),
            ([198, 18, 0, 27], 2),
        ];
        for (client, want) in cases {
            // Without sh-port the port plays no part.
            for cport in [0, 40000, 40001] {
                let f = from(client, cport);
                assert_eq!(plain.schedule(&d, &f), Some(want), "{client:?}");
            }
        }
        // A quiescent server: none, unless sh-fallback finds another.
        let fallback = Sh::build(&d, &params(SchedFlags::FLAG1));
        assert_eq!(plain.schedule(&d, &from([198, 18, 0, 36], 0)), None);
        assert_eq!(fallback.schedule(&d, &from([198, 18, 0, 36], 0)), Some(2));
        assert_eq!(fallback.schedule(&d, &from([198, 18, 0, 10], 0)), Some(1));
        // sh-port hashes the client's port too.
        let port = Sh::build(&d, &params(SchedFlags::FLAG2));
        assert_eq!(port.schedule(&d, &from([198, 18, 0, 10], 40000)), Some(2));
        assert_eq!(port.schedule(&d, &from([198, 18, 0, 10], 40001)), Some(0));
        // Overloaded servers: the walk's order decides.
        all[2].as_ref().unwrap().counters.set_overloaded(true);
        assert_eq!(plain.schedule(&d, &from([198, 18, 0, 27], 0)), None);
        assert_eq!(fallback.schedule(&d, &from([198, 18, 0, 27], 0)), Some(1));
        all[1].as_ref().unwrap().counters.set_overloaded(true);
        assert_eq!(fallback.schedule(&d, &from([198, 18, 0, 10], 0)), Some(0));
        all[0].as_ref().unwrap().counters.set_overloaded(true);
        assert_eq!(fallback.schedule(&d, &from([198, 18, 0, 10], 0)), None);
    }

    #[test]
    fn none_without_servers() {
        let (order, all) = dests(&[]);
        let d = Dests::new(&order, &all);
        for flags in [0, 1, 3] {
            assert_eq!(Sh::build(&d, &params(flags)).schedule(&d, &flow()), None);
        }
    }

    proptest! {
        /// Same client (and port, with sh-port), same server; without
        /// sh-port the port plays no part.
        #[test]
        fn same_key_same_server(
            weights in prop::collection::vec(1u32..5, 1..20),
            client: u32, cport: u16, other: u16, flags in 0u8..4,
        ) {
            let (order, all) = dests(&weights);
            let d = Dests::new(&order, &all);
            let sh = Sh::build(&d, &params(flags));
            let f = from(client.to_be_bytes(), cport);
            let a = sh.schedule(&d, &f);
            prop_assert!(a.is_some());
            prop_assert_eq!(a, sh.schedule(&d, &f));
            if flags & SchedFlags::FLAG2 == 0 {
                prop_assert_eq!(a, sh.schedule(&d, &from(client.to_be_bytes(), other)));
            }
        }

        /// Overloading server `k` moves exactly the clients that mapped to
        /// it: to none, or with sh-fallback to an available server; every
        /// other client keeps its server.
        #[test]
        fn unavailable_moves_only_its_keys(
            weights in prop::collection::vec(1u32..5, 2..20), k in 0usize..20,
            fallback: bool, keys in prop::collection::vec(any::<u32>(), 200),
        ) {
            let k = k % weights.len();
            let (order, all) = dests(&weights);
            let d = Dests::new(&order, &all);
            let sh = Sh::build(&d, &params(u8::from(fallback)));
            let before: Vec<_> = keys.iter().map(|v| sh.schedule(&d, &from(v.to_be_bytes(), 0))).collect();
            all[k].as_ref().unwrap().counters.set_overloaded(true);
            for (v, b) in keys.iter().zip(before) {
                let a = sh.schedule(&d, &from(v.to_be_bytes(), 0));
                if b != Some(k) {
                    prop_assert_eq!(a, b);
                } else if fallback {
                    prop_assert!(a.is_some_and(|p| p != k));
                } else {
                    prop_assert_eq!(a, None);
                }
            }
        }

        /// Removing the server at list position `k` re-deals the table:
        /// the buckets before its first one keep their server; the removed
        /// server is never chosen again.
        #[test]
        fn removal_keeps_buckets_before_it(
            weights in prop::collection::vec(1u32..5, 2..20), k in 0usize..20,
            keys in prop::collection::vec(any::<u32>(), 200),
        ) {
            let k = k % weights.len();
            let (order, all) = dests(&weights);
            let d = Dests::new(&order, &all);
            let sh = Sh::build(&d, &Params::default());
            let order2: Vec<u32> = order.iter().copied().filter(|&s| s as usize != k).collect();
            let d2 = Dests::new(&order2, &all);
            let sh2 = Sh::build(&d2, &Params::default());
            let first_of_k: u32 = weights[..k].iter().sum();
            let removed = d.at(k).addr;
            for v in keys {
                let f = from(v.to_be_bytes(), 0);
                let after = sh2.schedule(&d2, &f).map(|p| d2.at(p).addr);
                prop_assert_ne!(after, Some(removed));
                if (hashkey(f.client, 0, 0) as u32) < first_of_k {
                    prop_assert_eq!(after, sh.schedule(&d, &f).map(|p| d.at(p).addr));
                }
            }
        }

        /// Never a quiescent or overloaded server; with sh-fallback, some
        /// server whenever one is available.
        #[test]
        fn never_unavailable(
            state in prop::collection::vec((0u32..3, any::<bool>()), 1..20),
            flags in 0u8..4, keys in prop::collection::vec(any::<u32>(), 100),
        ) {
            let weights: Vec<u32> = state.iter().map(|s| s.0).collect();
            let (order, all) = dests(&weights);
            for (i, s) in state.iter().enumerate() {
                all[i].as_ref().unwrap().counters.set_overloaded(s.1);
            }
            let d = Dests::new(&order, &all);
            let sh = Sh::build(&d, &params(flags));
            let any_available = (0..d.len()).any(|p| d.at(p).available());
            for v in keys {
                match sh.schedule(&d, &from(v.to_be_bytes(), v as u16)) {
                    Some(p) => prop_assert!(d.at(p).available()),
                    // The walk visits every bucket, and every server has one.
                    None => prop_assert!(flags & SchedFlags::FLAG1 == 0 || !any_available),
                }
            }
        }
    }
}
