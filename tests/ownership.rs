//! Ownership that does not move: two workers with in-memory sockets, a
//! NAT connection established, then the steering rule changes (the first
//! persistent service on another VIP, the first FTP NAT service, a wider
//! persistence netmask) so that the connection's owner under the new rule
//! is the other worker. Later packets in both directions, arriving at
//! either worker, still reach the connection (through the chain of old
//! owners); new connections open at the new owner; a persistent client's
//! new connection still finds its template at the old owner, an FTP data
//! connection its expectation; a DR connection survives its service
//! gaining a NAT real server; old rules expire. Also: a VLAN-tagged NAT
//! frame is handed over like an untagged one.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::memio::MemIo;
use common::*;
use xdpvs::config::{Forward, Idle, Protocol};
use xdpvs::conn::FlowKey;
use xdpvs::frame::Tick;
use xdpvs::service::{Owner, ServiceTable, Snapshot};
use xdpvs::stats::Counter;
use xdpvs::worker::{Shared, Worker, WorkerOptions, owner};

const OPTS: WorkerOptions = WorkerOptions {
    batch: 32,
    idle: Idle::Busy,
};

struct Bed {
    t: ServiceTable,
    shared: Arc<Shared>,
    ws: Vec<Worker<MemIo>>,
    now: Tick,
}

impl Bed {
    fn new(t: ServiceTable) -> Bed {
        let shared = Arc::new(Shared::new(Arc::new(t.snapshot()), &[vec![0], vec![0]]));
        let ws = (0..2)
            .map(|i| {
                let socks = vec![(0, MemIo::default())];
                Worker::new(i, socks, pipeline(&t, 1024), Arc::clone(&shared), OPTS)
            })
            .collect();
        Bed {
            t,
            shared,
            ws,
            now: 1,
        }
    }

    fn snap(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Publishes the table's new snapshot, as the control thread does.
    fn publish(&mut self) {
        let next = self.t.next_snapshot_at(&self.snap(), self.now);
        self.shared.snapshot.store(Arc::new(next));
    }

    /// `p` arrives at worker `rx`; rounds until nothing moves (bounded).
    /// Returns what was transmitted, by any worker.
    fn send(&mut self, rx: usize, p: &Pkt) -> Vec<Vec<u8>> {
        self.ws[rx].io(0).unwrap().rx.push_back(p.bytes());
        for _ in 0..16 {
            let mut work = 0;
            for w in &mut self.ws {
                work += w.round(self.now);
            }
            if work == 0 {
                break;
            }
        }
        self.ws
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.io(0).unwrap().sent))
            .collect()
    }

    fn created(&mut self, w: usize) -> u64 {
        self.ws[w].publish();
        self.shared.stats(w).get(Counter::ConnsCreated)
    }
}

/// The owner of `p` arriving at worker `rx` under `snap`'s current rule.
fn owner_of(snap: &Snapshot, p: &Pkt, rx: usize) -> usize {
    let (proto, sport, dport) = match p.l4 {
        L4::Tcp { .. } => (6, p.sport, p.dport),
        L4::Udp { .. } => (17, p.sport, p.dport),
    };
    let k = FlowKey {
        proto,
        saddr: p.src,
        sport,
        daddr: p.dst,
        dport,
    };
    match snap.steering.owner(&k) {
        Owner::Received => rx,
        Owner::Client(a, port) => owner(a, port, 2),
    }
}

fn tcp(flags: u8, seq: u32) -> L4 {
    L4::Tcp { flags, seq }
}

/// The client's packet to VIP_NAT:`dport`.
fn from_client(client: Ipv4Addr, sport: u16, dport: u16, l4: L4) -> Pkt {
    Pkt {
        src: client,
        sport,
        dst: VIP_NAT,
        dport,
        l4,
        ..Pkt::default()
    }
}

/// Real server `rip`:`rport`'s packet to the client.
fn from_real(rip: Ipv4Addr, rport: u16, client: Ipv4Addr, cport: u16, l4: L4) -> Pkt {
    Pkt {
        src_mac: mac_of(rip),
        src: rip,
        sport: rport,
        dst: client,
        dport: cport,
        l4,
        ..Pkt::default()
    }
}

fn dst_of(out: &[u8]) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(out[30], out[31], out[32], out[33]),
        u16::from_be_bytes([out[36], out[37]]),
    )
}

fn src_of(out: &[u8]) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(out[26], out[27], out[28], out[29]),
        u16::from_be_bytes([out[34], out[35]]),
    )
}

/// A change of the service table that changes the steering rule.
type Change = fn(&mut ServiceTable);

fn add_persistent_dr(t: &mut ServiceTable) {
    let mut s = service(Protocol::Tcp, "198.18.1.5:80", "rr");
    s.persistence_timeout = 300;
    t.add_service(&s).unwrap();
    t.add_dest(
        Protocol::Tcp,
        "198.18.1.5:80".parse().unwrap(),
        &real("198.18.2.11:80", Forward::Dr, 1),
    )
    .unwrap();
}

fn add_ftp_nat(t: &mut ServiceTable) {
    let vip: SocketAddr = "198.18.1.6:21".parse().unwrap();
    t.add_service(&service(Protocol::Tcp, "198.18.1.6:21", "rr"))
        .unwrap();
    t.add_dest(Protocol::Tcp, vip, &real("198.18.2.31:21", Forward::Nat, 1))
        .unwrap();
}

fn widen_mask(t: &mut ServiceTable) {
    let mut s = service(Protocol::Tcp, "198.18.1.5:80", "rr");
    s.persistence_timeout = 300;
    s.persistence_netmask = Ipv4Addr::new(255, 255, 0, 0);
    t.edit_service(&s).unwrap();
}

/// A client address and port whose NAT connection to VIP_NAT:`dport` is
/// owned by different workers before and after `change` (on a table set
/// up by `initial`).
fn moving_flow(initial: &[Change], change: Change, dport: u16, l4: L4) -> (Ipv4Addr, u16) {
    let before = table(initial).snapshot();
    let mut after = table(initial);
    change(&mut after);
    let after = after.snapshot();
    for host in 10..60u8 {
        for sport in 40000..40050u16 {
            let p = from_client(Ipv4Addr::new(198, 18, 0, host), sport, dport, l4);
            if owner_of(&before, &p, 0) != owner_of(&after, &p, 0) {
                return (p.src, sport);
            }
        }
    }
    panic!("no flow changes owner");
}

/// The test director, changed by `initial`.
fn table(initial: &[Change]) -> ServiceTable {
    let mut t = director();
    for c in initial {
        c(&mut t);
    }
    t
}

/// VIP_NAT:80 persistent, so that its template matters.
fn persistent_nat(t: &mut ServiceTable) {
    let mut s = service(Protocol::Tcp, "198.18.1.3:80", "rr");
    s.persistence_timeout = 600;
    t.edit_service(&s).unwrap();
}

/// A TCP NAT connection established under the first rule keeps working in
/// both directions, from either worker, after `change`; no second
/// connection is opened for it, and a new connection opens at its owner
/// under the new rule.
fn tcp_survives(initial: &[Change], change: Change) {
    let mut b = Bed::new(table(initial));
    let (client, cport) = moving_flow(initial, change, 80, tcp(SYN, 1));
    let old = owner_of(&b.snap(), &from_client(client, cport, 80, tcp(SYN, 1)), 0);
    let out = b.send(0, &from_client(client, cport, 80, tcp(SYN, 1000)));
    assert_eq!(out.len(), 1, "SYN forwarded");
    let (rip, rport) = dst_of(&out[0]);
    assert_eq!(rport, 8080);
    let out = b.send(
        1,
        &from_real(rip, rport, client, cport, tcp(SYN | ACK, 5000)),
    );
    assert_eq!(src_of(&out[0]), (VIP_NAT, 80), "SYN+ACK translated");
    assert_eq!((b.created(old), b.created(1 - old)), (1, 0));

    change(&mut b.t);
    b.publish();
    let moved = owner_of(&b.snap(), &from_client(client, cport, 80, tcp(ACK, 1)), 0);
    assert_ne!(moved, old, "the change moves this flow's owner");
    assert!(!b.snap().steer_history.is_empty());

    for (i, rx) in [0, 1, 1, 0].into_iter().enumerate() {
        let seq = 1001 + 100 * i as u32;
        let out = b.send(rx, &from_client(client, cport, 80, tcp(ACK | PSH, seq)));
        assert_eq!(
            out.len(),
            1,
            "client's data at worker {rx} reaches the server"
        );
        assert_eq!(dst_of(&out[0]), (rip, rport));
        let out = b.send(rx, &from_real(rip, rport, client, cport, tcp(ACK, 5001)));
        assert_eq!(
            out.len(),
            1,
            "server's reply at worker {rx} reaches the client"
        );
        assert_eq!(src_of(&out[0]), (VIP_NAT, 80));
        assert_eq!(dst_of(&out[0]), (client, cport));
    }
    assert_eq!(b.created(old) + b.created(moved), 1, "no second connection");
    let chained: u64 = (0..2)
        .map(|w| b.shared.stats(w).get(Counter::HandoffChained))
        .sum();
    assert!(
        chained >= 8,
        "each packet went on to the old owner: {chained}"
    );

    // A new connection of another client port opens at the new owner.
    let p2 = (cport + 1..)
        .find(|&p| owner_of(&b.snap(), &from_client(client, p, 80, tcp(SYN, 1)), 0) == moved)
        .unwrap();
    let out = b.send(old, &from_client(client, p2, 80, tcp(SYN, 7)));
    assert_eq!(out.len(), 1);
    assert_eq!(b.created(moved), 1, "opened by the new owner");
}

#[test]
fn tcp_nat_survives_the_first_persistent_service() {
    tcp_survives(&[], add_persistent_dr);
}

#[test]
fn tcp_nat_survives_the_first_ftp_nat_service() {
    tcp_survives(&[], add_ftp_nat);
}

#[test]
fn tcp_nat_survives_a_wider_netmask() {
    tcp_survives(&[add_persistent_dr], widen_mask);
}

/// UDP opens a connection for any datagram without one: after the
/// change, the client's next datagram finds its connection at the old
/// owner (same real server, nothing opened), and a new flow still opens
/// at the new owner.
#[test]
fn udp_nat_flow_keeps_its_connection_and_new_flows_open_at_the_new_owner() {
    let udp = L4::Udp { checksum: true };
    let mut b = Bed::new(table(&[]));
    let (client, cport) = moving_flow(&[], add_persistent_dr, 53, udp);
    let old = owner_of(&b.snap(), &from_client(client, cport, 53, udp), 0);
    let out = b.send(1, &from_client(client, cport, 53, udp));
    assert_eq!(out.len(), 1);
    let (rip, rport) = dst_of(&out[0]);
    add_persistent_dr(&mut b.t);
    b.publish();
    let moved = owner_of(&b.snap(), &from_client(client, cport, 53, udp), 0);
    assert_ne!(moved, old);
    for rx in [0, 1] {
        let out = b.send(rx, &from_client(client, cport, 53, udp));
        assert_eq!(out.len(), 1);
        assert_eq!(dst_of(&out[0]), (rip, rport));
        let out = b.send(rx, &from_real(rip, rport, client, cport, udp));
        assert_eq!(src_of(&out[0]), (VIP_NAT, 53));
    }
    assert_eq!(b.created(old) + b.created(moved), 1, "no second connection");
    let p2 = (cport + 1..)
        .find(|&p| owner_of(&b.snap(), &from_client(client, p, 53, udp), 0) == moved)
        .unwrap();
    let out = b.send(old, &from_client(client, p2, 53, udp));
    assert_eq!(out.len(), 1);
    assert_eq!(b.created(moved), 1, "a new flow opens at the new owner");
    assert_eq!(b.created(old), 1);
}

/// A persistent NAT service's client: its template sits at the owner
/// under the old mask; after the mask widens, its next connection (a SYN,
/// arriving at either worker) still gets the template's real server.
#[test]
fn a_persistent_clients_new_connection_finds_its_template_at_the_old_owner() {
    let initial: [Change; 2] = [add_persistent_dr, persistent_nat];
    let mut b = Bed::new(table(&initial));
    let (client, cport) = moving_flow(&initial, widen_mask, 80, tcp(SYN, 1));
    let old = owner_of(&b.snap(), &from_client(client, cport, 80, tcp(SYN, 1)), 0);
    let out = b.send(0, &from_client(client, cport, 80, tcp(SYN, 1000)));
    let (rip, _) = dst_of(&out[0]);
    widen_mask(&mut b.t);
    b.publish();
    for (i, rx) in [0usize, 1, 0, 1].into_iter().enumerate() {
        let out = b.send(
            rx,
            &from_client(client, cport + 100 + i as u16, 80, tcp(SYN, 9)),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(dst_of(&out[0]).0, rip, "the template's real server");
    }
    // Template + 1 + 4 connections, all in the old owner's table.
    assert_eq!(b.ws[old].pipeline().conns().len(), 6);
    assert_eq!(b.ws[1 - old].pipeline().conns().len(), 0);
}

/// An old rule is kept while connections may live under it: past its
/// keep time without use it is dropped at the next snapshot; a connection
/// found through it keeps it.
#[test]
fn old_rules_expire_unless_used() {
    let mut b = Bed::new(table(&[]));
    let (client, cport) = moving_flow(&[], add_persistent_dr, 80, tcp(SYN, 1));
    let out = b.send(0, &from_client(client, cport, 80, tcp(SYN, 1000)));
    let (rip, rport) = dst_of(&out[0]);
    b.send(
        1,
        &from_real(rip, rport, client, cport, tcp(SYN | ACK, 5000)),
    );
    add_persistent_dr(&mut b.t);
    b.publish();
    let keep = b.snap().steer_keep;
    assert!(keep > 900, "the longest timeout and a margin");
    assert_eq!(b.snap().steer_history.len(), 1);
    // Used at 50 (found through the old rule): kept until 50 + keep.
    b.now = 50;
    let out = b.send(0, &from_client(client, cport, 80, tcp(ACK, 1001)));
    assert_eq!(out.len(), 1);
    b.now = 50 + keep;
    b.publish();
    assert_eq!(b.snap().steer_history.len(), 1, "kept: used at 50");
    b.now += 1;
    b.publish();
    assert!(
        b.snap().steer_history.is_empty(),
        "dropped: unused for `keep`"
    );
    assert!(b.snap().handover, "the new rule still steers (NAT)");
}

/// An edit that does not change any owner (a weight) keeps the rule and
/// adds no history.
#[test]
fn edits_that_do_not_move_owners_keep_the_rule() {
    let mut b = Bed::new(table(&[]));
    let g = b.snap().steering.generation;
    let vip: SocketAddr = "198.18.1.3:80".parse().unwrap();
    b.t.edit_dest(
        Protocol::Tcp,
        vip,
        &real("198.18.2.31:8080", Forward::Nat, 5),
    )
    .unwrap();
    b.publish();
    assert_eq!(b.snap().steering.generation, g);
    assert!(b.snap().steer_history.is_empty());
}

/// A VLAN-tagged NAT frame is handed to the same owner as the untagged
/// one (the hand-over parses frames as the pipeline does), in both
/// directions.
#[test]
fn vlan_tagged_nat_frames_are_handed_to_the_owner() {
    let mut b = Bed::new(table(&[]));
    let cport = (40000..)
        .find(|&p| owner(CLIENT.octets(), p, 2) == 1)
        .unwrap();
    let mut syn = from_client(CLIENT, cport, 80, tcp(SYN, 1000));
    syn.vlan = Some(100);
    let out = b.send(0, &syn);
    assert_eq!(out.len(), 1);
    assert_eq!(b.ws[1].pipeline().conns().len(), 1, "opened by the owner");
    assert_eq!(b.ws[0].pipeline().conns().len(), 0);
    assert_eq!(&out[0][12..14], &[0x81, 0x00], "still tagged");
    let (rip, rport) = dst_of(&out[0][4..]);
    let mut reply = from_real(rip, rport, CLIENT, cport, tcp(SYN | ACK, 5));
    reply.vlan = Some(100);
    let out = b.send(0, &reply);
    assert_eq!(out.len(), 1, "the tagged reply reaches the connection");
    b.ws[0].publish();
    assert_eq!(b.shared.stats(0).get(Counter::HandoffSent), 2);
}

/// A director without NAT, persistence or FTP steers nothing: its changes
/// keep no old rule, so its workers never look at owners.
#[test]
fn a_dr_only_director_keeps_no_history() {
    let mut t = empty_director();
    let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
    t.add_service(&service(Protocol::Tcp, "198.18.1.1:80", "rr"))
        .unwrap();
    t.add_dest(Protocol::Tcp, vip, &real("198.18.2.11:80", Forward::Dr, 1))
        .unwrap();
    let mut b = Bed::new(t);
    let g = b.snap().steering.generation;
    b.t.add_service(&service(Protocol::Tcp, "198.18.1.7:443", "rr"))
        .unwrap();
    b.publish();
    assert_eq!(b.snap().steering.generation, g);
    assert!(b.snap().steer_history.is_empty());
    assert!(!b.snap().handover);
    // The first NAT real server does change the rule.
    b.t.add_dest(Protocol::Tcp, vip, &real("198.18.2.31:80", Forward::Nat, 1))
        .unwrap();
    b.publish();
    assert_eq!(b.snap().steering.generation, g + 1);
    assert_eq!(b.snap().steer_history.len(), 1);
}

/// A DR connection stays where RSS put it; when its service gains a NAT
/// real server (and so is steered from then on), its packets are taken
/// back to that worker, and go to the same real server.
#[test]
fn a_dr_connection_survives_its_service_gaining_a_nat_real() {
    let mut b = Bed::new(table(&[]));
    let (rx, cport) = (40000..)
        .map(|p| (owner(CLIENT.octets(), p, 2), p))
        .map(|(w, p)| (1 - w, p))
        .next()
        .unwrap();
    let syn = Pkt {
        dst: VIP_DR,
        sport: cport,
        ..Pkt::default()
    };
    let out = b.send(rx, &syn);
    assert_eq!(out.len(), 1);
    let mac = out[0][0..6].to_vec();
    assert_eq!(
        b.ws[rx].pipeline().conns().len(),
        1,
        "DR: opened where it arrived"
    );
    let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
    b.t.add_dest(Protocol::Tcp, vip, &real("198.18.2.31:80", Forward::Nat, 1))
        .unwrap();
    b.publish();
    for i in 0..3 {
        let out = b.send(
            rx,
            &Pkt {
                l4: tcp(ACK, 1001 + i),
                ..syn.clone()
            },
        );
        assert_eq!(out.len(), 1, "packet {i} forwarded");
        assert_eq!(out[0][0..6], mac[..], "to the same DR real server");
    }
    assert_eq!(b.created(rx) + b.created(1 - rx), 1);
}

/// FTP through NAT: the control connection and the helper's expectation
/// (from the 227 reply) sit at the client's owner; then a wider netmask
/// moves the client's owner. The passive data connection's SYN, at either
/// worker, still finds the expectation at the old owner, and its reply the
/// data connection there.
#[test]
fn an_ftp_data_connection_finds_its_expectation_at_the_old_owner() {
    let initial: [Change; 2] = [add_persistent_dr, |t: &mut ServiceTable| {
        let vip: SocketAddr = "198.18.1.3:21".parse().unwrap();
        t.add_service(&service(Protocol::Tcp, "198.18.1.3:21", "rr"))
            .unwrap();
        t.add_dest(Protocol::Tcp, vip, &real("198.18.2.31:21", Forward::Nat, 1))
            .unwrap();
    }];
    let mut b = Bed::new(table(&initial));
    let (client, cport) = moving_flow(&initial, widen_mask, 21, tcp(SYN, 1));
    let rip = Ipv4Addr::new(198, 18, 2, 31);
    let old = owner_of(&b.snap(), &from_client(client, cport, 21, tcp(SYN, 1)), 0);
    let out = b.send(1 - old, &from_client(client, cport, 21, tcp(SYN, 100)));
    assert_eq!(dst_of(&out[0]), (rip, 21));
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n".to_vec();
    let out = b.send(
        1 - old,
        &Pkt {
            payload: reply,
            ..from_real(rip, 21, client, cport, tcp(ACK | PSH, 5000))
        },
    );
    assert!(
        out[0].windows(10).any(|w| w == b"198,18,1,3"),
        "227 rewritten"
    );
    widen_mask(&mut b.t);
    b.publish();
    let moved = owner_of(&b.snap(), &from_client(client, cport, 21, tcp(ACK, 1)), 0);
    assert_ne!(moved, old);
    // The data connection to VIP:50000 (= 195 × 256 + 80).
    let dport = cport + 1;
    let out = b.send(moved, &from_client(client, dport, 50000, tcp(SYN, 7)));
    assert_eq!(out.len(), 1, "the data connection's SYN reaches the server");
    assert_eq!(dst_of(&out[0]), (rip, 50000));
    let out = b.send(
        moved,
        &from_real(rip, 50000, client, dport, tcp(SYN | ACK, 9)),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(src_of(&out[0]), (VIP_NAT, 50000));
    b.ws[old].publish();
    assert_eq!(b.shared.stats(old).get(Counter::FtpConns), 1);
    assert_eq!(b.ws[moved].pipeline().conns().len(), 0);
}
