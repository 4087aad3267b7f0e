//! Properties of the whole pipeline over random traffic: every new flow
//! reaches a live real server of its service, and a flow sticks to its real
//! server for its lifetime.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::*;
use proptest::prelude::*;
use xdpvs::frame::Verdict;

/// The real servers' MACs per VIP (see `common::director`).
fn reals_of(vip: Ipv4Addr) -> Vec<[u8; 6]> {
    let last: &[u8] = match vip.octets()[3] {
        1 => &[11, 12, 13],
        2 => &[21, 22],
        _ => &[31, 32],
    };
    last.iter()
        .map(|&l| mac_of(Ipv4Addr::new(198, 18, 2, l)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn flows_reach_live_reals_and_stick(
        flows in proptest::collection::vec((any::<u32>(), any::<u16>(), 0usize..3), 1..60),
        steps in proptest::collection::vec((any::<prop::sample::Index>(), prop_oneof![Just(ACK), Just(ACK | PSH), Just(ACK | FIN)]), 0..200),
    ) {
        let t = director();
        let mut p = pipeline(&t, 1024);
        let vips = [VIP_DR, VIP_TUN, VIP_NAT];
        let mut flows: Vec<(Ipv4Addr, u16, Ipv4Addr)> = flows
            .into_iter()
            .map(|(a, port, v)| (Ipv4Addr::from_bits(0xc612_0000 | (a & 0xffff)), port, vips[v]))
            .collect();
        flows.sort_unstable();
        flows.dedup_by_key(|f| (f.0, f.1, f.2));
        let mut chosen: HashMap<usize, [u8; 6]> = HashMap::new();
        for (i, &(src, sport, dst)) in flows.iter().enumerate() {
            let syn = Pkt { src, sport, dst, ..Pkt::default() };
            let (v, out) = run(&mut p, &syn.bytes(), 0);
            prop_assert!(matches!(v, Verdict::Tx { .. }), "{:?}", v);
            let mac: [u8; 6] = out[0..6].try_into().unwrap();
            prop_assert!(reals_of(dst).contains(&mac));
            chosen.insert(i, mac);
        }
        for (k, (idx, flags)) in steps.into_iter().enumerate() {
            let i = idx.index(flows.len());
            let (src, sport, dst) = flows[i];
            let pkt = Pkt { src, sport, dst, l4: L4::Tcp { flags, seq: k as u32 }, ..Pkt::default() };
            let (v, out) = run(&mut p, &pkt.bytes(), 1);
            prop_assert!(matches!(v, Verdict::Tx { .. }), "{:?}", v);
            prop_assert_eq!(&out[0..6], &chosen[&i][..]);
        }
        prop_assert_eq!(p.conns().len() as usize, flows.len());
    }
}
