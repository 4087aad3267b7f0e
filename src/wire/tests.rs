//! Tests across layers: the whole parse chain on hostile input, and
//! etherparse as an independent oracle for real packets.

use core::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    LinkExtSlice, LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement,
    TransportSlice, VlanId,
};
use proptest::prelude::*;

use super::WireError;
use super::checksum;
use super::ethernet::{self, EthernetFrame};
use super::icmp::{Icmpv4Packet, Icmpv6Packet};
use super::ipv4::{self, Ipv4Packet};
use super::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;

/// What the chain found: the deepest layer reached.
#[derive(Debug, PartialEq, Eq)]
enum Reached {
    Ethernet,
    Ip,
    L4,
}

/// Parses a frame the way the data path will, touching every getter, and
/// returns how deep it got. Must never panic.
fn parse_chain(frame: &[u8]) -> Result<Reached, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.vlan_tci(),
        eth.header_len(),
    );
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            let _ = (
                ip.version(),
                ip.tos(),
                ip.ident(),
                ip.dont_frag(),
                ip.more_frags(),
            );
            let _ = (
                ip.frag_offset(),
                ip.ttl(),
                ip.checksum(),
                ip.options().len(),
            );
            let _ = ip.verify_checksum();
            if ip.is_fragment() && ip.frag_offset() != 0 {
                return Ok(Reached::Ip);
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            match ip.protocol() {
                PROTO_TCP => {
                    let t = TcpPacket::new_checked(ip.payload())?;
                    touch_tcp(&t);
                    let _ = t.verify_checksum_v4(src, dst);
                }
                PROTO_UDP => {
                    let u = UdpPacket::new_checked(ip.payload())?;
                    touch_udp(&u);
                    let _ = u.verify_checksum_v4(src, dst);
                }
                PROTO_ICMP => {
                    let i = Icmpv4Packet::new_checked(ip.payload())?;
                    let _ = (i.msg_type(), i.code(), i.checksum(), i.rest_of_header());
                    let _ = (i.next_hop_mtu(), i.verify_checksum());
                    if i.is_error() {
                        // The quoted datagram: header and 8 bytes of L4.
                        let inner = Ipv4Packet::new_checked(i.payload())?;
                        let _ = (inner.src_addr(), inner.dst_addr(), inner.payload().len());
                    }
                }
                _ => return Ok(Reached::Ip),
            }
            Ok(Reached::L4)
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            let _ = (
                ip.version(),
                ip.traffic_class(),
                ip.flow_label(),
                ip.hop_limit(),
            );
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let upper = ip.upper_layer()?;
            // The walk's offset is from the IPv6 header; L4 ends with the
            // payload.
            let l4 = &eth.payload()[upper.offset..ipv6::HEADER_LEN + usize::from(ip.payload_len())];
            match upper.protocol {
                PROTO_TCP => {
                    let t = TcpPacket::new_checked(l4)?;
                    touch_tcp(&t);
                    let _ = t.verify_checksum_v6(&src, &dst);
                }
                PROTO_UDP => {
                    let u = UdpPacket::new_checked(l4)?;
                    touch_udp(&u);
                    let _ = u.verify_checksum_v6(&src, &dst);
                }
                ipv6::PROTO_ICMPV6 => {
                    let i = Icmpv6Packet::new_checked(l4)?;
                    let _ = (
                        i.msg_type(),
                        i.code(),
                        i.mtu(),
                        i.is_error(),
                        i.payload().len(),
                    );
                    let _ = i.verify_checksum(&src, &dst);
                }
                _ => return Ok(Reached::Ip),
            }
            Ok(Reached::L4)
        }
        _ => Ok(Reached::Ethernet),
    }
}

fn touch_tcp(t: &TcpPacket<&[u8]>) {
    let _ = (
        t.src_port(),
        t.dst_port(),
        t.seq_number(),
        t.ack_number(),
        t.flags(),
    );
    let _ = (
        t.fin(),
        t.syn(),
        t.rst(),
        t.psh(),
        t.ack(),
        t.window(),
        t.checksum(),
    );
    let _ = (t.urgent(), t.options().len(), t.payload().len());
}

fn touch_udp(u: &UdpPacket<&[u8]>) {
    let _ = (
        u.src_port(),
        u.dst_port(),
        u.len(),
        u.checksum(),
        u.payload().len(),
    );
}

#[derive(Debug, Clone, Copy)]
enum L4 {
    Tcp,
    Udp,
}

#[derive(Debug, Clone)]
struct Spec {
    vlan: Option<u16>,
    v6: bool,
    l4: L4,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    hop: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    win: u16,
    mss: Option<u16>,
    payload: Vec<u8>,
}

const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// Serialises `spec` with etherparse's builder.
fn build(spec: &Spec) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_SRC, MAC_DST);
    let ip = match (spec.vlan, spec.v6) {
        (None, false) => eth.ipv4(spec.src4, spec.dst4, spec.hop),
        (None, true) => eth.ipv6(spec.src6, spec.dst6, spec.hop),
        (Some(id), false) => eth
            .single_vlan(VlanId::try_new(id).unwrap())
            .ipv4(spec.src4, spec.dst4, spec.hop),
        (Some(id), true) => eth
            .single_vlan(VlanId::try_new(id).unwrap())
            .ipv6(spec.src6, spec.dst6, spec.hop),
    };
    let mut out = Vec::new();
    match spec.l4 {
        L4::Tcp => {
            let mut tcp = ip.tcp(spec.sport, spec.dport, spec.seq, spec.win);
            if let Some(a) = spec.ack {
                tcp = tcp.ack(a);
            } else {
                tcp = tcp.syn();
            }
            if let Some(mss) = spec.mss {
                tcp = tcp
                    .options(&[
                        TcpOptionElement::MaximumSegmentSize(mss),
                        TcpOptionElement::Noop,
                        TcpOptionElement::WindowScale(7),
                    ])
                    .unwrap();
            }
            tcp.write(&mut out, &spec.payload).unwrap();
        }
        L4::Udp => ip
            .udp(spec.sport, spec.dport)
            .write(&mut out, &spec.payload)
            .unwrap(),
    }
    out
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            proptest::option::of(0u16..4096),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
        ),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
        ),
        (any::<u16>(), proptest::option::of(any::<u16>())),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(
                (vlan, v6, tcp),
                (src4, dst4, src6, dst6, hop),
                (sport, dport, seq, ack),
                (win, mss),
                payload,
            )| Spec {
                vlan,
                v6,
                l4: if tcp { L4::Tcp } else { L4::Udp },
                src4,
                dst4,
                src6,
                dst6,
                hop,
                sport,
                dport,
                seq,
                ack,
                win,
                mss,
                payload,
            },
        )
}

/// Splits a built frame into its L3 and L4 bytes with our views.
fn l3_l4(frame: &[u8]) -> (&[u8], &[u8]) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let l3 = &frame[eth.header_len()..];
    let l4 = if eth.ethertype() == ethernet::ETHERTYPE_IPV4 {
        let ip = Ipv4Packet::new_checked(l3).unwrap();
        &l3[ip.header_len()..usize::from(ip.total_len())]
    } else {
        let ip = Ipv6Packet::new_checked(l3).unwrap();
        &l3[ip.upper_layer().unwrap().offset..]
    };
    (l3, l4)
}

/// Compares every field our views read with etherparse's slicing, and both
/// libraries' checksum verdicts.
fn compare_with_etherparse(frame: &[u8], spec: &Spec) {
    let theirs = SlicedPacket::from_ethernet(frame).unwrap();
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let (l3, l4) = l3_l4(frame);
    assert_eq!(parse_chain(frame), Ok(Reached::L4));

    let Some(LinkSlice::Ethernet2(e)) = &theirs.link else {
        panic!("no ethernet")
    };
    assert_eq!(eth.dst_addr(), e.destination());
    assert_eq!(eth.src_addr(), e.source());
    match theirs.link_exts.first() {
        Some(LinkExtSlice::Vlan(v)) => {
            let tci = eth.vlan_tci().unwrap();
            assert_eq!(tci & 0x0fff, v.vlan_identifier().value());
            assert_eq!((tci >> 13) as u8, v.priority_code_point().value());
            assert_eq!(eth.ethertype(), v.ether_type().0);
            assert_eq!(eth.header_len(), ethernet::VLAN_HEADER_LEN);
            assert_eq!(Some(tci & 0x0fff), spec.vlan);
        }
        None => {
            assert_eq!(eth.vlan_tci(), None);
            assert_eq!(eth.ethertype(), e.ether_type().0);
            assert_eq!(eth.header_len(), ethernet::HEADER_LEN);
            assert!(spec.vlan.is_none());
        }
        Some(other) => panic!("unexpected {other:?}"),
    }

    let (tcp_ok, udp_ok) = match theirs.net.as_ref().unwrap() {
        NetSlice::Ipv4(s) => {
            let h = s.header();
            let ip = Ipv4Packet::new_checked(l3).unwrap();
            assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV4);
            assert_eq!(ip.version(), h.version());
            assert_eq!(ip.header_len(), usize::from(h.ihl()) * 4);
            assert_eq!(ip.tos(), (h.dcp().value() << 2) | h.ecn().value());
            assert_eq!(ip.total_len(), h.total_len());
            assert_eq!(ip.ident(), h.identification());
            assert_eq!(ip.dont_frag(), h.dont_fragment());
            assert_eq!(ip.more_frags(), h.more_fragments());
            assert_eq!(ip.frag_offset(), h.fragments_offset().value());
            assert_eq!(ip.ttl(), h.ttl());
            assert_eq!(ip.protocol(), h.protocol().0);
            assert_eq!(ip.checksum(), h.header_checksum());
            assert_eq!(ip.src_addr(), h.source_addr());
            assert_eq!(ip.dst_addr(), h.destination_addr());
            assert_eq!(ip.options(), h.options());
            assert_eq!(ip.payload(), s.payload().payload);
            assert!(ip.verify_checksum());
            assert_eq!(h.to_header().calc_header_checksum(), ip.checksum());
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let tcp = |t: &TcpPacket<&[u8]>| t.verify_checksum_v4(src, dst);
            let udp = |u: &UdpPacket<&[u8]>| u.verify_checksum_v4(src, dst);
            (
                TcpPacket::new_checked(l4).map(|t| tcp(&t)),
                UdpPacket::new_checked(l4).map(|u| udp(&u)),
            )
        }
        NetSlice::Ipv6(s) => {
            let h = s.header();
            let ip = Ipv6Packet::new_checked(l3).unwrap();
            assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_IPV6);
            assert_eq!(ip.version(), h.version());
            assert_eq!(ip.traffic_class(), h.traffic_class());
            assert_eq!(ip.flow_label(), h.flow_label().value());
            assert_eq!(ip.payload_len(), h.payload_length());
            assert_eq!(ip.next_header(), h.next_header().0);
            assert_eq!(ip.hop_limit(), h.hop_limit());
            assert_eq!(ip.src_addr(), h.source_addr());
            assert_eq!(ip.dst_addr(), h.destination_addr());
            let upper = ip.upper_layer().unwrap();
            assert_eq!(upper.protocol, s.payload().ip_number.0);
            assert!(!upper.fragment);
            assert_eq!(&l3[upper.offset..], s.payload().payload);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let tcp = |t: &TcpPacket<&[u8]>| t.verify_checksum_v6(&src, &dst);
            let udp = |u: &UdpPacket<&[u8]>| u.verify_checksum_v6(&src, &dst);
            (
                TcpPacket::new_checked(l4).map(|t| tcp(&t)),
                UdpPacket::new_checked(l4).map(|u| udp(&u)),
            )
        }
        other => panic!("unexpected {other:?}"),
    };

    let (src4, dst4) = (spec.src4, spec.dst4);
    match theirs.transport.as_ref().unwrap() {
        TransportSlice::Tcp(s) => {
            let t = TcpPacket::new_checked(l4).unwrap();
            assert_eq!(t.src_port(), s.source_port());
            assert_eq!(t.dst_port(), s.destination_port());
            assert_eq!(t.seq_number(), s.sequence_number());
            assert_eq!(t.ack_number(), s.acknowledgment_number());
            assert_eq!(t.header_len(), usize::from(s.data_offset()) * 4);
            assert_eq!(
                (t.fin(), t.syn(), t.rst(), t.psh(), t.ack()),
                (s.fin(), s.syn(), s.rst(), s.psh(), s.ack())
            );
            assert_eq!(t.flags() & super::tcp::URG != 0, s.urg());
            assert_eq!(t.window(), s.window_size());
            assert_eq!(t.checksum(), s.checksum());
            assert_eq!(t.urgent(), s.urgent_pointer());
            assert_eq!(t.options(), s.options());
            assert_eq!(t.payload(), s.payload());
            assert_eq!(t.payload(), &spec.payload[..]);
            assert_eq!(tcp_ok, Ok(true));
            let theirs = if spec.v6 {
                s.calc_checksum_ipv6(spec.src6, spec.dst6).unwrap()
            } else {
                s.calc_checksum_ipv4(src4, dst4).unwrap()
            };
            assert_eq!(theirs, t.checksum());
        }
        TransportSlice::Udp(s) => {
            let u = UdpPacket::new_checked(l4).unwrap();
            assert_eq!(u.src_port(), s.source_port());
            assert_eq!(u.dst_port(), s.destination_port());
            assert_eq!(u.len(), s.length());
            assert_eq!(u.checksum(), s.checksum());
            assert_eq!(u.payload(), s.payload());
            assert_eq!(u.payload(), &spec.payload[..]);
            assert_eq!(udp_ok, Ok(true));
            let h = s.to_header();
            let theirs = if spec.v6 {
                h.calc_checksum_ipv6_raw(spec.src6, spec.dst6, s.payload())
                    .unwrap()
            } else {
                h.calc_checksum_ipv4_raw(src4, dst4, s.payload()).unwrap()
            };
            assert_eq!(theirs, u.checksum());
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The NAT rewrite the data path will do: new destination address and
/// port, every checksum patched incrementally. The address is under the L4
/// checksum through the pseudo-header.
fn rewrite_dnat(frame: &[u8], new4: Ipv4Addr, new6: &Ipv6Addr, new_port: u16) -> Vec<u8> {
    let mut frame = frame.to_vec();
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).unwrap();
    let v4 = eth.ethertype() == ethernet::ETHERTYPE_IPV4;
    let l3 = eth.payload_mut();
    let (mut old_addr, mut new_addr) = ([0u8; 16], [0u8; 16]);
    let (l4, protocol, addr_len) = if v4 {
        let mut ip = Ipv4Packet::new_checked(&mut *l3).unwrap();
        let old = ip.dst_addr();
        old_addr[..4].copy_from_slice(&old.octets());
        new_addr[..4].copy_from_slice(&new4.octets());
        let c = checksum::update32(ip.checksum(), old.to_bits(), new4.to_bits());
        ip.set_dst_addr(new4);
        ip.set_checksum(c);
        (
            ip.header_len()..usize::from(ip.total_len()),
            ip.protocol(),
            4,
        )
    } else {
        let mut ip = Ipv6Packet::new_checked(&mut *l3).unwrap();
        old_addr = ip.dst_addr().octets();
        new_addr = new6.octets();
        ip.set_dst_addr(new6);
        let upper = ip.upper_layer().unwrap();
        let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        (upper.offset..end, upper.protocol, 16)
    };
    let (old_addr, new_addr) = (&old_addr[..addr_len], &new_addr[..addr_len]);
    let l4 = &mut l3[l4];
    match protocol {
        PROTO_TCP => {
            let mut t = TcpPacket::new_checked(l4).unwrap();
            let c = checksum::update16(t.checksum(), t.dst_port(), new_port);
            t.set_checksum(checksum::update_bytes(c, old_addr, new_addr));
            t.set_dst_port(new_port);
        }
        PROTO_UDP => {
            let mut u = UdpPacket::new_checked(l4).unwrap();
            // IPv4 checksum 0 = none: leave it so.
            if u.checksum() != 0 {
                let c = checksum::update16(u.checksum(), u.dst_port(), new_port);
                let c = checksum::update_bytes(c, old_addr, new_addr);
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
            u.set_dst_port(new_port);
        }
        other => panic!("unexpected protocol {other}"),
    }
    frame
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn etherparse_agrees(spec in spec()) {
        let frame = build(&spec);
        compare_with_etherparse(&frame, &spec);
    }

    #[test]
    fn every_truncation_is_handled(spec in spec()) {
        let frame = build(&spec);
        for len in 0..frame.len() {
            // Any answer is fine as long as there is one; a cut inside the
            // L3 packet must be refused.
            let got = parse_chain(&frame[..len]);
            let eth_len = if spec.vlan.is_some() { 18 } else { 14 };
            if len < eth_len {
                prop_assert_eq!(got, Err(WireError::Truncated));
            } else if len < frame.len() {
                prop_assert!(got.is_err(), "accepted a frame cut at {}: {:?}", len, got);
            }
        }
        prop_assert_eq!(parse_chain(&frame), Ok(Reached::L4));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_chain(&bytes);
    }

    /// Random bytes behind a plausible prefix, so the fuzzing gets past the
    /// version checks into the L4 views and the IPv6 walk.
    #[test]
    fn random_bodies_never_panic(
        vlan in any::<bool>(),
        v6 in any::<bool>(),
        first in any::<u8>(),
        proto in prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(0), Just(43), Just(44), Just(51), Just(60), any::<u8>()],
        len_hint in any::<u16>(),
        mut body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = vec![0u8; 12];
        if vlan {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        if v6 {
            frame.extend_from_slice(&[0x86, 0xdd]);
            body.resize(body.len().max(40), 0);
            body[0] = 0x60 | (first & 0x0f);
            let len = (len_hint as usize) % body.len().saturating_sub(39).max(1);
            body[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            body[6] = proto;
        } else {
            frame.extend_from_slice(&[0x08, 0x00]);
            body.resize(body.len().max(20), 0);
            body[0] = 0x40 | (first & 0x0f);
            let len = 20 + (len_hint as usize) % (body.len() - 19);
            body[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            body[6] = 0;
            body[9] = proto;
        }
        frame.extend_from_slice(&body);
        let _ = parse_chain(&frame);
    }

    /// Incremental NAT gives byte-for-byte the packet etherparse builds
    /// from scratch with the new destination.
    #[test]
    fn incremental_nat_equals_rebuild(spec in spec(), new4 in any::<[u8; 4]>(), new6 in any::<[u8; 16]>(), port in any::<u16>()) {
        let frame = build(&spec);
        let (new4, new6) = (Ipv4Addr::from(new4), Ipv6Addr::from(new6));
        let out = rewrite_dnat(&frame, new4, &new6, port);
        let want = Spec { dst4: new4.octets(), dst6: new6.octets(), dport: port, ..spec };
        prop_assert_eq!(&out, &build(&want));
        compare_with_etherparse(&out, &want);
    }
}

#[test]
fn error_display() {
    assert_eq!(WireError::BadDataOffset.to_string(), "bad TCP data offset");
    let e: Box<dyn std::error::Error> = Box::new(WireError::Truncated);
    assert_eq!(e.to_string(), "truncated packet");
}

/// A hand-built frame per kind through the chain, and the specific error
/// for each broken length field, seen from the top of the stack.
#[test]
fn chain_errors() {
    let spec = Spec {
        vlan: Some(7),
        v6: false,
        l4: L4::Tcp,
        src4: [10, 0, 0, 1],
        dst4: [10, 0, 0, 2],
        src6: [0; 16],
        dst6: [0; 16],
        hop: 64,
        sport: 40000,
        dport: 443,
        seq: 1,
        ack: Some(2),
        win: 1000,
        mss: Some(1460),
        payload: b"GET /".to_vec(),
    };
    let frame = build(&spec);
    let ip_at = ethernet::VLAN_HEADER_LEN;
    let l4_at = ip_at + ipv4::MIN_HEADER_LEN;
    assert_eq!(parse_chain(&frame), Ok(Reached::L4));
    let broken = |at: usize, v: u8| {
        let mut f = frame.clone();
        f[at] = v;
        parse_chain(&f)
    };
    assert_eq!(broken(ip_at, 0x65), Err(WireError::BadVersion));
    assert_eq!(broken(ip_at, 0x44), Err(WireError::BadHeaderLen));
    assert_eq!(broken(ip_at + 3, 0x10), Err(WireError::BadTotalLen));
    assert_eq!(broken(ip_at + 3, 0xff), Err(WireError::BadTotalLen));
    assert_eq!(broken(l4_at + 12, 0x40), Err(WireError::BadDataOffset));
    assert_eq!(broken(l4_at + 12, 0xf0), Err(WireError::BadDataOffset));
    let mut stacked = frame.clone();
    stacked[16..18].copy_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
    assert_eq!(parse_chain(&stacked), Err(WireError::Unsupported));

    let udp = build(&Spec {
        l4: L4::Udp,
        v6: true,
        ..spec
    });
    let l4_at = ip_at + ipv6::HEADER_LEN;
    assert_eq!(parse_chain(&udp), Ok(Reached::L4));
    let mut f = udp.clone();
    f[l4_at + 4..l4_at + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(parse_chain(&f), Err(WireError::BadLength));
    f[l4_at + 4..l4_at + 6].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(parse_chain(&f), Err(WireError::BadLength));
    f[l4_at + 4..l4_at + 6].copy_from_slice(&(udp.len() as u16).to_be_bytes());
    assert_eq!(parse_chain(&f), Err(WireError::BadLength));
    let mut f = udp.clone();
    f[ip_at] = 0x40;
    assert_eq!(parse_chain(&f), Err(WireError::BadVersion));
    f[ip_at] = 0x60;
    f[ip_at + 4] = 0xff;
    assert_eq!(parse_chain(&f), Err(WireError::BadTotalLen));
}
