//! Health verdicts as the packet path sees them, without a network: a real
//! server taken out of service, inhibited or back, and IPVS's
//! `expire_nodest_conn` and `expire_quiescent_template` on and off.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use xdpvs::config::{Forward, Protocol};
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Health, ServiceTable};

const VIP: &str = "198.18.1.1:80";

fn vip() -> SocketAddr {
    VIP.parse().unwrap()
}

fn rs(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 2, n), 80))
}

fn down(inhibit: bool) -> Health {
    Health {
        up: false,
        weight: None,
        inhibit,
    }
}

/// The MAC a frame went to, or `None` if it was not transmitted.
fn sent_to(p: &mut Pipeline, pkt: &Pkt, now: u32) -> Result<[u8; 6], Verdict> {
    let (v, out) = run(p, &pkt.bytes(), now);
    match v {
        Verdict::Tx { .. } => Ok(out[0..6].try_into().unwrap()),
        v => Err(v),
    }
}

fn tcp(sport: u16, flags: u8) -> Pkt {
    Pkt {
        sport,
        l4: L4::Tcp { flags, seq: 5 },
        ..Pkt::default()
    }
}

/// A UDP DR service 198.18.1.1:53 on .11 and .12 (rr: .12 first).
fn udp_director() -> ServiceTable {
    let mut t = empty_director();
    let v: SocketAddr = "198.18.1.1:53".parse().unwrap();
    t.add_service(&service(Protocol::Udp, "198.18.1.1:53", "rr"))
        .unwrap();
    for n in [11, 12] {
        let r = real(&format!("198.18.2.{n}:53"), Forward::Dr, 1);
        t.add_dest(Protocol::Udp, v, &r).unwrap();
        t.set_next_hop(r.addr.ip(), 0, mac_of(Ipv4Addr::new(198, 18, 2, n)));
    }
    t
}

fn udp(sport: u16) -> Pkt {
    Pkt {
        sport,
        dport: 53,
        l4: L4::Udp { checksum: true },
        payload: b"q".to_vec(),
        ..Pkt::default()
    }
}

/// Down without inhibit: out of the scheduler, unlisted; with
/// `expire_nodest_conn` off its connection's packets are dropped and the
/// connection waits, and flows again when the server is back — with the
/// same `DestRef`, so nothing else of it changed.
#[test]
fn down_takes_a_server_out_and_up_brings_it_and_its_connections_back() {
    let mut t = director();
    let mut p = pipeline(&t, 1024);
    let rs11 = mac_of(Ipv4Addr::new(198, 18, 2, 11));
    assert_eq!(sent_to(&mut p, &tcp(100, SYN), 0), Ok(rs11));
    let before = t.snapshot();
    let r11 = before
        .dests_of(&before.services()[0])
        .iter()
        .find(|d| d.addr == rs(11).ip())
        .unwrap()
        .r;
    assert!(
        t.set_health((Protocol::Tcp, vip(), rs(11)), down(false))
            .is_some()
    );
    p.set_snapshot(Arc::new(t.snapshot()));
    // Its connection waits; new connections go elsewhere.
    assert_eq!(
        sent_to(&mut p, &tcp(100, ACK), 1),
        Err(Verdict::Drop(DropReason::DestDown))
    );
    assert_eq!(p.stats().dropped(DropReason::DestDown), 1);
    assert_eq!(p.conns().len(), 1, "kept for the server's return");
    for i in 0..6 {
        assert_ne!(sent_to(&mut p, &tcp(200 + i, SYN), 1), Ok(rs11));
    }
    let listed: Vec<SocketAddr> = t
        .services()
        .next()
        .unwrap()
        .dests
        .iter()
        .map(|d| d.cfg.addr)
        .collect();
    assert!(!listed.contains(&rs(11)), "{listed:?}");
    assert!(t.has_dest(Protocol::Tcp, vip(), rs(11)), "remembered");
    // Back: the waiting connection flows, new ones reach it again.
    assert_eq!(
        t.set_health((Protocol::Tcp, vip(), rs(11)), Health::UP),
        Some(down(false))
    );
    let after = t.snapshot();
    let d = after
        .dests_of(&after.services()[0])
        .iter()
        .find(|d| d.addr == rs(11).ip())
        .cloned()
        .unwrap();
    assert_eq!((d.r, d.weight, d.in_service), (r11, 1, true));
    p.set_snapshot(Arc::new(after));
    assert_eq!(sent_to(&mut p, &tcp(100, ACK), 2), Ok(rs11));
    let to11 = (0..6)
        .filter(|i| sent_to(&mut p, &tcp(300 + i, SYN), 2) == Ok(rs11))
        .count();
    assert_eq!(to11, 2, "rr over three again");
}

/// Down with inhibit: weight 0, listed, its connections flow; no new one.
#[test]
fn inhibited_server_keeps_its_connections_at_weight_0() {
    let mut t = director();
    let mut p = pipeline(&t, 1024);
    let rs11 = mac_of(Ipv4Addr::new(198, 18, 2, 11));
    assert_eq!(sent_to(&mut p, &tcp(100, SYN), 0), Ok(rs11));
    t.set_health((Protocol::Tcp, vip(), rs(11)), down(true));
    p.set_snapshot(Arc::new(t.snapshot()));
    assert_eq!(sent_to(&mut p, &tcp(100, ACK), 1), Ok(rs11));
    for i in 0..6 {
        assert_ne!(sent_to(&mut p, &tcp(200 + i, SYN), 1), Ok(rs11));
    }
    let s = t.services().next().unwrap();
    let d = s.dests.iter().find(|d| d.cfg.addr == rs(11)).unwrap();
    assert_eq!((d.weight, d.cfg.weight), (0, 1));
}

/// `expire_nodest_conn` on: a packet of a connection to a server out of
/// service ends it, and is scheduled afresh if it can start one (UDP); a
/// TCP segment that is not a SYN then finds no connection.
#[test]
fn expire_nodest_conn_reschedules_udp_and_ends_tcp() {
    for on in [false, true] {
        let mut t = udp_director();
        t.set_expiry(on, false);
        let mut p = pipeline(&t, 1024);
        let rs12 = mac_of(Ipv4Addr::new(198, 18, 2, 12));
        let rs11 = mac_of(Ipv4Addr::new(198, 18, 2, 11));
        assert_eq!(sent_to(&mut p, &udp(100), 0), Ok(rs12));
        let v: SocketAddr = "198.18.1.1:53".parse().unwrap();
        let r12: SocketAddr = "198.18.2.12:53".parse().unwrap();
        t.set_health((Protocol::Udp, v, r12), down(false));
        p.set_snapshot(Arc::new(t.snapshot()));
        let got = sent_to(&mut p, &udp(100), 1);
        if on {
            assert_eq!(got, Ok(rs11), "rescheduled to a server in service");
            assert_eq!(sent_to(&mut p, &udp(100), 2), Ok(rs11), "and stays");
        } else {
            assert_eq!(got, Err(Verdict::Drop(DropReason::DestDown)));
        }
    }
    for on in [false, true] {
        let mut t = director();
        t.set_expiry(on, false);
        let mut p = pipeline(&t, 1024);
        sent_to(&mut p, &tcp(100, SYN), 0).unwrap();
        t.set_health((Protocol::Tcp, vip(), rs(11)), down(false));
        p.set_snapshot(Arc::new(t.snapshot()));
        let (want, conns) = if on {
            (DropReason::NoConnection, 0)
        } else {
            (DropReason::DestDown, 1)
        };
        assert_eq!(sent_to(&mut p, &tcp(100, ACK), 1), Err(Verdict::Drop(want)));
        assert_eq!(p.conns().len(), conns, "expire_nodest_conn {on}");
    }
}

/// `expire_nodest_conn` on: a client's SYN on the 5-tuple of a
/// connection to a quiescent (here inhibited) server is rescheduled; off,
/// it goes on to the old server as the connection's packet.
#[test]
fn expire_nodest_conn_reschedules_a_syn_to_a_quiescent_server() {
    for on in [false, true] {
        let mut t = director();
        t.set_expiry(on, false);
        let mut p = pipeline(&t, 1024);
        let rs11 = mac_of(Ipv4Addr::new(198, 18, 2, 11));
        assert_eq!(sent_to(&mut p, &tcp(100, SYN), 0), Ok(rs11));
        t.set_health((Protocol::Tcp, vip(), rs(11)), down(true));
        p.set_snapshot(Arc::new(t.snapshot()));
        let again = sent_to(&mut p, &tcp(100, SYN), 1).unwrap();
        assert_eq!(again == rs11, !on, "expire_nodest_conn {on}");
    }
}

/// A persistent service: its template to an inhibited (weight 0) server
/// is honoured unless `expire_quiescent_template`; to a server out of
/// service it is always replaced.
#[test]
fn templates_to_quiescent_and_failed_servers() {
    let run_case = |inhibit: bool, expire: bool| -> bool {
        let mut t = director();
        let mut svc = service(Protocol::Tcp, VIP, "rr");
        svc.persistence_timeout = 300;
        t.edit_service(&svc).unwrap();
        t.set_expiry(false, expire);
        let mut p = pipeline(&t, 1024);
        let first = sent_to(&mut p, &tcp(100, SYN), 0).unwrap();
        let first_ip = (11..=13)
            .map(|n| Ipv4Addr::new(198, 18, 2, n))
            .find(|&a| mac_of(a) == first)
            .unwrap();
        t.set_health(
            (Protocol::Tcp, vip(), SocketAddr::from((first_ip, 80))),
            down(inhibit),
        );
        p.set_snapshot(Arc::new(t.snapshot()));
        // A new connection of the same client: kept on its server?
        sent_to(&mut p, &tcp(101, SYN), 1).unwrap() == first
    };
    assert!(run_case(true, false), "quiescent template honoured");
    assert!(!run_case(true, true), "expire_quiescent_template");
    assert!(!run_case(false, false), "failed server: template replaced");
    assert!(!run_case(false, true));
}
