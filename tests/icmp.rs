//! ICMP errors about connections are relayed, translated, to where the
//! quoted packet came from (`ip_vs_in_icmp`, `ip_vs_out_icmp`).

mod common;

use std::net::Ipv4Addr;

use common::*;
use etherparse::{Ipv4HeaderSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::stats::Counter;

const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RS31: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 31);

/// An ICMP error frame from `src` to `dst` (arriving from `src_mac`)
/// quoting `quoted` (an IP packet; its first header + 8 bytes are taken).
fn icmp_error(
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: (u8, u8, u16),
    quoted: &[u8],
) -> Vec<u8> {
    let ihl = usize::from(quoted[0] & 0x0f) * 4;
    let quote = &quoted[..(ihl + 8).min(quoted.len())];
    let mtu = kind.2.to_be_bytes();
    let b = PacketBuilder::ethernet2(src_mac, DIRECTOR_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4_raw(kind.0, kind.1, [0, 0, mtu[0], mtu[1]]);
    let mut out = Vec::new();
    b.write(&mut out, quote).unwrap();
    out
}

/// Checks every checksum that can be checked: outer IPv4, ICMP, the quoted
/// IPv4 header. Returns the quote.
fn check(out: &[u8]) -> Vec<u8> {
    let s = SlicedPacket::from_ethernet(out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        xdpvs::wire::checksum::checksum(icmp.slice()),
        0,
        "ICMP checksum"
    );
    let quote = icmp.payload().to_vec();
    let qh = Ipv4HeaderSlice::from_slice(&quote).unwrap().to_header();
    assert_eq!(
        qh.header_checksum,
        qh.calc_header_checksum(),
        "quoted header"
    );
    quote
}

fn ports(quote: &[u8]) -> (u16, u16) {
    let ihl = usize::from(quote[0] & 0x0f) * 4;
    (
        u16::from_be_bytes([quote[ihl], quote[ihl + 1]]),
        u16::from_be_bytes([quote[ihl + 2], quote[ihl + 3]]),
    )
}

#[test]
fn nat_port_unreachable_from_the_server_reaches_the_client() {
    let t = director();
    let mut p = pipeline(&t, 64);
    let q = Pkt {
        dst: VIP_NAT,
        dport: 53,
        sport: 5000,
        l4: L4::Udp { checksum: true },
        payload: b"query".to_vec(),
        ..Pkt::default()
    };
    let (_, fwd) = run(&mut p, &q.bytes(), 0);
    // The real server answers "port unreachable", quoting what it got.
    let err = icmp_error(mac_of(RS31), RS31, CLIENT, (3, 3, 0), &fwd[14..]);
    let (v, out) = run(&mut p, &err, 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    assert_eq!(&out[0..6], &ROUTER_MAC);
    let quote = check(&out);
    let ip = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(
        (ip.source_addr(), ip.destination_addr(), ip.ttl()),
        (VIP_NAT, CLIENT, 63)
    );
    let qh = Ipv4HeaderSlice::from_slice(&quote).unwrap();
    assert_eq!((qh.source_addr(), qh.destination_addr()), (CLIENT, VIP_NAT));
    assert_eq!(ports(&quote), (5000, 53));
    assert_eq!(p.stats().get(Counter::IcmpRelayed), 1);
}

#[test]
fn nat_frag_needed_from_the_client_side_reaches_the_server() {
    let t = director();
    let mut p = pipeline(&t, 64);
    let syn = Pkt {
        dst: VIP_NAT,
        ..Pkt::default()
    };
    run(&mut p, &syn.bytes(), 0);
    // A router on the client's path cannot forward a reply of 1500 bytes.
    let reply = Pkt {
        src: VIP_NAT,
        sport: 80,
        dst: CLIENT,
        dport: 40000,
        l4: L4::Tcp { flags: ACK, seq: 5 },
        ..Pkt::default()
    };
    let err = icmp_error(ROUTER_MAC, ROUTER, VIP_NAT, (3, 4, 1400), &reply.ip_bytes());
    let (v, out) = run(&mut p, &err, 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    assert_eq!(&out[0..6], &mac_of(RS31));
    let quote = check(&out);
    let ip = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!((ip.source_addr(), ip.destination_addr()), (ROUTER, RS31));
    let qh = Ipv4HeaderSlice::from_slice(&quote).unwrap();
    assert_eq!((qh.source_addr(), qh.destination_addr()), (RS31, CLIENT));
    assert_eq!(ports(&quote), (8080, 40000));
    // The next-hop MTU is carried as it was.
    assert_eq!(&out[14 + 20 + 6..14 + 20 + 8], &1400u16.to_be_bytes());
}

#[test]
fn dr_and_tun_forward_the_error_as_they_forward_packets() {
    let t = director();
    let mut p = pipeline(&t, 64);
    for (vip, rip) in [
        (VIP_DR, Ipv4Addr::new(198, 18, 2, 11)),
        (VIP_TUN, Ipv4Addr::new(198, 18, 2, 21)),
    ] {
        run(
            &mut p,
            &Pkt {
                dst: vip,
                ..Pkt::default()
            }
            .bytes(),
            0,
        );
        let reply = Pkt {
            src: vip,
            sport: 80,
            dst: CLIENT,
            dport: 40000,
            l4: L4::Tcp { flags: ACK, seq: 5 },
            ..Pkt::default()
        };
        let err = icmp_error(ROUTER_MAC, ROUTER, vip, (3, 4, 1400), &reply.ip_bytes());
        let (v, out) = run(&mut p, &err, 1);
        assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
        assert_eq!(&out[0..6], &mac_of(rip));
        if vip == VIP_DR {
            assert_eq!(&out[12..], &err[12..], "DR: unchanged above layer 2");
        } else {
            assert_eq!(out[14 + 9], 4, "IPIP");
            assert_eq!(&out[14 + 16..14 + 20], &rip.octets());
            assert_eq!(&out[34..], &err[14..], "the error, encapsulated whole");
        }
    }
    assert_eq!(p.stats().get(Counter::IcmpRelayed), 2);
}

#[test]
fn other_icmp_is_the_kernels() {
    let t = director();
    let mut p = pipeline(&t, 64);
    // No connection for the quoted packet.
    let stray = Pkt {
        src: VIP_DR,
        sport: 80,
        dst: CLIENT,
        dport: 1,
        ..Pkt::default()
    };
    let err = icmp_error(ROUTER_MAC, ROUTER, VIP_DR, (3, 4, 1400), &stray.ip_bytes());
    assert_eq!(run(&mut p, &err, 0).0, Verdict::NotOurs);
    // An echo request to the VIP.
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT.octets(), VIP_DR.octets(), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    assert_eq!(run(&mut p, &echo, 0).0, Verdict::NotOurs);
    // A quote too short to hold the ports.
    run(&mut p, &Pkt::default().bytes(), 0);
    let reply = Pkt {
        src: VIP_DR,
        sport: 80,
        dst: CLIENT,
        dport: 40000,
        ..Pkt::default()
    };
    let err = icmp_error(
        ROUTER_MAC,
        ROUTER,
        VIP_DR,
        (3, 4, 1400),
        &reply.ip_bytes()[..24],
    );
    assert_eq!(run(&mut p, &err, 0).0, Verdict::NotOurs);
}

proptest! {
    /// Random quotes never panic, and what is forwarded has good checksums.
    #[test]
    fn random_quotes(body in proptest::collection::vec(any::<u8>(), 0..80), kind in 0u8..20) {
        let t = director();
        let mut p = pipeline(&t, 64);
        run(&mut p, &Pkt { dst: VIP_NAT, ..Pkt::default() }.bytes(), 0);
        let mut quoted = Pkt {
            src: VIP_NAT,
            sport: 80,
            dst: CLIENT,
            dport: 40000,
            ..Pkt::default()
        }
        .ip_bytes();
        quoted.truncate(28);
        for (q, b) in quoted.iter_mut().zip(&body) {
            *q ^= b;
        }
        let err = icmp_error(ROUTER_MAC, ROUTER, VIP_NAT, (kind, 0, 0), &quoted);
        if let (Verdict::Tx { .. }, out) = run(&mut p, &err, 1) {
            check(&out);
        }
    }
}

/// Parameter problem is relayed like the other errors; an error about a
/// connection whose ICMP checksum is wrong is dropped and counted, as
/// `ip_vs_in_icmp` does.
#[test]
fn parameter_problem_is_relayed_and_a_bad_icmp_checksum_dropped() {
    let t = director();
    let mut p = pipeline(&t, 64);
    let q = Pkt {
        dst: VIP_NAT,
        dport: 53,
        sport: 5001,
        l4: L4::Udp { checksum: true },
        payload: b"query".to_vec(),
        ..Pkt::default()
    };
    let (_, fwd) = run(&mut p, &q.bytes(), 0);
    let err = icmp_error(mac_of(RS31), RS31, CLIENT, (12, 0, 0), &fwd[14..]);
    let (v, out) = run(&mut p, &err, 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    let quote = check(&out);
    let ip = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!((ip.source_addr(), ip.destination_addr()), (VIP_NAT, CLIENT));
    assert_eq!(ports(&quote), (5001, 53));
    assert_eq!(p.stats().get(Counter::IcmpRelayed), 1);

    let mut bad = icmp_error(mac_of(RS31), RS31, CLIENT, (3, 3, 0), &fwd[14..]);
    bad[14 + 20 + 2] ^= 0x01; // the ICMP checksum
    let (v, _) = run(&mut p, &bad, 1);
    assert_eq!(v, Verdict::Drop(DropReason::BadIcmpChecksum));
    assert_eq!(p.stats().dropped(DropReason::BadIcmpChecksum), 1);
    assert_eq!(p.stats().get(Counter::IcmpRelayed), 1, "not relayed");
}
