//! Flood defence through the pipeline: the unreplied share keeps
//! established connections' slots under a flood of spoofed SYNs or
//! datagrams, drop_entry thins a flood's entries, secure_tcp keeps
//! half-open connections half open. No timing: ticks are given.

mod common;

use std::net::Ipv4Addr;

use common::*;
use xdpvs::conn::{Defense, Mode, TcpState};
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::ServiceTable;
use xdpvs::stats::Counter;

fn is_tx(v: Verdict) -> bool {
    matches!(v, Verdict::Tx { .. })
}

fn with_defense(d: Defense) -> ServiceTable {
    let mut t = director();
    t.set_defense(d);
    t
}

/// A spoofed source for flood packet `n`.
fn spoofed(n: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(0xc613_0000 | (n & 0xffff))
}

fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr) -> Pkt {
    Pkt {
        src,
        sport,
        dst,
        ..Pkt::default()
    }
}

fn ack(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, data: &[u8]) -> Pkt {
    Pkt {
        src,
        sport,
        dst,
        l4: L4::Tcp {
            flags: ACK | if data.is_empty() { 0 } else { PSH },
            seq: 1001,
        },
        payload: data.to_vec(),
        ..Pkt::default()
    }
}

/// Opens `n` DR connections from CLIENT and completes their handshakes
/// with a request each, at tick 1.
fn establish(p: &mut Pipeline, n: u16) {
    for i in 0..n {
        let port = 10_000 + i;
        assert!(is_tx(run(p, &syn(CLIENT, port, VIP_DR).bytes(), 1).0));
        let req = ack(CLIENT, port, VIP_DR, b"GET / HTTP/1.0\r\n\r\n");
        assert!(is_tx(run(p, &req.bytes(), 1).0));
    }
}

/// Every one of the `n` connections `establish` opened still forwards.
fn all_forward(p: &mut Pipeline, n: u16, now: u32) {
    for i in 0..n {
        let data = ack(CLIENT, 10_000 + i, VIP_DR, b"more");
        assert!(
            is_tx(run(p, &data.bytes(), now).0),
            "connection {i} lost its slot"
        );
    }
}

#[test]
fn established_connections_keep_their_slots_when_a_syn_flood_fills_the_share() {
    const CAP: u32 = 64;
    let mut p = pipeline(&director(), CAP);
    // The table's whole confirmed half, established before the flood.
    establish(&mut p, 32);
    assert_eq!((p.conns().len(), p.conns().unreplied()), (32, 0));
    for n in 0..20_000u32 {
        let v = run(&mut p, &syn(spoofed(n), n as u16, VIP_DR).bytes(), 2).0;
        assert!(is_tx(v), "flood SYN {n}: {v:?}");
        assert!(p.conns().unreplied() <= CAP / 2);
    }
    let s = p.stats();
    assert_eq!(s.dropped(DropReason::TableFull), 0);
    assert_eq!(s.dropped(DropReason::UnrepliedFull), 0);
    assert_eq!(s.get(Counter::UnrepliedEvicted), 20_000 - 32);
    assert_eq!((p.conns().len(), p.conns().unreplied()), (CAP, 32));
    all_forward(&mut p, 32, 3);
    // A real client still gets in during the flood: its SYN evicts a
    // flood entry, its ACK confirms it...
    let (c2, port) = (Ipv4Addr::new(198, 18, 0, 11), 555);
    assert!(is_tx(run(&mut p, &syn(c2, port, VIP_DR).bytes(), 3).0));
    assert!(is_tx(
        run(&mut p, &ack(c2, port, VIP_DR, b"hi").bytes(), 3).0
    ));
    assert_eq!(p.conns().unreplied(), 31);
    // ... and is confirmed, so the next flood packets cannot take it.
    for n in 0..1000u32 {
        run(
            &mut p,
            &syn(spoofed(n), 20_000 + n as u16, VIP_DR).bytes(),
            3,
        );
    }
    assert!(is_tx(
        run(&mut p, &ack(c2, port, VIP_DR, b"x").bytes(), 3).0
    ));
    all_forward(&mut p, 32, 4);
}

#[test]
fn udp_flows_count_as_unreplied_until_answered() {
    const CAP: u32 = 16;
    let mut p = pipeline(&director(), CAP);
    let dns = |src: Ipv4Addr, sport: u16| Pkt {
        src,
        sport,
        dst: VIP_NAT,
        dport: 53,
        l4: L4::Udp { checksum: true },
        payload: b"query".to_vec(),
        ..Pkt::default()
    };
    // Eight NAT flows answered by their real server.
    for i in 0..8u16 {
        assert!(is_tx(run(&mut p, &dns(CLIENT, 30_000 + i).bytes(), 1).0));
        let reply = Pkt {
            src: Ipv4Addr::new(198, 18, 2, 31),
            sport: 5353,
            dst: CLIENT,
            dport: 30_000 + i,
            src_mac: mac_of(Ipv4Addr::new(198, 18, 2, 31)),
            l4: L4::Udp { checksum: true },
            payload: b"answer".to_vec(),
            ..Pkt::default()
        };
        assert!(is_tx(run(&mut p, &reply.bytes(), 1).0));
    }
    assert_eq!(p.conns().unreplied(), 0);
    // Spoofed datagrams: a second one from the same client is no answer.
    for n in 0..5000u32 {
        let d = dns(spoofed(n), n as u16);
        assert!(is_tx(run(&mut p, &d.bytes(), 2).0));
        run(&mut p, &d.bytes(), 2);
        assert!(p.conns().unreplied() <= CAP / 2);
    }
    assert_eq!(p.stats().dropped(DropReason::TableFull), 0);
    for i in 0..8u16 {
        assert!(is_tx(run(&mut p, &dns(CLIENT, 30_000 + i).bytes(), 3).0));
    }
}

#[test]
fn drop_entry_thins_unreplied_entries_and_spares_confirmed_ones() {
    const CAP: u32 = 256;
    let d = Defense {
        unreplied_share: 1_000_000,
        threshold: 500_000,
        drop_entry: Mode::Auto,
        ..Defense::default()
    };
    let mut p = pipeline(&with_defense(d), CAP);
    establish(&mut p, 50);
    // Below the threshold nothing is dropped.
    for n in 0..77u32 {
        run(&mut p, &syn(spoofed(n), n as u16, VIP_DR).bytes(), 2);
    }
    assert_eq!(p.stats().get(Counter::DefenseDropped), 0);
    for n in 77..50_000u32 {
        run(&mut p, &syn(spoofed(n), n as u16, VIP_DR).bytes(), 2);
    }
    let s = p.stats();
    assert!(s.get(Counter::DefenseDropped) > 0);
    // Two probes per new entry: the flood's entries settle about half
    // the table (here 13 standard deviations below what is left of it),
    // so new flows are not refused.
    assert_eq!(s.dropped(DropReason::TableFull), 0);
    assert!(p.conns().len() < CAP, "{}", p.conns().len());
    all_forward(&mut p, 50, 3);
}

#[test]
fn secure_tcp_keeps_a_bare_handshake_half_open() {
    let d = Defense {
        secure_tcp: Mode::On,
        secure_tcp_timeout: 5,
        ..Defense::default()
    };
    let mut p = pipeline(&with_defense(d), 64);
    // DR: SYN, then the handshake's bare ACK: SYNACK, short-lived.
    assert!(is_tx(run(&mut p, &syn(CLIENT, 1, VIP_DR).bytes(), 10).0));
    assert!(is_tx(
        run(&mut p, &ack(CLIENT, 1, VIP_DR, b"").bytes(), 10).0
    ));
    let c = *p.conns().iter().next().unwrap();
    assert_eq!((c.tcp_state(), c.expires()), (TcpState::SynAck, 15));
    assert_eq!(p.conns().unreplied(), 1);
    // Data establishes it, with the normal timeout.
    assert!(is_tx(
        run(&mut p, &ack(CLIENT, 1, VIP_DR, b"GET").bytes(), 11).0
    ));
    let c = *p.conns().iter().next().unwrap();
    assert_eq!((c.tcp_state(), c.expires()), (TcpState::Established, 911));
    assert_eq!(p.conns().unreplied(), 0);
    // NAT: the client's ACK before the server's SYN+ACK stays SYN_RECV.
    let mut p = pipeline(&with_defense(d), 64);
    assert!(is_tx(run(&mut p, &syn(CLIENT, 2, VIP_NAT).bytes(), 10).0));
    assert!(is_tx(
        run(&mut p, &ack(CLIENT, 2, VIP_NAT, b"").bytes(), 10).0
    ));
    let c = *p.conns().iter().next().unwrap();
    assert_eq!((c.tcp_state(), c.expires()), (TcpState::SynRecv, 15));
    let rip = c.daddr;
    let syn_ack = Pkt {
        src: rip,
        sport: 8080,
        dst: CLIENT,
        dport: 2,
        src_mac: mac_of(rip),
        l4: L4::Tcp {
            flags: SYN | ACK,
            seq: 5000,
        },
        ..Pkt::default()
    };
    assert!(is_tx(run(&mut p, &syn_ack.bytes(), 10).0));
    assert_eq!(
        p.conns().iter().next().unwrap().tcp_state(),
        TcpState::SynAck
    );
    assert!(is_tx(
        run(&mut p, &ack(CLIENT, 2, VIP_NAT, b"").bytes(), 10).0
    ));
    assert_eq!(
        p.conns().iter().next().unwrap().tcp_state(),
        TcpState::Established
    );
    assert_eq!(p.conns().unreplied(), 0);
    // Without secure_tcp the bare ACK establishes a DR connection.
    let mut p = pipeline(&director(), 64);
    run(&mut p, &syn(CLIENT, 3, VIP_DR).bytes(), 10);
    run(&mut p, &ack(CLIENT, 3, VIP_DR, b"").bytes(), 10);
    assert_eq!(
        p.conns().iter().next().unwrap().tcp_state(),
        TcpState::Established
    );
}

#[test]
fn a_handshake_in_progress_outlasts_a_flood_smaller_than_the_share() {
    const CAP: u32 = 64;
    let mut p = pipeline(&director(), CAP);
    // The share is full of flood entries when the client's SYN comes.
    for n in 0..32u32 {
        run(&mut p, &syn(spoofed(n), n as u16, VIP_DR).bytes(), 1);
    }
    assert!(is_tx(run(&mut p, &syn(CLIENT, 7, VIP_DR).bytes(), 1).0));
    // 31 more flood SYNs evict the 31 older entries, never the client's.
    for n in 32..63u32 {
        run(&mut p, &syn(spoofed(n), n as u16, VIP_DR).bytes(), 1);
    }
    assert_eq!(p.stats().dropped(DropReason::NoConnection), 0);
    assert!(is_tx(
        run(&mut p, &ack(CLIENT, 7, VIP_DR, b"GET").bytes(), 1).0
    ));
    assert_eq!(p.stats().dropped(DropReason::NoConnection), 0);
    assert_eq!(p.conns().unreplied(), 31);
    assert_eq!(p.stats().get(Counter::UnrepliedEvicted), 32);
}
