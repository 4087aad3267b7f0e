//! Partial checksums through the pipeline (`dataplane.complete_checksums`):
//! a frame whose TCP/UDP checksum field holds only the pseudo-header sum,
//! as a sender with tx checksum offload on a veth leaves it, leaves the
//! director with a full, valid checksum in every forwarding mode — etherparse
//! recomputes each one as the oracle. Other frames are not touched: a
//! corrupt checksum stays corrupt, a UDP datagram without a checksum stays
//! without one, and a port with the completion off forwards the partial
//! frame as it came.

mod common;

use std::net::Ipv4Addr;

use common::*;
use etherparse::{Ipv4HeaderSlice, SlicedPacket, TransportSlice};
use xdpvs::frame::Verdict;
use xdpvs::pipeline::Pipeline;
use xdpvs::stats::Counter;
use xdpvs::wire::partial::make_partial_v4;

/// The frame of `pkt` with its transport checksum made partial.
fn partial(pkt: &Pkt) -> Vec<u8> {
    let mut f = pkt.bytes();
    let l2 = if pkt.vlan.is_some() { 18 } else { 14 };
    let ihl = 20 + pkt.options.len();
    assert!(make_partial_v4(&mut f[l2..], ihl), "made partial");
    assert_ne!(f, pkt.bytes(), "the partial pattern differs from the sum");
    f
}

/// Whether the transport checksum of the IP packet `ip` is right, by
/// etherparse's full recomputation (a UDP checksum of 0 counts as right:
/// there is none).
fn transport_ok(ip: &[u8]) -> bool {
    let s = SlicedPacket::from_ip(ip).expect("etherparse parses the packet");
    let h = Ipv4HeaderSlice::from_slice(ip).unwrap().to_header();
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            t.checksum() == t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
        }
        Some(TransportSlice::Udp(u)) => {
            u.checksum() == 0
                || u.checksum() == u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
        }
        other => panic!("not TCP or UDP: {other:?}"),
    }
}

/// The transport checksum field of the IP packet `ip`.
fn check_field(ip: &[u8]) -> u16 {
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let at = ihl + if ip[9] == 6 { 16 } else { 6 };
    u16::from_be_bytes([ip[at], ip[at + 1]])
}

fn completed(p: &Pipeline) -> u64 {
    p.stats().get(Counter::CsumCompleted)
}

fn tx(v: Verdict) -> bool {
    matches!(v, Verdict::Tx { port: 0, .. })
}

#[test]
fn dr_forwards_a_partial_frame_finished() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    for (i, vlan) in [None, Some(0x0064)].into_iter().enumerate() {
        let pkt = Pkt {
            sport: 41000 + i as u16,
            vlan,
            payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &partial(&pkt), 0);
        assert!(tx(v), "{v:?}");
        // DR changes the MACs only: the rest is the complete packet.
        let l2 = if vlan.is_some() { 18 } else { 14 };
        assert_eq!(out[l2..], pkt.bytes()[l2..]);
        assert!(transport_ok(&out[l2..]));
        assert_eq!(completed(&p), i as u64 + 1);
    }
}

#[test]
fn tun_carries_a_finished_inner_packet() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        dst: VIP_TUN,
        payload: vec![0x5a; 1400],
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &partial(&pkt), 0);
    assert!(tx(v), "{v:?}");
    let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
    assert_eq!(outer.protocol, etherparse::IpNumber::IPV4);
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    let inner = &out[14 + 20..];
    assert_eq!(
        inner,
        &pkt.ip_bytes()[..],
        "the inner packet is the complete one"
    );
    assert!(transport_ok(inner));
    assert_eq!(completed(&p), 1);
}

#[test]
fn nat_translates_partial_frames_both_ways() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    let syn = Pkt {
        dst: VIP_NAT,
        payload: b"data with the SYN".to_vec(),
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &partial(&syn), 0);
    assert!(tx(v), "{v:?}");
    let want = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac_of(rs),
        dst: rs,
        dport: 8080,
        ..syn.clone()
    };
    assert_eq!(out, want.bytes(), "the same bytes as a complete SYN's");
    assert!(transport_ok(&out[14..]));

    // The real server's own veth leaves its replies partial too.
    let synack = Pkt {
        src_mac: mac_of(rs),
        src: rs,
        sport: 8080,
        dst: CLIENT,
        dport: 40000,
        ttl: 64,
        l4: L4::Tcp {
            flags: SYN | ACK,
            seq: 5000,
        },
        payload: vec![0xc3; 1000],
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &partial(&synack), 0);
    assert!(tx(v), "{v:?}");
    let want = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: ROUTER_MAC,
        src: VIP_NAT,
        sport: 80,
        ttl: 63,
        ..synack
    };
    assert_eq!(out, want.bytes());
    assert!(transport_ok(&out[14..]));
    assert_eq!(completed(&p), 2);
}

#[test]
fn nat_udp_partial_is_finished_and_zero_stays_zero() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    for (i, checksum) in [true, false].into_iter().enumerate() {
        let q = Pkt {
            dst: VIP_NAT,
            dport: 53,
            sport: 5000 + i as u16,
            l4: L4::Udp { checksum },
            payload: b"\x12\x34query".to_vec(),
            ..Pkt::default()
        };
        let frame = if checksum { partial(&q) } else { q.bytes() };
        let (v, out) = run(&mut p, &frame, 0);
        assert!(tx(v), "{v:?}");
        let want = Pkt {
            src_mac: DIRECTOR_MAC,
            dst_mac: mac_of(rs),
            dst: rs,
            dport: 5353,
            ..q.clone()
        };
        assert_eq!(out, want.bytes());
        if checksum {
            assert!(transport_ok(&out[14..]));
            assert_ne!(check_field(&out[14..]), 0);
        } else {
            assert_eq!(check_field(&out[14..]), 0, "no checksum stays none");
        }
    }
    assert_eq!(completed(&p), 1);
}

#[test]
fn a_corrupt_checksum_stays_corrupt() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    for (i, dst) in [VIP_DR, VIP_NAT].into_iter().enumerate() {
        let pkt = Pkt {
            dst,
            sport: 42000 + i as u16,
            payload: b"payload".to_vec(),
            ..Pkt::default()
        };
        let mut f = partial(&pkt);
        // Neither the full checksum nor the partial pattern.
        let good = check_field(&pkt.bytes()[14..]);
        let pattern = check_field(&f[14..]);
        let bad = (1u16..).find(|b| ![good, pattern].contains(b)).unwrap();
        f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&bad.to_be_bytes());
        let (v, out) = run(&mut p, &f, 0);
        assert!(tx(v), "{v:?}");
        assert!(!transport_ok(&out[14..]), "still corrupt");
    }
    assert_eq!(completed(&p), 0);
}

#[test]
fn off_forwards_partial_frames_as_they_came() {
    let t = director_with(false);
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        ..Pkt::default()
    };
    let f = partial(&pkt);
    let (v, out) = run(&mut p, &f, 0);
    assert!(tx(v), "{v:?}");
    assert_eq!(out[14..], f[14..], "untouched above layer 2");
    assert!(!transport_ok(&out[14..]));
    assert_eq!(completed(&p), 0);
}

#[test]
fn complete_frames_are_not_counted_or_changed() {
    let t = director_with(true);
    let mut p = pipeline(&t, 1024);
    for (i, dst) in [VIP_DR, VIP_TUN].into_iter().enumerate() {
        let pkt = Pkt {
            dst,
            sport: 43000 + i as u16,
            payload: vec![i as u8; 64],
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &pkt.bytes(), 0);
        assert!(tx(v), "{v:?}");
        assert!(out.ends_with(&pkt.ip_bytes()));
    }
    assert_eq!(completed(&p), 0);
}
