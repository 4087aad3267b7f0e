//! Persistence (`ipvsadm -p`, `-M`, port-0 services) through the pipeline:
//! connections of one client (under the netmask) go to one real server for
//! as long as its template lives, as `ip_vs_sched_persist` does.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use xdpvs::config::{Forward, Protocol, ServiceConfig};
use xdpvs::frame::Verdict;
use xdpvs::pipeline::Pipeline;
use xdpvs::service::ServiceTable;

const REALS: [&str; 3] = ["198.18.2.13", "198.18.2.12", "198.18.2.11"];

/// TCP services on VIP_DR with `ports` (each persistent for `timeout`
/// seconds under `mask`), rr over three DR real servers; rr starts with
/// .11, the newest.
fn persistent(ports: &[u16], timeout: u32, mask: Ipv4Addr) -> ServiceTable {
    let mut t = empty_director();
    for &port in ports {
        let vip = SocketAddr::new(VIP_DR.into(), port);
        let mut s = ServiceConfig::new(Protocol::Tcp, vip, "rr");
        s.persistence_timeout = timeout;
        s.persistence_netmask = mask;
        t.add_service(&s).unwrap();
        for r in REALS {
            let addr = format!("{r}:{}", if port == 0 { 0 } else { 80 });
            t.add_dest(Protocol::Tcp, vip, &real(&addr, Forward::Dr, 1))
                .unwrap();
            t.set_next_hop(r.parse().unwrap(), 0, mac_of(r.parse().unwrap()));
        }
    }
    t
}

/// The real server (last octet) a SYN from `src:sport` to `dport` goes to.
fn syn(p: &mut Pipeline, src: Ipv4Addr, sport: u16, dport: u16, now: u32) -> u8 {
    let pkt = Pkt {
        src,
        sport,
        dport,
        ..Pkt::default()
    };
    let (v, out) = run(p, &pkt.bytes(), now);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    out[5]
}

fn packet(p: &mut Pipeline, src: Ipv4Addr, sport: u16, flags: u8, now: u32) {
    let pkt = Pkt {
        src,
        sport,
        l4: L4::Tcp { flags, seq: 1 },
        ..Pkt::default()
    };
    assert!(matches!(run(p, &pkt.bytes(), now).0, Verdict::Tx { .. }));
}

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const C: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 10);

#[test]
fn one_client_one_real_server() {
    let t = persistent(&[80], 300, Ipv4Addr::BROADCAST);
    let mut p = pipeline(&t, 1024);
    let first = syn(&mut p, A, 1000, 80, 0);
    for port in 1001..1020 {
        assert_eq!(syn(&mut p, A, port, 80, 1), first);
    }
    // Another client is scheduled afresh: rr moves on.
    let other = syn(&mut p, B, 1000, 80, 1);
    assert_ne!(other, first);
    let snap = Arc::clone(p.snapshot());
    let svc = snap.service_v4(6, VIP_DR, 80).unwrap();
    let persist: Vec<u32> = snap
        .dests_of(svc)
        .iter()
        .map(|d| d.counters.persistent())
        .collect();
    assert_eq!(persist.iter().sum::<u32>(), 2, "one template per client");
    assert_eq!(p.conns().len(), 20 + 1 + 2);
}

#[test]
fn netmask_groups_clients() {
    let t = persistent(&[80], 300, Ipv4Addr::new(255, 255, 255, 0));
    let mut p = pipeline(&t, 1024);
    let a = syn(&mut p, A, 1000, 80, 0);
    assert_eq!(syn(&mut p, B, 1000, 80, 0), a, "same /24");
    assert_ne!(syn(&mut p, C, 1000, 80, 0), a, "other /24");
}

#[test]
fn template_outlives_its_connections_by_the_timeout() {
    let t = persistent(&[80], 60, Ipv4Addr::BROADCAST);
    let mut p = pipeline(&t, 1024);
    let a = syn(&mut p, A, 1000, 80, 0);
    packet(&mut p, A, 1000, ACK, 1); // ESTABLISHED: 900 s
    // The template comes due at 60 but still controls a connection.
    assert_eq!(p.expire(100, 1000), 0);
    // Other clients move rr on; A still goes to its server.
    syn(&mut p, B, 1000, 80, 100);
    assert_eq!(syn(&mut p, A, 1001, 80, 100), a);
    packet(&mut p, A, 1001, ACK, 100);
    // Both of A's connections close (RST: CLOSE, 10 s; a RST in SYN_RECV
    // would leave it there, as IPVS's table says); the template lives on
    // until a timeout after it was last used.
    packet(&mut p, A, 1000, RST, 110);
    packet(&mut p, A, 1001, RST, 110);
    p.expire(121, 1000);
    assert_eq!(p.conns().len(), 1 + 2, "B's connection, both templates");
    assert_eq!(p.expire(159, 1000), 0);
    assert_eq!(
        syn(&mut p, A, 1002, 80, 159),
        a,
        "template re-armed at 100 → 160"
    );
    packet(&mut p, A, 1002, ACK, 159);
    packet(&mut p, A, 1002, RST, 159);
    // A's connection (CLOSE), B's connection and B's template (both due
    // at 160).
    assert_eq!(p.expire(218, 1000), 3);
    assert_eq!(
        p.expire(219, 1000),
        1,
        "A's template, a timeout after its last use"
    );
    assert!(p.conns().is_empty());
    let snap = Arc::clone(p.snapshot());
    let svc = snap.service_v4(6, VIP_DR, 80).unwrap();
    let left: u32 = snap
        .dests_of(svc)
        .iter()
        .map(|d| d.counters.persistent())
        .sum();
    assert_eq!(left, 0);
}

#[test]
fn port_zero_service_keeps_all_ports_together() {
    let t = persistent(&[0], 300, Ipv4Addr::BROADCAST);
    let mut p = pipeline(&t, 1024);
    let a = syn(&mut p, A, 1000, 80, 0);
    for port in [21, 443, 8080, 30000] {
        assert_eq!(syn(&mut p, A, 1000 + port, port, 0), a);
    }
    // The real servers listen on the port the client asked for.
    let pkt = Pkt {
        src: A,
        sport: 5555,
        dport: 443,
        ..Pkt::default()
    };
    let (_, out) = run(&mut p, &pkt.bytes(), 0);
    assert_eq!(&out[14 + 20 + 2..14 + 20 + 4], &443u16.to_be_bytes());
}

#[test]
fn ftp_control_and_data_share_the_template() {
    // Port 21 persistent and port 0 persistent on one VIP: IPVS keys the
    // FTP template without a port, so data connections (to other ports)
    // find it.
    let t = persistent(&[21, 0], 300, Ipv4Addr::BROADCAST);
    let mut p = pipeline(&t, 1024);
    syn(&mut p, B, 1000, 80, 0); // move the rr cursors on
    let control = syn(&mut p, A, 40000, 21, 0);
    assert_eq!(syn(&mut p, A, 40001, 30123, 0), control, "passive data");
}

#[test]
fn deleted_real_gets_a_new_template_quiescent_keeps_it() {
    let mut t = persistent(&[80], 300, Ipv4Addr::BROADCAST);
    let vip = SocketAddr::new(VIP_DR.into(), 80);
    let mut p = pipeline(&t, 1024);
    let a = syn(&mut p, A, 1000, 80, 0);
    let b = syn(&mut p, B, 1000, 80, 0);
    // A's server drains (weight 0): A keeps going there (IPVS default).
    t.edit_dest(
        Protocol::Tcp,
        vip,
        &real(&format!("198.18.2.{a}:80"), Forward::Dr, 0),
    )
    .unwrap();
    // B's server is deleted: B is scheduled afresh.
    t.del_dest(
        Protocol::Tcp,
        vip,
        format!("198.18.2.{b}:80").parse().unwrap(),
    )
    .unwrap();
    p.set_snapshot(Arc::new(t.snapshot()));
    assert_eq!(syn(&mut p, A, 1001, 80, 1), a);
    let b2 = syn(&mut p, B, 1001, 80, 1);
    assert_ne!(b2, b);
    assert_ne!(b2, a, "not to the quiescent server");
    assert_eq!(syn(&mut p, B, 1002, 80, 2), b2);
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// Random connections of a few clients over time: while a client's
        /// template can be alive (its last new connection less than the
        /// timeout ago, or one of its connections still open), every new
        /// connection goes to the same real server; the persistence
        /// counters always equal the live templates.
        #[test]
        fn clients_stick_while_their_template_lives(
            steps in proptest::collection::vec((0u8..4, 0u32..40, any::<bool>()), 1..150)
        ) {
            let t = persistent(&[80], 30, Ipv4Addr::BROADCAST);
            let mut p = pipeline(&t, 4096);
            let mut now = 0u32;
            // client → (server, last new connection, open connections' ports)
            let mut seen: HashMap<u8, (u8, u32)> = HashMap::new();
            let mut port = 1000u16;
            for (client, dt, close) in steps {
                now += dt;
                p.expire(now, usize::MAX);
                let src = Ipv4Addr::new(198, 18, 0, 100 + client);
                port += 1;
                let server = syn(&mut p, src, port, 80, now);
                packet(&mut p, src, port, ACK, now);
                if close {
                    packet(&mut p, src, port, RST, now);
                }
                if let Some(&(s, last)) = seen.get(&client) {
                    // The template was used at `last`: it lives at least
                    // until last + 30.
                    if now < last + 30 {
                        prop_assert_eq!(server, s);
                    }
                }
                seen.insert(client, (server, now));
                let snap = Arc::clone(p.snapshot());
                let svc = snap.service_v4(6, VIP_DR, 80).unwrap();
                let persist: u32 = snap.dests_of(svc).iter().map(|d| d.counters.persistent()).sum();
                let templates = p.conns().iter().filter(|c| c.kind() == xdpvs::conn::Kind::Template).count();
                prop_assert_eq!(persist as usize, templates);
            }
        }
    }
}
