//! The IPv6 path end to end, without a network: frames built with
//! etherparse go through `Pipeline::process`, and what comes out is
//! compared byte for byte with what etherparse builds for the expected
//! packet, every checksum recomputed in full by etherparse (issue 16).
//! The services are built on the table directly: the control thread does
//! not take IPv6 services yet.

mod common;

use std::net::{Ipv6Addr, SocketAddr};

use common::*;
use etherparse::{
    IpHeaders, IpNumber, Ipv6FlowLabel, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};
use xdpvs::config::{Forward, Protocol};
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::ServiceTable;
use xdpvs::stats::Counter;

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const VIP_DR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const VIP_TUN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const VIP_NAT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
/// The source of the director's route to the TUN real servers.
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);

fn rip(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, n)
}

fn mac6(ip: Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0, 0, 0x06, o[14], o[15]]
}

/// The test director, IPv6 beside an IPv4 DR service (`director`'s):
/// - TCP [VIP_DR6]:80 rr → ::12, ::11 (DR; list order, newest first)
/// - TCP [VIP_TUN6]:80 rr → ::21 (TUN, route source SRC6), ::22 (TUN, no
///   route source)
/// - TCP [VIP_NAT6]:80 rr → [::32]:8080, [::31]:8080 (NAT)
/// - UDP [VIP_NAT6]:53 rr → [::31]:5353 (NAT)
fn director6() -> ServiceTable {
    director6_with(false)
}

/// [`director6`], its port finishing partial checksums or not.
fn director6_with(complete_checksums: bool) -> ServiceTable {
    let mut t = director_with(complete_checksums);
    t.allow_ipv6_services();
    type Reals<'a> = &'a [(u16, u16, Forward)];
    let layout: [(Protocol, Ipv6Addr, u16, Reals<'_>); 4] = [
        (
            Protocol::Tcp,
            VIP_DR6,
            80,
            &[(0x11, 80, Forward::Dr), (0x12, 80, Forward::Dr)],
        ),
        (
            Protocol::Tcp,
            VIP_TUN6,
            80,
            &[(0x22, 80, Forward::Tun), (0x21, 80, Forward::Tun)],
        ),
        (
            Protocol::Tcp,
            VIP_NAT6,
            80,
            &[(0x31, 8080, Forward::Nat), (0x32, 8080, Forward::Nat)],
        ),
        (Protocol::Udp, VIP_NAT6, 53, &[(0x31, 5353, Forward::Nat)]),
    ];
    for (proto, vip, port, reals) in layout {
        let vip = SocketAddr::new(vip.into(), port);
        t.add_service(&service(proto, &vip.to_string(), "rr"))
            .unwrap();
        for &(n, rport, fwd) in reals {
            let addr = SocketAddr::new(rip(n).into(), rport);
            t.add_dest(proto, vip, &real(&addr.to_string(), fwd, 1))
                .unwrap();
            t.set_next_hop(rip(n).into(), 0, mac6(rip(n)));
        }
    }
    assert!(t.set_source6(rip(0x21).into(), Some(SRC6)));
    t
}

/// An IPv6 packet as the tests build it.
#[derive(Clone)]
struct Pkt6 {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    traffic_class: u8,
    flow_label: u32,
    sport: u16,
    dport: u16,
    /// TCP flags (SYN, ACK, ...), or `None` for UDP.
    tcp: Option<u8>,
    payload: Vec<u8>,
}

impl Default for Pkt6 {
    fn default() -> Self {
        Pkt6 {
            src_mac: ROUTER_MAC,
            dst_mac: DIRECTOR_MAC,
            src: CLIENT6,
            dst: VIP_DR6,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            sport: 40000,
            dport: 80,
            tcp: Some(SYN),
            payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        }
    }
}

impl Pkt6 {
    fn header(&self) -> Ipv6Header {
        Ipv6Header {
            traffic_class: self.traffic_class,
            flow_label: Ipv6FlowLabel::try_new(self.flow_label).unwrap(),
            payload_length: 0,
            next_header: IpNumber::TCP,
            hop_limit: self.hop_limit,
            source: self.src.octets(),
            destination: self.dst.octets(),
        }
    }

    /// The IPv6 packet (header and payload), checksums filled in.
    fn ip_bytes(&self) -> Vec<u8> {
        let b = PacketBuilder::ip(IpHeaders::Ipv6(self.header(), Default::default()));
        let mut out = Vec::new();
        match self.tcp {
            Some(flags) => {
                let mut b = b.tcp(self.sport, self.dport, 7, 64240);
                if flags & SYN != 0 {
                    b = b.syn();
                }
                if flags & ACK != 0 {
                    b = b.ack(1);
                }
                if flags & FIN != 0 {
                    b = b.fin();
                }
                b.write(&mut out, &self.payload).unwrap();
            }
            None => {
                let b = b.udp(self.sport, self.dport);
                b.write(&mut out, &self.payload).unwrap();
            }
        }
        out
    }

    fn l2(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        out.extend_from_slice(&0x86ddu16.to_be_bytes());
        out
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.l2();
        out.extend_from_slice(&self.ip_bytes());
        out
    }

    /// The reply of this packet's receiver: addresses and ports swapped.
    fn reply(&self, flags: Option<u8>) -> Pkt6 {
        Pkt6 {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            tcp: flags,
            payload: b"HTTP/1.0 200 OK\r\n\r\n".to_vec(),
            ..self.clone()
        }
    }
}

/// Every checksum of the IPv6 frame `frame` (TCP, UDP or ICMPv6, in
/// ip6ip6 the inner packet's) is right, by etherparse's recomputation.
fn assert_checksums6(frame: &[u8]) {
    let s = SlicedPacket::from_ethernet(frame).expect("etherparse parses the output");
    let (src, dst) = match &s.net {
        Some(NetSlice::Ipv6(ip)) => (ip.header().source(), ip.header().destination()),
        _ => panic!("not IPv6"),
    };
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, t.payload())
                .unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        Some(TransportSlice::Icmpv6(i)) => {
            assert!(i.is_checksum_valid(src, dst), "ICMPv6 checksum");
        }
        _ => {}
    }
}

fn is_tx(v: Verdict) -> bool {
    matches!(v, Verdict::Tx { port: 0, .. })
}

fn tx_by_mode(p: &Pipeline) -> [u64; 3] {
    let s = p.stats();
    [Counter::TxDr, Counter::TxTun, Counter::TxNat].map(|c| s.get(c))
}

#[test]
fn dr6_rewrites_macs_and_decrements_the_hop_limit() {
    let mut p = pipeline(&director6(), 1024);
    let pkt = Pkt6::default();
    let (v, out) = run(&mut p, &pkt.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    // rr from the list head: the newest real server added (::12) first.
    let want = Pkt6 {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac6(rip(0x12)),
        hop_limit: 63,
        ..pkt.clone()
    };
    assert_eq!(out, want.bytes());
    assert_checksums6(&out);
    assert_eq!(tx_by_mode(&p), [1, 0, 0]);
    assert_eq!(p.conns6().len(), 1);
    assert_eq!(p.conns().len(), 0, "the IPv4 table is not touched");

    // The rest of the flow follows it; a new one goes to ::11.
    let ack = Pkt6 {
        tcp: Some(ACK),
        ..pkt.clone()
    };
    let (_, out) = run(&mut p, &ack.bytes(), 0);
    assert_eq!(&out[0..6], &mac6(rip(0x12)));
    let other = Pkt6 {
        sport: 40001,
        ..pkt
    };
    let (_, out) = run(&mut p, &other.bytes(), 0);
    assert_eq!(&out[0..6], &mac6(rip(0x11)));
}

#[test]
fn hop_limit_1_is_dropped_in_every_mode() {
    let mut p = pipeline(&director6(), 1024);
    for (i, (dst, hop_limit)) in [(VIP_DR6, 1), (VIP_TUN6, 1), (VIP_NAT6, 0)]
        .into_iter()
        .enumerate()
    {
        let pkt = Pkt6 {
            dst,
            hop_limit,
            sport: 41000 + i as u16,
            ..Pkt6::default()
        };
        let (v, _) = run(&mut p, &pkt.bytes(), 0);
        assert_eq!(v, Verdict::Drop(DropReason::HopLimit), "to {dst}");
    }
    assert_eq!(p.stats().dropped(DropReason::HopLimit), 3);
    // Hop limit 2 leaves with 1.
    let pkt = Pkt6 {
        hop_limit: 2,
        sport: 41100,
        ..Pkt6::default()
    };
    let (v, out) = run(&mut p, &pkt.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    assert_eq!(out[14 + 7], 1);
}

/// The ip6ip6 packet the director should send for `pkt` to `rip`.
fn tun6_expected(pkt: &Pkt6, rip: Ipv6Addr) -> Vec<u8> {
    let inner = Pkt6 {
        hop_limit: pkt.hop_limit - 1,
        ..pkt.clone()
    };
    let inner = inner.ip_bytes();
    let outer = Ipv6Header {
        traffic_class: pkt.traffic_class,
        flow_label: Ipv6FlowLabel::try_new(pkt.flow_label).unwrap(),
        payload_length: inner.len() as u16,
        next_header: IpNumber::IPV6,
        hop_limit: pkt.hop_limit - 1,
        source: SRC6.octets(),
        destination: rip.octets(),
    };
    let mut out = Pkt6 {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac6(rip),
        ..pkt.clone()
    }
    .l2();
    out.extend_from_slice(&outer.to_bytes());
    out.extend_from_slice(&inner);
    out
}

#[test]
fn tun6_is_ip6ip6_with_traffic_class_and_flow_label_carried() {
    let mut p = pipeline(&director6(), 1024);
    let pkt = Pkt6 {
        dst: VIP_TUN6,
        traffic_class: 0xb8,
        flow_label: 0xabcde,
        hop_limit: 17,
        payload: vec![0xab; 100],
        ..Pkt6::default()
    };
    let (v, out) = run(&mut p, &pkt.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    assert_eq!(out, tun6_expected(&pkt, rip(0x21)));
    // The inner packet's checksum, behind the Ethernet header.
    let inner: Vec<u8> = out[..14].iter().chain(&out[14 + 40..]).copied().collect();
    assert_checksums6(&inner);
    assert_eq!(tx_by_mode(&p), [0, 1, 0]);
    // ::22's route names no source: dropped and counted.
    let pkt = Pkt6 {
        dst: VIP_TUN6,
        sport: 40001,
        ..Pkt6::default()
    };
    let (v, _) = run(&mut p, &pkt.bytes(), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoSource));
}

#[test]
fn nat66_both_directions() {
    let mut p = pipeline(&director6(), 1024);
    let syn = Pkt6 {
        dst: VIP_NAT6,
        payload: vec![],
        ..Pkt6::default()
    };
    let (v, out) = run(&mut p, &syn.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    // rr from the list head: ::32 (added last).
    let rs = rip(0x32);
    let want = Pkt6 {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac6(rs),
        dst: rs,
        dport: 8080,
        hop_limit: 63,
        ..syn.clone()
    };
    assert_eq!(out, want.bytes());
    assert_checksums6(&out);

    // The real server's SYN-ACK, through the director back to the client.
    let synack = Pkt6 {
        src_mac: mac6(rs),
        dst_mac: DIRECTOR_MAC,
        hop_limit: 64,
        ..want.reply(Some(SYN | ACK))
    };
    let (v, out) = run(&mut p, &synack.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    let back = Pkt6 {
        src_mac: DIRECTOR_MAC,
        dst_mac: ROUTER_MAC,
        src: VIP_NAT6,
        sport: 80,
        hop_limit: 63,
        ..synack.clone()
    };
    assert_eq!(out, back.bytes());
    assert_checksums6(&out);
    assert_eq!(p.stats().get(Counter::TxReplies), 1);
    assert_eq!(tx_by_mode(&p), [0, 0, 1]);

    // Data both ways keeps flowing, to the same server.
    let data = Pkt6 {
        tcp: Some(ACK),
        payload: vec![0x5a; 333],
        ..syn
    };
    let (_, out) = run(&mut p, &data.bytes(), 1);
    assert_eq!(&out[14 + 24..14 + 40], &rs.octets());
    assert_checksums6(&out);
}

#[test]
fn nat66_udp_with_and_without_checksum() {
    let mut p = pipeline(&director6(), 1024);
    let q = Pkt6 {
        dst: VIP_NAT6,
        dport: 53,
        tcp: None,
        payload: b"\x12\x34query".to_vec(),
        ..Pkt6::default()
    };
    let (v, out) = run(&mut p, &q.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    let want = Pkt6 {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac6(rip(0x31)),
        dst: rip(0x31),
        dport: 5353,
        hop_limit: 63,
        ..q.clone()
    };
    assert_eq!(out, want.bytes());
    assert_checksums6(&out);
    // A zero checksum (invalid in IPv6) is left alone, as IPVS leaves it.
    let mut zero = Pkt6 { sport: 40001, ..q }.bytes();
    let at = 14 + 40 + 6;
    zero[at..at + 2].copy_from_slice(&[0, 0]);
    let (v, out) = run(&mut p, &zero, 0);
    assert!(is_tx(v), "{v:?}");
    assert_eq!(&out[at..at + 2], &[0, 0]);
}

#[test]
fn flows_stick_and_rr_splits_evenly() {
    let mut p = pipeline(&director6(), 1024);
    let mut seen = std::collections::HashMap::new();
    for round in 0..3 {
        for c in 0..50u16 {
            let pkt = Pkt6 {
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, c),
                sport: 1024 + c,
                tcp: Some(if round == 0 { SYN } else { ACK }),
                ..Pkt6::default()
            };
            let (v, out) = run(&mut p, &pkt.bytes(), 0);
            assert!(is_tx(v), "{v:?}");
            let mac: [u8; 6] = out[0..6].try_into().unwrap();
            assert_eq!(*seen.entry(c).or_insert(mac), mac, "flow {c} moved");
        }
    }
    let to_11 = seen.values().filter(|m| **m == mac6(rip(0x11))).count();
    assert_eq!(to_11, 25);
    assert_eq!(p.conns6().len(), 50);
}

/// Source hashing hashes the IPv6 client address (`ip_vs_sh_hashkey`
/// folds its four words): one client's connections all go to one server.
#[test]
fn sh_keeps_an_ipv6_client_on_one_server() {
    let mut t = empty_director();
    t.allow_ipv6_services();
    let vip = SocketAddr::new(VIP_DR6.into(), 80);
    t.add_service(&service(Protocol::Tcp, &vip.to_string(), "sh"))
        .unwrap();
    for n in 0x11..0x15 {
        let addr = SocketAddr::new(rip(n).into(), 80);
        t.add_dest(Protocol::Tcp, vip, &real(&addr.to_string(), Forward::Dr, 1))
            .unwrap();
        t.set_next_hop(rip(n).into(), 0, mac6(rip(n)));
    }
    let mut p = pipeline(&t, 1024);
    let mut servers = std::collections::HashSet::new();
    for c in 0..16u16 {
        let mut macs = std::collections::HashSet::new();
        for port in 0..8u16 {
            let pkt = Pkt6 {
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, c, 0, 0, 0, 1),
                sport: 2000 + port,
                ..Pkt6::default()
            };
            let (v, out) = run(&mut p, &pkt.bytes(), 0);
            assert!(is_tx(v), "{v:?}");
            macs.insert(<[u8; 6]>::try_from(&out[0..6]).unwrap());
        }
        assert_eq!(macs.len(), 1, "client {c} spread over servers");
        servers.extend(macs);
    }
    assert!(servers.len() > 1, "every client on one server");
}

#[test]
fn too_big_gets_icmpv6_packet_too_big() {
    let mut p = pipeline(&director6(), 1024);
    // 1500 bytes of IPv6 fit DR; one more does not.
    let fits = Pkt6 {
        payload: vec![0; 1500 - 40 - 20],
        ..Pkt6::default()
    };
    assert!(is_tx(run(&mut p, &fits.bytes(), 0).0));
    let big = Pkt6 {
        sport: 40001,
        payload: vec![0x55; 1500 - 40 - 20 + 1],
        ..Pkt6::default()
    };
    let input = big.bytes();
    let (v, out) = run(&mut p, &input, 0);
    assert!(is_tx(v), "{v:?}");
    let s = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("not IPv6")
    };
    assert_eq!(ip.header().source_addr(), VIP_DR6);
    assert_eq!(ip.header().destination_addr(), CLIENT6);
    let Some(TransportSlice::Icmpv6(icmp)) = &s.transport else {
        panic!("not ICMPv6")
    };
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1500 }
    );
    // As much of the packet as fits in 1280 bytes.
    assert_eq!(out.len(), 14 + 1280);
    assert_eq!(icmp.payload(), &input[14..14 + 1280 - 48]);
    assert_eq!(&out[0..6], &ROUTER_MAC, "back to the sender's MAC");
    assert_checksums6(&out);
    assert_eq!(p.stats().get(Counter::IcmpSent), 1);
    // TUN reports MTU − 40.
    let big = Pkt6 {
        dst: VIP_TUN6,
        payload: vec![0; 1500 - 40 - 20 - 39],
        ..Pkt6::default()
    };
    let (_, out) = run(&mut p, &big.bytes(), 0);
    let s = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Icmpv6(icmp)) = &s.transport else {
        panic!("not ICMPv6")
    };
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1460 }
    );
}

#[test]
fn kernel_keeps_ndp_and_strays_and_hostile_frames_are_counted() {
    let mut p = pipeline(&director6(), 1024);
    // Neighbour solicitation for the VIP: the kernel's (it must not be
    // answered by the director for a DR VIP held by real servers either:
    // that is the real servers' configuration).
    let mut ns = Pkt6::default().l2();
    let mut h = Pkt6::default().header();
    h.next_header = IpNumber::IPV6_ICMP;
    h.payload_length = 24;
    ns.extend_from_slice(&h.to_bytes());
    ns.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    ns.extend_from_slice(&VIP_DR6.octets());
    assert_eq!(run(&mut p, &ns, 0).0, Verdict::NotOurs);
    // TCP to an address that is no VIP: the kernel's.
    let stray = Pkt6 {
        dst: Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1),
        ..Pkt6::default()
    };
    assert_eq!(run(&mut p, &stray.bytes(), 0).0, Verdict::NotOurs);
    // A non-SYN to the VIP with no connection.
    let ack = Pkt6 {
        tcp: Some(ACK),
        ..Pkt6::default()
    };
    assert_eq!(
        run(&mut p, &ack.bytes(), 0).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    // A fragment to the VIP.
    let syn = Pkt6::default().bytes();
    let mut frag = syn[..14].to_vec();
    let mut h = Pkt6::default().header();
    h.next_header = IpNumber::IPV6_FRAGMENTATION_HEADER;
    h.payload_length = (8 + syn.len() - 54) as u16;
    frag.extend_from_slice(&h.to_bytes());
    frag.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 42]);
    frag.extend_from_slice(&syn[54..]);
    assert_eq!(
        run(&mut p, &frag, 0).0,
        Verdict::Drop(DropReason::Ipv6Fragment)
    );
    // A payload length past the frame: to the VIP a drop, not a panic.
    let mut long = syn.clone();
    long[18..20].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(run(&mut p, &long, 0).0, Verdict::Drop(DropReason::BadIpv6));
    // A destination-options loop longer than the walk allows.
    let mut chain = syn[..14].to_vec();
    let mut h = Pkt6::default().header();
    h.next_header = IpNumber::IPV6_DESTINATION_OPTIONS;
    h.payload_length = (9 * 8 + syn.len() - 54) as u16;
    chain.extend_from_slice(&h.to_bytes());
    for i in 0..9 {
        let next = if i == 8 { 6 } else { 60 };
        chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    chain.extend_from_slice(&syn[54..]);
    assert_eq!(run(&mut p, &chain, 0).0, Verdict::Drop(DropReason::BadIpv6));
    let before = p.stats().get(Counter::Rx);
    // Every truncation, and every single-byte corruption, of a SYN: no
    // panic, and nothing but a drop, the kernel's, or a transmission.
    for n in 0..syn.len() {
        let _ = run(&mut p, &syn[..n], 0);
    }
    for at in 12..syn.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut f = syn.clone();
            f[at] ^= x;
            let _ = run(&mut p, &f, 0);
        }
    }
    assert_eq!(
        p.stats().get(Counter::Rx) - before,
        (syn.len() + 3 * (syn.len() - 12)) as u64
    );
}

#[test]
fn ipv4_and_ipv6_services_on_one_director() {
    let mut p = pipeline(&director6(), 1024);
    let v6 = Pkt6::default();
    let v4 = Pkt::default();
    for i in 0..4u16 {
        let (v, out) = run(
            &mut p,
            &Pkt6 {
                sport: 100 + i,
                ..v6.clone()
            }
            .bytes(),
            0,
        );
        assert!(is_tx(v), "{v:?}");
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        let (v, out) = run(
            &mut p,
            &Pkt {
                sport: 100 + i,
                ..v4.clone()
            }
            .bytes(),
            0,
        );
        assert!(is_tx(v), "{v:?}");
        assert_eq!(&out[12..14], &[0x08, 0x00]);
    }
    assert_eq!((p.conns().len(), p.conns6().len()), (4, 4));
    // Both tables are reaped: after the SYN timeout nothing is left.
    let later = 1000;
    let mut freed = 0;
    for t in 1..=later {
        freed += p.expire_round(t);
    }
    assert_eq!(freed, 8);
    assert_eq!((p.conns().len(), p.conns6().len()), (0, 0));
}

/// A sender's partial checksum (`CHECKSUM_PARTIAL` over veth) is finished
/// on a port that asks for it, before NAT66 updates it; a full one is left
/// as it is.
#[test]
fn partial_checksums_are_finished_before_nat66() {
    use xdpvs::wire::partial::make_partial_v6;
    let mut p = pipeline(&director6_with(true), 1024);
    for (i, udp) in [false, true].into_iter().enumerate() {
        let pkt = Pkt6 {
            dst: VIP_NAT6,
            dport: if udp { 53 } else { 80 },
            tcp: if udp { None } else { Some(SYN) },
            sport: 45000 + i as u16,
            payload: vec![0x42; 77],
            ..Pkt6::default()
        };
        let mut f = pkt.bytes();
        let proto = if udp { 17 } else { 6 };
        assert!(make_partial_v6(&mut f[14..], 40, proto));
        let (v, out) = run(&mut p, &f, 0);
        assert!(is_tx(v), "{v:?}");
        assert_checksums6(&out);
    }
    assert_eq!(p.stats().get(Counter::CsumCompleted), 2);
    let full = Pkt6 {
        dst: VIP_NAT6,
        sport: 45100,
        ..Pkt6::default()
    };
    let (_, out) = run(&mut p, &full.bytes(), 0);
    assert_checksums6(&out);
    assert_eq!(p.stats().get(Counter::CsumCompleted), 2);
}

/// Persistence over IPv6: a client's every connection goes where its
/// template says, under rr that would otherwise alternate.
#[test]
fn ipv6_persistence_keeps_a_client_on_its_server() {
    let mut t = empty_director();
    t.allow_ipv6_services();
    let vip = SocketAddr::new(VIP_DR6.into(), 80);
    let mut cfg = service(Protocol::Tcp, &vip.to_string(), "rr");
    cfg.persistence_timeout = 300;
    t.add_service(&cfg).unwrap();
    for n in [0x11, 0x12] {
        let addr = SocketAddr::new(rip(n).into(), 80);
        t.add_dest(Protocol::Tcp, vip, &real(&addr.to_string(), Forward::Dr, 1))
            .unwrap();
        t.set_next_hop(rip(n).into(), 0, mac6(rip(n)));
    }
    let mut p = pipeline(&t, 1024);
    let mut first = std::collections::HashMap::new();
    for c in 0..4u16 {
        for port in 0..6u16 {
            let pkt = Pkt6 {
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, c),
                sport: 3000 + port,
                ..Pkt6::default()
            };
            let (v, out) = run(&mut p, &pkt.bytes(), 0);
            assert!(is_tx(v), "{v:?}");
            let mac = <[u8; 6]>::try_from(&out[0..6]).unwrap();
            assert_eq!(*first.entry(c).or_insert(mac), mac, "client {c} moved");
        }
    }
    // rr between templates: the four clients are split two and two.
    let to_11 = first.values().filter(|m| **m == mac6(rip(0x11))).count();
    assert_eq!(to_11, 2);
    // Four templates and 24 connections.
    assert_eq!(p.conns6().len(), 28);
}

/// `process_batch` in passes (prefetching for IPv4) gives what `process`
/// gives frame by frame, with IPv4 and IPv6 frames mixed in a batch.
#[test]
fn mixed_batches_match_single_processing() {
    let t = director6();
    let mut single = pipeline(&t, 1024);
    let mut batched = pipeline(&t, 1024);
    batched.set_prefetch_min(0);
    let mut frames = Vec::new();
    for i in 0..40u16 {
        let (dst6, dst4) = match i % 20 % 3 {
            0 => (VIP_DR6, VIP_DR),
            1 => (VIP_NAT6, VIP_NAT),
            _ => (VIP_TUN6, VIP_TUN),
        };
        let flags = if i < 20 { SYN } else { ACK };
        let sport = 5000 + i % 20;
        let p6 = Pkt6 {
            dst: dst6,
            sport,
            tcp: Some(flags),
            ..Pkt6::default()
        };
        frames.push(p6.bytes());
        let p4 = Pkt {
            dst: dst4,
            sport,
            l4: L4::Tcp { flags, seq: 7 },
            ..Pkt::default()
        };
        frames.push(p4.bytes());
    }
    let got = run_batched(&mut batched, &frames);
    let want: Vec<_> = frames.iter().map(|f| run(&mut single, f, 0)).collect();
    assert_eq!(got, want);
    // Every frame forwarded but those to ::22, whose route has no source.
    let bad: Vec<_> = want
        .iter()
        .filter(|(v, _)| !is_tx(*v) && *v != Verdict::Drop(DropReason::NoSource))
        .map(|(v, _)| *v)
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(batched.conns6().len(), 20);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any IPv6 frame, built from a good one to each VIP by flipping bytes,
    /// cutting it short and growing its payload length: never a panic,
    /// and a drop is always a counted one.
    #[test]
    fn hostile_ipv6_frames_never_panic(
        vip in 0usize..3,
        udp in proptest::prelude::any::<bool>(),
        flips in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..6),
        cut in 0usize..120,
        reply in proptest::prelude::any::<bool>(),
    ) {
        let mut p = pipeline(&director6(), 64);
        let dst = [VIP_DR6, VIP_TUN6, VIP_NAT6][vip];
        let pkt = Pkt6 {
            dst,
            dport: if udp { 53 } else { 80 },
            tcp: if udp { None } else { Some(SYN) },
            ..Pkt6::default()
        };
        let first = run(&mut p, &pkt.bytes(), 0);
        let mut f = if reply && vip == 2 && !first.1.is_empty() {
            // A (hostile) reply from the NAT real server.
            let mut r = first.1.clone();
            r[22..38].copy_from_slice(&first.1[38..54]);
            r[38..54].copy_from_slice(&first.1[22..38]);
            r[54..56].copy_from_slice(&first.1[56..58]);
            r[56..58].copy_from_slice(&first.1[54..56]);
            r
        } else {
            pkt.bytes()
        };
        for (at, x) in flips {
            let n = f.len();
            f[at % n] ^= x;
        }
        let n = f.len();
        f.truncate(n - cut.min(n));
        let before = p.stats().total_drops();
        let (v, _) = run(&mut p, &f, 0);
        if let Verdict::Drop(_) = v {
            proptest::prop_assert_eq!(p.stats().total_drops(), before + 1);
        }
    }
}
