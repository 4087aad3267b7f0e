//! The packet pipeline end to end, without a network: frames built with
//! etherparse go through `Pipeline::process`, and what comes out is
//! compared field by field (as bytes) with what etherparse builds for the
//! expected packet, every checksum recomputed in full by etherparse.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;
use etherparse::{Icmpv4Type, InternetSlice, SlicedPacket, TransportSlice};
use xdpvs::config::{Forward, Protocol};
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::stats::Counter;

/// Frames forwarded to real servers by DR, TUN and NAT.
fn tx_by_mode(p: &Pipeline) -> [u64; 3] {
    let s = p.stats();
    [Counter::TxDr, Counter::TxTun, Counter::TxNat].map(|c| s.get(c))
}

fn is_tx(v: Verdict) -> bool {
    matches!(v, Verdict::Tx { port: 0, .. })
}

/// Every checksum in `frame` (Ethernet + IPv4 [+ IPIP inner] + TCP/UDP/ICMP)
/// is right, by etherparse's full recomputation.
fn assert_checksums(frame: &[u8]) {
    let s = SlicedPacket::from_ethernet(frame).expect("etherparse parses the output");
    let Some(InternetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let sum = xdpvs::wire::checksum::checksum(i.slice());
            assert_eq!(sum, 0, "ICMP checksum");
        }
        _ => {}
    }
}

#[test]
fn dr_rewrites_only_macs() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        l4: L4::Tcp { flags: SYN, seq: 7 },
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &pkt.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    // rr from the list head: the newest real server added (.11) first.
    let expected = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac_of(Ipv4Addr::new(198, 18, 2, 11)),
        ..pkt.clone()
    };
    assert_eq!(out, expected.bytes());
    assert_checksums(&out);
    assert_eq!(tx_by_mode(&p), [1, 0, 0]);
}

#[test]
fn dr_keeps_a_vlan_tag() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        vlan: Some(0x2064),
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &pkt.bytes(), 0);
    assert!(is_tx(v));
    let expected = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac_of(Ipv4Addr::new(198, 18, 2, 11)),
        ..pkt
    };
    assert_eq!(out, expected.bytes());
}

fn tun_expected(pkt: &Pkt, rip: Ipv4Addr, ident: u16) -> Vec<u8> {
    let inner = pkt.ip_bytes();
    let mut outer = etherparse::Ipv4Header::new(
        inner.len() as u16,
        pkt.ttl,
        etherparse::IpNumber::IPV4,
        TUNNEL_SRC.octets(),
        rip.octets(),
    )
    .unwrap();
    outer.dscp = etherparse::IpDscp::try_new(pkt.dscp).unwrap();
    outer.ecn = etherparse::IpEcn::try_new(pkt.ecn).unwrap();
    outer.dont_fragment = pkt.df;
    outer.identification = ident;
    outer.header_checksum = outer.calc_header_checksum();
    let mut out = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac_of(rip),
        ..pkt.clone()
    }
    .l2(0x0800);
    out.extend_from_slice(&outer.to_bytes());
    out.extend_from_slice(&inner);
    out
}

#[test]
fn tun_encapsulates_with_tos_ttl_and_df_carried() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    for (i, (df, dscp)) in [(true, 46), (false, 0)].into_iter().enumerate() {
        let pkt = Pkt {
            dst: VIP_TUN,
            sport: 40000 + i as u16,
            df,
            dscp,
            payload: vec![0xab; 100],
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &pkt.bytes(), 0);
        assert!(is_tx(v), "{v:?}");
        let rip = [Ipv4Addr::new(198, 18, 2, 21), Ipv4Addr::new(198, 18, 2, 22)][i];
        assert_eq!(out, tun_expected(&pkt, rip, i as u16 + 1));
        assert_checksums(&out);
    }
    assert_eq!(tx_by_mode(&p), [0, 2, 0]);
}

/// A director whose TUN service VIP_TUN:80 (rr → .22, .21, .23 in list
/// order) has no configured `tunnel_source` unless `tunnel_source` says so;
/// the route to .21 has source `src21`, the one to .22 `src22`, .23 none.
fn tun_director(tunnel_source: Option<Ipv4Addr>, src21: Ipv4Addr, src22: Ipv4Addr) -> Pipeline {
    let mut t = xdpvs::service::ServiceTable::new(
        vec![xdpvs::service::Port {
            mac: DIRECTOR_MAC,
            mtu: MTU,
            complete_checksums: false,
        }],
        tunnel_source,
        xdpvs::conn::Timeouts::default(),
    );
    let vip = "198.18.1.2:80".parse().unwrap();
    t.add_service(&service(Protocol::Tcp, "198.18.1.2:80", "rr"))
        .unwrap();
    for (rip, src) in [(23, None), (21, Some(src21)), (22, Some(src22))] {
        let r = real(&format!("198.18.2.{rip}:80"), Forward::Tun, 1);
        t.add_dest(Protocol::Tcp, vip, &r).unwrap();
        let ip = Ipv4Addr::new(198, 18, 2, rip);
        t.set_next_hop(ip.into(), 0, mac_of(ip));
        assert_eq!(t.set_source(ip.into(), src), src.is_some());
    }
    pipeline(&t, 1024)
}

/// The outer source IPVS's `__ip_vs_get_out_rt` gives: the route's, per
/// real server, without any configured key.
#[test]
fn tun_takes_each_real_servers_route_source() {
    let (src21, src22) = (Ipv4Addr::new(198, 18, 2, 2), Ipv4Addr::new(198, 18, 3, 2));
    let mut p = tun_director(None, src21, src22);
    let rip = |n| Ipv4Addr::new(198, 18, 2, n);
    // rr from the list head: .22 (newest), .21, then .23.
    for (i, (n, src)) in [(22, src22), (21, src21)].into_iter().enumerate() {
        let pkt = Pkt {
            dst: VIP_TUN,
            sport: 41000 + i as u16,
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &pkt.bytes(), 0);
        assert!(is_tx(v), "{v:?}");
        let mut want = tun_expected(&pkt, rip(n), i as u16 + 1);
        // tun_expected builds the outer header from TUNNEL_SRC: put this
        // route's source in, and fix the header checksum.
        want[26..30].copy_from_slice(&src.octets());
        want[24..26].copy_from_slice(&[0, 0]);
        let c = xdpvs::wire::checksum::checksum(&want[14..34]);
        want[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(out, want, "to .{n}");
        assert_checksums(&out);
    }
    // .23's route names no source: dropped and counted, not sent.
    let pkt = Pkt {
        dst: VIP_TUN,
        sport: 41002,
        ..Pkt::default()
    };
    let (v, _) = run(&mut p, &pkt.bytes(), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoSource));
    assert_eq!(p.stats().dropped(DropReason::NoSource), 1);
    assert_eq!(tx_by_mode(&p), [0, 2, 0]);
}

/// `dataplane.tunnel_source` overrides every route's source, and covers a
/// real server whose route has none.
#[test]
fn tunnel_source_overrides_the_route_source() {
    let mut p = tun_director(
        Some(TUNNEL_SRC),
        Ipv4Addr::new(198, 18, 3, 1),
        Ipv4Addr::new(198, 18, 3, 2),
    );
    for (i, n) in [22, 21, 23].into_iter().enumerate() {
        let pkt = Pkt {
            dst: VIP_TUN,
            sport: 42000 + i as u16,
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &pkt.bytes(), 0);
        assert!(is_tx(v), "{v:?}");
        let rip = Ipv4Addr::new(198, 18, 2, n);
        assert_eq!(out, tun_expected(&pkt, rip, i as u16 + 1));
    }
    assert_eq!(p.stats().dropped(DropReason::NoSource), 0);
}

#[test]
fn tun_with_vlan_and_without_headroom() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        dst: VIP_TUN,
        vlan: Some(7),
        ..Pkt::default()
    };
    // A frame at the very start of its buffer: the pipeline moves it back
    // into the tailroom.
    let bytes = pkt.bytes();
    let mut buf = vec![0u8; 2048];
    buf[..bytes.len()].copy_from_slice(&bytes);
    let mut f = xdpvs::frame::Frame::new(&mut buf, 0, bytes.len(), 0);
    let v = p.process(&mut f, 0);
    assert!(is_tx(v));
    assert_eq!(
        f.data(),
        &tun_expected(&pkt, Ipv4Addr::new(198, 18, 2, 21), 1)[..]
    );
    // No room at all: dropped and counted.
    let mut tight = bytes.clone();
    let n = tight.len();
    let mut f = xdpvs::frame::Frame::new(&mut tight, 0, n, 0);
    let v = p.process(&mut f, 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoHeadroom));
}

/// `out` is ICMP "fragmentation needed" from `from.0` to `from.1`, naming
/// `mtu` and quoting `quote` (the original IP header and 8 bytes).
fn assert_frag_needed(out: &[u8], from: (Ipv4Addr, Ipv4Addr), mtu: u16, quote: &[u8]) {
    let s = SlicedPacket::from_ethernet(out).unwrap();
    let Some(InternetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source_addr(), from.0);
    assert_eq!(ip.header().destination_addr(), from.1);
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu }
        )
    );
    assert_eq!(icmp.payload(), quote, "the quote");
}

#[test]
fn tun_too_big_with_df_gets_icmp_frag_needed() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let pkt = Pkt {
        dst: VIP_TUN,
        payload: vec![0x55; 1500 - 40],
        ..Pkt::default()
    };
    let input = pkt.bytes();
    let (v, out) = run(&mut p, &input, 0);
    assert!(is_tx(v), "{v:?}");
    // The quote: the original IP header and 8 bytes of TCP.
    assert_frag_needed(&out, (VIP_TUN, CLIENT), 1480, &input[14..14 + 28]);
    assert_eq!(&out[0..6], &ROUTER_MAC, "back to the sender's MAC");
    assert_checksums(&out);
    assert_eq!(p.stats().get(Counter::IcmpSent), 1);

    let no_df = Pkt {
        df: false,
        sport: 2,
        ..pkt
    };
    let (v, _) = run(&mut p, &no_df.bytes(), 0);
    assert_eq!(v, Verdict::Drop(DropReason::TooBig));
    // Exactly at the limit: 1480 bytes of IP packet fit.
    let fits = Pkt {
        dst: VIP_TUN,
        sport: 3,
        payload: vec![0; 1480 - 40],
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &fits.bytes(), 0).0));
}

#[test]
fn nat_both_directions() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    let syn = Pkt {
        dst: VIP_NAT,
        options: vec![0x94, 0x04, 0, 0], // Router Alert: IHL 6
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &syn.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    let want = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: mac_of(rs),
        dst: rs,
        dport: 8080,
        ..syn.clone()
    };
    assert_eq!(out, want.bytes());
    assert_checksums(&out);

    // The real server answers the client; the director puts the VIP back.
    let synack = Pkt {
        src_mac: mac_of(rs),
        dst_mac: DIRECTOR_MAC,
        src: rs,
        sport: 8080,
        dst: CLIENT,
        dport: 40000,
        ttl: 64,
        l4: L4::Tcp {
            flags: SYN | ACK,
            seq: 5000,
        },
        payload: b"hello".to_vec(),
        ..Pkt::default()
    };
    let (v, out) = run(&mut p, &synack.bytes(), 0);
    assert!(is_tx(v), "{v:?}");
    let want = Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: ROUTER_MAC,
        src: VIP_NAT,
        sport: 80,
        ttl: 63,
        ..synack
    };
    assert_eq!(out, want.bytes());
    assert_checksums(&out);
    assert_eq!(tx_by_mode(&p), [0, 0, 1]);
    assert_eq!(p.stats().get(Counter::TxReplies), 1);
}

#[test]
fn nat_udp_with_and_without_checksum() {
    let t = director();
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
        let (v, out) = run(&mut p, &q.bytes(), 0);
        assert!(is_tx(v), "{v:?}");
        let want = Pkt {
            src_mac: DIRECTOR_MAC,
            dst_mac: mac_of(rs),
            dst: rs,
            dport: 5353,
            ..q.clone()
        };
        assert_eq!(out, want.bytes());
        assert_checksums(&out);
        let reply = Pkt {
            src_mac: mac_of(rs),
            src: rs,
            sport: 5353,
            dst: CLIENT,
            dport: q.sport,
            l4: L4::Udp { checksum },
            payload: b"answer".to_vec(),
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &reply.bytes(), 1);
        assert!(is_tx(v), "{v:?}");
        let want = Pkt {
            src_mac: DIRECTOR_MAC,
            dst_mac: ROUTER_MAC,
            src: VIP_NAT,
            sport: 53,
            ttl: reply.ttl - 1,
            ..reply
        };
        assert_eq!(out, want.bytes());
    }
}

/// `frame` (untagged Ethernet + IPv4) cut into fragments of `chunk` bytes
/// of IP payload (a multiple of 8), as the sender's kernel fragments it.
fn fragments(frame: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let (header, payload) = ip.split_at(20);
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|k| {
            let part = &payload[k * chunk..((k + 1) * chunk).min(payload.len())];
            let mut h = header.to_vec();
            h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
            let mf = if k + 1 < n { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&(mf | (k * chunk / 8) as u16).to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let c = xdpvs::wire::checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            [eth, &h, part].concat()
        })
        .collect()
}

/// A UDP reply bigger than the MTU comes from a NAT real server in
/// fragments: the first is translated as a reply and teaches the worker
/// the translation, the later ones get the VIP as source too — each one
/// exactly the fragment of the translated datagram. Nothing leaves with
/// the real server's address.
#[test]
fn nat_reply_fragments_are_translated() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    let q = Pkt {
        dst: VIP_NAT,
        dport: 53,
        sport: 5100,
        l4: L4::Udp { checksum: true },
        payload: b"query".to_vec(),
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &q.bytes(), 0).0));
    let reply = |id: u16| Pkt {
        src_mac: mac_of(rs),
        src: rs,
        sport: 5353,
        dst: CLIENT,
        dport: q.sport,
        df: false,
        id,
        l4: L4::Udp { checksum: true },
        payload: (0..3000u32).map(|i| (i * 7) as u8).collect(),
        ..Pkt::default()
    };
    let translated = |r: &Pkt| Pkt {
        src_mac: DIRECTOR_MAC,
        dst_mac: ROUTER_MAC,
        src: VIP_NAT,
        sport: 53,
        ttl: r.ttl - 1,
        ..r.clone()
    };
    let r = reply(0x4242);
    let frags = fragments(&r.bytes(), 1480);
    let want = fragments(&translated(&r).bytes(), 1480);
    assert_eq!(frags.len(), 3);
    for (k, (f, w)) in frags.iter().zip(&want).enumerate() {
        let (v, out) = run(&mut p, f, 1);
        assert!(is_tx(v), "fragment {k}: {v:?}");
        assert_eq!(&out, w, "fragment {k}");
    }
    // The last fragment freed the translation: a copy of a middle one is
    // not forwarded.
    let (v, _) = run(&mut p, &frags[1], 1);
    assert_eq!(v, Verdict::Drop(DropReason::FragmentUntracked));
    assert_eq!(p.stats().get(Counter::TxReplies), 3);

    // Out of order: a later fragment before the first is dropped and
    // counted; the first and the rest still go, translated.
    let r = reply(0x4343);
    let frags = fragments(&r.bytes(), 1480);
    let want = fragments(&translated(&r).bytes(), 1480);
    let (v, _) = run(&mut p, &frags[2], 1);
    assert_eq!(v, Verdict::Drop(DropReason::FragmentUntracked));
    for k in [0, 1] {
        let (v, out) = run(&mut p, &frags[k], 1);
        assert!(is_tx(v), "fragment {k}: {v:?}");
        assert_eq!(out, want[k], "fragment {k}");
    }
    assert_eq!(p.stats().dropped(DropReason::FragmentUntracked), 2);

    // No connection (another client port): the first fragment and the
    // rest are dropped, none forwarded.
    let stray = Pkt {
        dport: 6000,
        ..reply(0x4444)
    };
    let verdicts: Vec<Verdict> = fragments(&stray.bytes(), 1480)
        .iter()
        .map(|f| run(&mut p, f, 1).0)
        .collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Drop(DropReason::Fragment),
            Verdict::Drop(DropReason::FragmentUntracked),
            Verdict::Drop(DropReason::FragmentUntracked)
        ]
    );
    // A translation lasts FRAG_TIMEOUT seconds.
    let r = reply(0x4545);
    let frags = fragments(&r.bytes(), 1480);
    assert!(is_tx(run(&mut p, &frags[0], 1).0));
    let late = 1 + xdpvs::pipeline::FRAG_TIMEOUT;
    assert_eq!(
        run(&mut p, &frags[1], late).0,
        Verdict::Drop(DropReason::FragmentUntracked)
    );
}

/// Fragments from a NAT real server with a corrupt IP header are dropped
/// as such, and those of a TCP reply are translated like UDP's.
#[test]
fn nat_reply_fragments_bad_checksum_and_tcp() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    let syn = Pkt {
        dst: VIP_NAT,
        sport: 5200,
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &syn.bytes(), 0).0));
    let reply = Pkt {
        src_mac: mac_of(rs),
        src: rs,
        sport: 8080,
        dst: CLIENT,
        dport: 5200,
        df: false,
        id: 9,
        l4: L4::Tcp {
            flags: SYN | ACK,
            seq: 1,
        },
        payload: vec![0x5a; 2000],
        ..Pkt::default()
    };
    let want = fragments(
        &Pkt {
            src_mac: DIRECTOR_MAC,
            dst_mac: ROUTER_MAC,
            src: VIP_NAT,
            sport: 80,
            ttl: reply.ttl - 1,
            ..reply.clone()
        }
        .bytes(),
        1480,
    );
    let frags = fragments(&reply.bytes(), 1480);
    let mut bad = frags[0].clone();
    bad[24] ^= 0x40;
    assert_eq!(
        run(&mut p, &bad, 1).0,
        Verdict::Drop(DropReason::BadIpChecksum)
    );
    for (k, f) in frags.iter().enumerate() {
        let (v, out) = run(&mut p, f, 1);
        assert!(is_tx(v), "fragment {k}: {v:?}");
        assert_eq!(out, want[k], "fragment {k}");
    }
}

#[test]
fn nat_reply_with_ttl_1_is_dropped() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let syn = Pkt {
        dst: VIP_NAT,
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &syn.bytes(), 0).0));
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    for ttl in [0, 1] {
        let r = Pkt {
            src: rs,
            sport: 8080,
            dst: CLIENT,
            dport: 40000,
            ttl,
            l4: L4::Tcp {
                flags: SYN | ACK,
                seq: 1,
            },
            ..Pkt::default()
        };
        assert_eq!(
            run(&mut p, &r.bytes(), 0).0,
            Verdict::Drop(DropReason::TtlExceeded)
        );
    }
    // A request with TTL 0 or 1 is delivered: the VIP is a local address.
    let low = Pkt {
        dst: VIP_NAT,
        ttl: 1,
        l4: L4::Tcp { flags: ACK, seq: 2 },
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &low.bytes(), 0).0));
}

#[test]
fn not_ours_passes_and_strays_drop() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    // To the director itself (e.g. SSH): the kernel's.
    let ssh = Pkt {
        dst: TUNNEL_SRC,
        dport: 22,
        ..Pkt::default()
    };
    assert_eq!(run(&mut p, &ssh.bytes(), 0).0, Verdict::NotOurs);
    // A port of the VIP no service has.
    let other = Pkt {
        dport: 443,
        ..Pkt::default()
    };
    assert_eq!(run(&mut p, &other.bytes(), 0).0, Verdict::NotOurs);
    // ARP.
    let mut arp = Pkt::default().l2(0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(run(&mut p, &arp, 0).0, Verdict::NotOurs);
    // A TCP segment for a VIP without a connection and without SYN.
    let ack = Pkt {
        l4: L4::Tcp { flags: ACK, seq: 1 },
        ..Pkt::default()
    };
    assert_eq!(
        run(&mut p, &ack.bytes(), 0).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    let synrst = Pkt {
        l4: L4::Tcp {
            flags: SYN | RST,
            seq: 1,
        },
        ..Pkt::default()
    };
    assert_eq!(
        run(&mut p, &synrst.bytes(), 0).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(p.stats().get(Counter::NotOurs), 3);
    assert_eq!(p.stats().dropped(DropReason::NoConnection), 2);
}

#[test]
fn rr_splits_exactly_and_flows_stick() {
    let t = director();
    let mut p = pipeline(&t, 4096);
    let mut per_real = std::collections::HashMap::new();
    let mut chosen = Vec::new();
    for i in 0..300u16 {
        let syn = Pkt {
            sport: 10000 + i,
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &syn.bytes(), 0);
        assert!(is_tx(v));
        let mac: [u8; 6] = out[0..6].try_into().unwrap();
        *per_real.entry(mac).or_insert(0) += 1;
        chosen.push(mac);
    }
    assert_eq!(per_real.len(), 3);
    assert!(per_real.values().all(|&n| n == 100), "{per_real:?}");
    // Every later packet of each flow goes to the same real server.
    for round in 0..3 {
        for i in 0..300u16 {
            let data = Pkt {
                sport: 10000 + i,
                l4: L4::Tcp {
                    flags: ACK | PSH,
                    seq: 100 + round,
                },
                payload: vec![1, 2, 3],
                ..Pkt::default()
            };
            let (v, out) = run(&mut p, &data.bytes(), 1 + round);
            assert!(is_tx(v));
            assert_eq!(out[0..6], chosen[usize::from(i)]);
        }
    }
    assert_eq!(p.conns().len(), 300);
}

#[test]
fn counters_follow_states_and_expiry() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let snap = Arc::clone(p.snapshot());
    let svc = snap
        .service_v4(6, VIP_DR, 80)
        .expect("the DR service exists");
    let first = snap.dests_of(svc).at(0);
    let flags_seq = [(SYN, 0), (ACK, 1)];
    for (f, now) in flags_seq {
        let pkt = Pkt {
            l4: L4::Tcp { flags: f, seq: 1 },
            ..Pkt::default()
        };
        assert!(is_tx(run(&mut p, &pkt.bytes(), now).0));
    }
    assert_eq!(first.counters.conns(), (1, 0), "ESTABLISHED is active");
    let fin = Pkt {
        l4: L4::Tcp {
            flags: FIN | ACK,
            seq: 2,
        },
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &fin.bytes(), 2).0));
    assert_eq!(first.counters.conns(), (0, 1), "FIN_WAIT is inactive");
    // FIN_WAIT lasts 120 s.
    assert_eq!(p.expire(121, 100), 0);
    assert_eq!(p.expire(122, 100), 1);
    assert_eq!(first.counters.conns(), (0, 0));
    assert!(p.conns().is_empty());
}

#[test]
fn full_table_drops_new_flows_only() {
    let t = director();
    let mut p = pipeline(&t, 8);
    let ack = |i: u16| Pkt {
        sport: i,
        l4: L4::Tcp { flags: ACK, seq: 9 },
        ..Pkt::default()
    };
    // Established connections fill the table (no unreplied share to
    // evict from, nothing expired to reclaim).
    for i in 0..8u16 {
        let syn = Pkt {
            sport: i,
            ..Pkt::default()
        };
        assert!(is_tx(run(&mut p, &syn.bytes(), 0).0));
        assert!(is_tx(run(&mut p, &ack(i).bytes(), 0).0));
    }
    assert_eq!(p.conns().unreplied(), 0);
    let late = Pkt {
        sport: 999,
        ..Pkt::default()
    };
    assert_eq!(
        run(&mut p, &late.bytes(), 1).0,
        Verdict::Drop(DropReason::TableFull)
    );
    for i in 0..8u16 {
        assert!(is_tx(run(&mut p, &ack(i).bytes(), 1).0));
    }
    assert_eq!(p.stats().dropped(DropReason::TableFull), 1);
    // Once they have expired (900 s idle), a new flow reclaims their
    // entries itself, though no expiry pass ran.
    assert!(is_tx(run(&mut p, &late.bytes(), 1000).0));
    assert_eq!(p.stats().dropped(DropReason::TableFull), 1);
    assert_eq!(p.stats().get(Counter::ConnsReclaimed), 8);
    assert_eq!(p.conns().len(), 1);
}

#[test]
fn deleted_real_ends_its_connections_and_weight_0_drains() {
    let mut t = director();
    let mut p = pipeline(&t, 1024);
    let vip = "198.18.1.1:80".parse().unwrap();
    let flows: Vec<_> = (0..3u16)
        .map(|i| {
            let syn = Pkt {
                sport: 100 + i,
                ..Pkt::default()
            };
            let (_, out) = run(&mut p, &syn.bytes(), 0);
            <[u8; 6]>::try_from(&out[0..6]).unwrap()
        })
        .collect();
    let rs11 = mac_of(Ipv4Addr::new(198, 18, 2, 11));
    let rs12 = mac_of(Ipv4Addr::new(198, 18, 2, 12));
    assert_eq!(flows[0], rs11);
    assert_eq!(flows[1], rs12);
    // .12 drains: weight 0. Its flow continues; new flows avoid it.
    t.edit_dest(Protocol::Tcp, vip, &real("198.18.2.12:80", Forward::Dr, 0))
        .unwrap();
    // .11 is deleted: its flow ends.
    t.del_dest(Protocol::Tcp, vip, "198.18.2.11:80".parse().unwrap())
        .unwrap();
    p.set_snapshot(Arc::new(t.snapshot()));
    let data = |sport| Pkt {
        sport,
        l4: L4::Tcp { flags: ACK, seq: 5 },
        ..Pkt::default()
    };
    assert_eq!(
        run(&mut p, &data(100).bytes(), 1).0,
        Verdict::Drop(DropReason::DestGone)
    );
    let (v, out) = run(&mut p, &data(101).bytes(), 1);
    assert!(is_tx(v));
    assert_eq!(out[0..6], rs12);
    for i in 0..10 {
        let syn = Pkt {
            sport: 200 + i,
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &syn.bytes(), 1);
        assert!(is_tx(v));
        assert_eq!(out[0..6], mac_of(Ipv4Addr::new(198, 18, 2, 13)));
    }
}

#[test]
fn unresolved_next_hop_is_counted() {
    let mut t = director();
    let vip = "198.18.1.1:80".parse().unwrap();
    t.add_dest(Protocol::Tcp, vip, &real("198.18.2.14:80", Forward::Dr, 1))
        .unwrap();
    let mut p = pipeline(&t, 64);
    // The newest real server is first in the list: rr picks .14 first.
    let (v, _) = run(&mut p, &Pkt::default().bytes(), 0);
    assert_eq!(v, Verdict::Drop(DropReason::NoNeighbour));
    assert_eq!(p.stats().dropped(DropReason::NoNeighbour), 1);
}

#[test]
fn timeouts_follow_set() {
    let mut t = director();
    t.set_timeouts(0, 0, 10);
    let mut p = pipeline(&t, 64);
    let q = Pkt {
        dst: VIP_NAT,
        dport: 53,
        l4: L4::Udp { checksum: true },
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &q.bytes(), 0).0));
    assert_eq!(p.expire(9, 100), 0);
    assert_eq!(p.expire(10, 100), 1);
}

/// `process_batch` gives the same verdicts and bytes as `process` frame by
/// frame, including when one batch holds a flow's SYN and its next
/// packets, a retransmitted SYN, and both sides of a NAT connection.
#[test]
fn batches_match_single_processing() {
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    let mut frames = Vec::new();
    for i in 0..40u16 {
        let dst = [VIP_DR, VIP_TUN, VIP_NAT][usize::from(i % 3)];
        let syn = Pkt {
            dst,
            sport: 3000 + i / 2,
            ..Pkt::default()
        };
        frames.push(syn.bytes());
        frames.push(syn.bytes()); // retransmitted
        frames.push(
            Pkt {
                l4: L4::Tcp { flags: ACK, seq: 2 },
                payload: vec![7; 30],
                ..syn.clone()
            }
            .bytes(),
        );
        frames.push(
            Pkt {
                src: rs,
                sport: 8080,
                dst: CLIENT,
                dport: syn.sport,
                l4: L4::Tcp {
                    flags: SYN | ACK,
                    seq: 9,
                },
                ..Pkt::default()
            }
            .bytes(),
        );
        frames.push(frames[usize::from(i) % 7][..20].to_vec()); // garbage
    }
    let t = director();
    let mut single = pipeline(&t, 1024);
    let want: Vec<_> = frames.iter().map(|f| run(&mut single, f, 0)).collect();

    for prefetch_min in [0, u32::MAX] {
        let t = director();
        let mut batched = pipeline(&t, 1024);
        batched.set_prefetch_min(prefetch_min);
        assert_eq!(
            run_batched(&mut batched, &frames),
            want,
            "prefetch_min {prefetch_min}"
        );
        assert_eq!(batched.stats(), single.stats());
    }
}

/// A new snapshot keeps the scheduler of every service that did not
/// change: rr goes on where it was instead of starting over.
#[test]
fn unchanged_services_keep_their_scheduler_state() {
    let mut t = director();
    let mut p = pipeline(&t, 1024);
    let syn = |sport| Pkt {
        sport,
        ..Pkt::default()
    };
    let (_, first) = run(&mut p, &syn(1).bytes(), 0);
    // Another service changes.
    let nat: std::net::SocketAddr = "198.18.1.3:80".parse().unwrap();
    t.add_dest(
        Protocol::Tcp,
        nat,
        &real("198.18.2.33:8080", Forward::Nat, 1),
    )
    .unwrap();
    let next = t.next_snapshot(p.snapshot());
    p.set_snapshot(Arc::new(next));
    let (_, second) = run(&mut p, &syn(2).bytes(), 0);
    assert_ne!(first[0..6], second[0..6], "rr went on to the next server");
    assert_eq!(second[0..6], mac_of(Ipv4Addr::new(198, 18, 2, 12)));
    // With `snapshot()` (no predecessor) every scheduler starts afresh.
    p.set_snapshot(Arc::new(t.snapshot()));
    let (_, third) = run(&mut p, &syn(3).bytes(), 0);
    assert_eq!(third[0..6], first[0..6]);
}

/// Generated "fragmentation needed" errors are limited per second, as
/// Linux limits the ICMP a host sends.
#[test]
fn generated_icmp_is_rate_limited() {
    let t = director();
    let mut p = pipeline(&t, 64);
    let big = Pkt {
        dst: VIP_TUN,
        payload: vec![0; 1500 - 40],
        ..Pkt::default()
    }
    .bytes();
    let limit = xdpvs::xmit::icmp::ICMP_PER_SECOND as usize;
    let sent = (0..limit + 5)
        .filter(|_| is_tx(run(&mut p, &big, 7).0))
        .count();
    assert_eq!(sent, limit);
    assert_eq!(p.stats().dropped(DropReason::TooBig), 5);
    assert!(is_tx(run(&mut p, &big, 8).0), "a new second");
}

/// Traffic counters (`ipvsadm --stats`): connections, packets and bytes in
/// each direction, per real server and per service, summed over workers.
#[test]
fn traffic_is_counted_per_server_and_service_across_workers() {
    let mut t = empty_director();
    t.set_workers(2);
    let vip: std::net::SocketAddr = "198.18.1.3:80".parse().unwrap();
    t.add_service(&common::service(Protocol::Tcp, "198.18.1.3:80", "rr"))
        .unwrap();
    t.add_dest(
        Protocol::Tcp,
        vip,
        &real("198.18.2.31:8080", Forward::Nat, 1),
    )
    .unwrap();
    let rs = Ipv4Addr::new(198, 18, 2, 31);
    t.set_next_hop(rs.into(), 0, mac_of(rs));
    let snap = Arc::new(t.snapshot());
    let mut workers: Vec<_> = (0..2)
        .map(|w| {
            let mut p = xdpvs::pipeline::Pipeline::new(64, Arc::clone(&snap), 0);
            p.set_worker(w);
            p
        })
        .collect();
    let mut bytes_in = 0;
    for (w, p) in workers.iter_mut().enumerate() {
        let syn = Pkt {
            dst: VIP_NAT,
            sport: 1000 + w as u16,
            payload: vec![0; 10 * w],
            ..Pkt::default()
        };
        bytes_in += syn.ip_bytes().len();
        assert!(is_tx(run(p, &syn.bytes(), 0).0));
        let reply = Pkt {
            src: rs,
            sport: 8080,
            dst: CLIENT,
            dport: syn.sport,
            l4: L4::Tcp {
                flags: SYN | ACK,
                seq: 1,
            },
            ..Pkt::default()
        };
        assert!(is_tx(run(p, &reply.bytes(), 0).0));
    }
    let svc = snap.service_v4(6, VIP_NAT, 80).unwrap();
    let dest = snap.dests_of(svc).at(0);
    let want = xdpvs::dest::Totals {
        conns: 2,
        inpkts: 2,
        outpkts: 2,
        inbytes: bytes_in as u64,
        outbytes: 2 * 40,
    };
    assert_eq!(dest.counters.stats.total(), want);
    assert_eq!(svc.stats.total(), want);
}

/// A SYN on the 5-tuple of a connection that has ended starts a new one,
/// scheduled afresh (IPVS `conn_reuse_mode`): after the client's FIN in DR
/// (the director sees one side), after TIME_WAIT in NAT. A retransmitted
/// SYN of a live connection stays put.
#[test]
fn a_syn_on_an_ended_connection_is_scheduled_afresh() {
    let mut t = director();
    let mut p = pipeline(&t, 1024);
    let tcp = |flags| L4::Tcp { flags, seq: 7 };
    let dr = |flags| Pkt {
        sport: 5000,
        l4: tcp(flags),
        ..Pkt::default()
    };
    let (_, first) = run(&mut p, &dr(SYN).bytes(), 1);
    let (_, again) = run(&mut p, &dr(SYN).bytes(), 1);
    assert_eq!(
        first[0..6],
        again[0..6],
        "a retransmitted SYN keeps its server"
    );
    run(&mut p, &dr(ACK).bytes(), 1);
    run(&mut p, &dr(FIN | ACK).bytes(), 2);
    // Make the old server quiescent: the new connection must avoid it.
    let old = Ipv4Addr::new(198, 18, 2, 11);
    assert_eq!(first[0..6], mac_of(old));
    let vip = "198.18.1.1:80".parse().unwrap();
    t.edit_dest(Protocol::Tcp, vip, &real("198.18.2.11:80", Forward::Dr, 0))
        .unwrap();
    p.set_snapshot(Arc::new(t.snapshot()));
    let (v, next) = run(&mut p, &dr(SYN).bytes(), 3);
    assert!(is_tx(v));
    assert_ne!(
        next[0..6],
        mac_of(old),
        "rescheduled away from the quiescent server"
    );
    assert_eq!(p.conns().len(), 1);

    // NAT: the server closes, both sides FIN, the connection is TIME_WAIT.
    let nat = |flags| Pkt {
        dst: VIP_NAT,
        sport: 6000,
        l4: tcp(flags),
        ..Pkt::default()
    };
    let (_, out) = run(&mut p, &nat(SYN).bytes(), 4);
    let rip = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
    let reply = |flags| Pkt {
        src_mac: mac_of(rip),
        src: rip,
        sport: 8080,
        dst: CLIENT,
        dport: 6000,
        l4: tcp(flags),
        ..Pkt::default()
    };
    run(&mut p, &reply(SYN | ACK).bytes(), 4);
    run(&mut p, &nat(ACK).bytes(), 4);
    run(&mut p, &reply(FIN | ACK).bytes(), 4);
    run(&mut p, &nat(FIN | ACK).bytes(), 4);
    run(&mut p, &reply(ACK).bytes(), 4);
    let nat_vip = "198.18.1.3:80".parse().unwrap();
    t.edit_dest(
        Protocol::Tcp,
        nat_vip,
        &real(&format!("{rip}:8080"), Forward::Nat, 0),
    )
    .unwrap();
    p.set_snapshot(Arc::new(t.snapshot()));
    let (v, out) = run(&mut p, &nat(SYN).bytes(), 5);
    assert!(is_tx(v));
    assert_ne!(Ipv4Addr::new(out[30], out[31], out[32], out[33]), rip);
}

/// Every mode checks the egress MTU (IPVS's `ensure_mtu_is_adequate`):
/// DR and NAT leave a packet's length as it is, so one bigger than the
/// real server's port with DF set is answered with "fragmentation needed"
/// carrying that port's MTU, and one without DF is dropped.
#[test]
fn dr_and_nat_too_big_for_the_egress_port_get_icmp_frag_needed() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    for (n, vip) in [VIP_DR, VIP_NAT].into_iter().enumerate() {
        let fits = Pkt {
            dst: vip,
            sport: 100 + n as u16,
            payload: vec![0x55; usize::from(MTU) - 40],
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &fits.bytes(), 0);
        assert!(is_tx(v), "{vip}: a packet of exactly the MTU goes: {v:?}");
        assert_ne!(&out[30..34], &CLIENT.octets(), "{vip}: not sent back");

        let big = Pkt {
            dst: vip,
            sport: 200 + n as u16,
            payload: vec![0x55; usize::from(MTU) - 40 + 1],
            ..Pkt::default()
        };
        let input = big.bytes();
        let (v, out) = run(&mut p, &input, 0);
        assert!(is_tx(v), "{vip}: {v:?}");
        assert_frag_needed(&out, (vip, CLIENT), MTU, &input[14..14 + 28]);
        assert_checksums(&out);

        let no_df = Pkt {
            df: false,
            sport: 300 + n as u16,
            ..big
        };
        let (v, _) = run(&mut p, &no_df.bytes(), 0);
        assert_eq!(v, Verdict::Drop(DropReason::TooBig), "{vip}");
    }
    assert_eq!(p.stats().get(Counter::IcmpSent), 2);
    assert_eq!(p.stats().dropped(DropReason::TooBig), 2);
}

/// Issue 12, item 13: a real server's slot reused more often than its
/// generation counts (4096 re-adds wrapped the 12-bit generation back to
/// the old connection's) never gives an old connection the new server,
/// and that connection's end never touches the new server's counters.
#[test]
fn a_reused_slot_never_takes_an_old_connection() {
    let mut t = director();
    let vip = "198.18.1.1:80".parse().unwrap();
    let rs11 = "198.18.2.11:80";
    let mut p = pipeline(&t, 1024);
    let first = |flags| Pkt {
        sport: 100,
        l4: L4::Tcp { flags, seq: 5 },
        ..Pkt::default()
    };
    // rr starts at the list head, .11; the client's ACK establishes it.
    let (v, out) = run(&mut p, &first(SYN).bytes(), 0);
    assert!(is_tx(v));
    assert_eq!(out[0..6], mac_of(Ipv4Addr::new(198, 18, 2, 11)));
    assert!(is_tx(run(&mut p, &first(ACK).bytes(), 0).0));
    let dot11 = |snap: &xdpvs::service::Snapshot| {
        snap.dests_of(&snap.services()[0])
            .iter()
            .find(|d| d.addr == Ipv4Addr::new(198, 18, 2, 11))
            .expect(".11 is a real server")
            .clone()
    };
    let old = dot11(p.snapshot());
    assert_eq!(old.counters.conns(), (1, 0));
    for _ in 0..4096 {
        t.del_dest(Protocol::Tcp, vip, rs11.parse().unwrap())
            .unwrap();
        t.add_dest(Protocol::Tcp, vip, &real(rs11, Forward::Dr, 1))
            .unwrap();
    }
    p.set_snapshot(Arc::new(t.snapshot()));
    assert_eq!(
        run(&mut p, &first(ACK).bytes(), 1).0,
        Verdict::Drop(DropReason::DestGone),
        "the old connection's server is gone, whoever holds its slot now"
    );
    let now_11 = dot11(p.snapshot());
    assert_ne!(now_11.r, old.r);
    assert_eq!(now_11.counters.conns(), (0, 0));
    // The old connection ends without touching anyone's counts.
    for now in [2, 1000, 2000] {
        p.expire(now, 1024);
    }
    assert_eq!(p.conns().len(), 0);
    assert_eq!(now_11.counters.conns(), (0, 0));
}

/// A NAT reply too big for the client's side, with DF set, is answered as
/// a router forwarding it would: "fragmentation needed" with the client
/// side's MTU, to the real server (out of the port it came by, to the MAC
/// it came from), from the source of the director's route to that server.
/// Without DF, or with no route source known, it is dropped.
#[test]
fn nat_reply_too_big_for_the_client_side_tells_the_real_server() {
    let rip = Ipv4Addr::new(198, 18, 2, 31);
    let src = Ipv4Addr::new(198, 18, 2, 2);
    let server_mac = mac_of(rip);
    let mut t = xdpvs::service::ServiceTable::new(
        vec![
            xdpvs::service::Port {
                mac: DIRECTOR_MAC,
                mtu: 1400,
                complete_checksums: false,
            },
            xdpvs::service::Port {
                mac: [0x02, 0, 0, 0, 0x02, 0x03],
                mtu: 1500,
                complete_checksums: false,
            },
        ],
        None,
        xdpvs::conn::Timeouts::default(),
    );
    let vip = "198.18.1.3:80".parse().unwrap();
    t.add_service(&service(Protocol::Tcp, "198.18.1.3:80", "rr"))
        .unwrap();
    t.add_dest(
        Protocol::Tcp,
        vip,
        &real("198.18.2.31:8080", Forward::Nat, 1),
    )
    .unwrap();
    t.set_next_hop(rip.into(), 1, server_mac);
    let run_on = |p: &mut Pipeline, frame: &[u8], port: u8| {
        let mut buf = vec![0u8; 2048 + HEADROOM];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut f = xdpvs::frame::Frame::new(&mut buf, HEADROOM, frame.len(), port);
        let v = p.process(&mut f, 0);
        (v, f.data().to_vec())
    };
    let reply = |sport: u16, df: bool| Pkt {
        src_mac: server_mac,
        dst_mac: [0x02, 0, 0, 0, 0x02, 0x03],
        src: rip,
        sport: 8080,
        dst: CLIENT,
        dport: sport,
        df,
        l4: L4::Tcp { flags: ACK, seq: 9 },
        payload: vec![0x33; 1450 - 40],
        ..Pkt::default()
    };
    for with_source in [false, true] {
        assert!(t.set_source(rip.into(), with_source.then_some(src)) == with_source);
        let mut p = pipeline(&t, 64);
        let syn = |sport| Pkt {
            dst: VIP_NAT,
            sport,
            ..Pkt::default()
        };
        for sport in [7000, 7001] {
            let (v, _) = run_on(&mut p, &syn(sport).bytes(), 0);
            assert_eq!(v, Verdict::Tx { port: 1, len: 54 });
        }
        let input = reply(7000, true).bytes();
        let (v, out) = run_on(&mut p, &input, 1);
        let (v_no_df, _) = run_on(&mut p, &reply(7001, false).bytes(), 1);
        assert_eq!(v_no_df, Verdict::Drop(DropReason::TooBig));
        if !with_source {
            assert_eq!(v, Verdict::Drop(DropReason::TooBig));
            assert_eq!(p.stats().get(Counter::IcmpSent), 0);
            continue;
        }
        assert!(matches!(v, Verdict::Tx { port: 1, .. }), "{v:?}");
        assert_eq!(&out[0..6], &server_mac, "back to the real server");
        assert_frag_needed(&out, (src, rip), 1400, &input[14..14 + 28]);
        assert_checksums(&out);
        assert_eq!(p.stats().get(Counter::IcmpSent), 1);
    }
}
