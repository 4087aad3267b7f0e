//! Workers with an in-memory socket: hand-over of NAT packets to the
//! client's owner in both directions, DR staying where it arrived,
//! transmission on another port, full inboxes, snapshot pick-up.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::memio::MemIo;
use common::*;
use xdpvs::config::{Forward, Idle, Protocol};
use xdpvs::service::{Port, ServiceTable};
use xdpvs::stats::Counter;
use xdpvs::worker::{Shared, Worker, WorkerOptions, owner};

const OPTS: WorkerOptions = WorkerOptions {
    batch: 32,
    idle: Idle::Busy,
};

/// Workers on the ports `ports_of` (worker i on port ports_of[i]).
fn workers(t: &ServiceTable, ports_of: &[u8]) -> (Arc<Shared>, Vec<Worker<MemIo>>) {
    let lists: Vec<Vec<u8>> = ports_of.iter().map(|&p| vec![p]).collect();
    workers_on(t, &lists)
}

/// Workers with a socket on each port of `ports_of[i]`.
fn workers_on(t: &ServiceTable, ports_of: &[Vec<u8>]) -> (Arc<Shared>, Vec<Worker<MemIo>>) {
    let shared = Arc::new(Shared::new(Arc::new(t.snapshot()), ports_of));
    let ws = ports_of
        .iter()
        .enumerate()
        .map(|(i, ports)| {
            let socks = ports
                .iter()
                .map(|&port| {
                    let io = MemIo {
                        port,
                        ..MemIo::default()
                    };
                    (port, io)
                })
                .collect();
            Worker::new(i, socks, pipeline(t, 1024), Arc::clone(&shared), OPTS)
        })
        .collect();
    (shared, ws)
}

/// A client port whose NAT connections worker `w` of `n` owns.
fn port_owned_by(w: usize, n: usize) -> u16 {
    (40000..)
        .find(|&p| owner(CLIENT.octets(), p, n) == w)
        .unwrap()
}

#[test]
fn nat_packets_meet_at_the_clients_owner_in_both_directions() {
    let t = director();
    let (shared, mut ws) = workers(&t, &[0, 0]);
    let sport = port_owned_by(1, 2);
    let syn = Pkt {
        dst: VIP_NAT,
        sport,
        ..Pkt::default()
    };
    // The client's SYN arrives at worker 0, which is not the owner.
    ws[0].io(0).unwrap().rx.push_back(syn.bytes());
    assert_eq!(ws[0].round(1), 1);
    assert!(ws[0].io(0).unwrap().sent.is_empty());
    assert_eq!(ws[0].pipeline().conns().len(), 0);
    assert_eq!(ws[1].round(1), 1);
    let out = ws[1]
        .io(0)
        .unwrap()
        .sent
        .pop()
        .expect("the owner forwards it");
    let real = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
    let rport = u16::from_be_bytes([out[36], out[37]]);
    assert!(real == Ipv4Addr::new(198, 18, 2, 31) || real == Ipv4Addr::new(198, 18, 2, 32));
    assert_eq!(rport, 8080);
    assert_eq!(ws[1].pipeline().conns().len(), 1);

    // The real server's reply arrives at worker 0 too: handed over again.
    let reply = reply_from(real, 8080, sport);
    ws[0].io(0).unwrap().rx.push_back(reply.bytes());
    ws[0].round(1);
    assert!(ws[0].io(0).unwrap().sent.is_empty());
    ws[1].round(1);
    let back = ws[1]
        .io(0)
        .unwrap()
        .sent
        .pop()
        .expect("the owner translates the reply");
    assert_eq!(&back[26..30], &VIP_NAT.octets(), "source is the VIP again");
    assert_eq!(u16::from_be_bytes([back[34], back[35]]), 80);
    assert_eq!(&back[30..34], &CLIENT.octets());

    for w in &mut ws {
        w.publish();
    }
    let (c0, c1) = (shared.stats(0), shared.stats(1));
    assert_eq!(
        (
            c0.get(Counter::HandoffSent),
            c0.get(Counter::Rx),
            c0.get(Counter::Tx)
        ),
        (2, 0, 0)
    );
    assert_eq!(
        (
            c1.get(Counter::HandoffReceived),
            c1.get(Counter::Rx),
            c1.get(Counter::Tx)
        ),
        (2, 2, 2)
    );
    assert_eq!(
        c0.get(Counter::HandoffDropped) + c1.get(Counter::HandoffDropped),
        0
    );
}

#[test]
fn owner_handles_its_own_packets_without_a_hop() {
    let t = director();
    let (shared, mut ws) = workers(&t, &[0, 0]);
    let sport = port_owned_by(0, 2);
    ws[0].io(0).unwrap().rx.push_back(
        Pkt {
            dst: VIP_NAT,
            sport,
            ..Pkt::default()
        }
        .bytes(),
    );
    ws[0].round(1);
    assert_eq!(ws[0].io(0).unwrap().sent.len(), 1);
    ws[0].publish();
    assert_eq!(shared.stats(0).get(Counter::HandoffSent), 0);
}

#[test]
fn dr_and_tun_flows_stay_where_they_arrived() {
    let t = director();
    let (_shared, mut ws) = workers(&t, &[0, 0]);
    for (vip, w) in [(VIP_DR, 1), (VIP_TUN, 1), (VIP_DR, 0)] {
        let sport = port_owned_by(1 - w, 2);
        ws[w].io(0).unwrap().rx.push_back(
            Pkt {
                dst: vip,
                sport,
                ..Pkt::default()
            }
            .bytes(),
        );
        ws[w].round(1);
        assert_eq!(ws[w].io(0).unwrap().sent.len(), 1, "{vip} on worker {w}");
        ws[w].io(0).unwrap().sent.clear();
    }
}

/// The server-side port's MAC of [`two_armed`].
const SERVER_SIDE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 2];
/// The real server of [`two_armed`], behind port 1.
const FAR_REAL: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 11);

/// A two-armed director: clients on port 0, one real server
/// ([`FAR_REAL`]:80, `fwd`) behind port 1, for the TCP service `vip`:80.
fn two_armed(vip: Ipv4Addr, fwd: Forward) -> ServiceTable {
    let mut t = ServiceTable::new(
        vec![
            Port {
                mac: DIRECTOR_MAC,
                mtu: MTU,
                complete_checksums: false,
            },
            Port {
                mac: SERVER_SIDE_MAC,
                mtu: MTU,
                complete_checksums: false,
            },
        ],
        Some(TUNNEL_SRC),
        Default::default(),
    );
    let vip = format!("{vip}:80");
    t.add_service(&service(Protocol::Tcp, &vip, "rr")).unwrap();
    t.add_dest(
        Protocol::Tcp,
        vip.parse().unwrap(),
        &real(&format!("{FAR_REAL}:80"), fwd, 1),
    )
    .unwrap();
    t.set_next_hop(IpAddr::V4(FAR_REAL), 1, mac_of(FAR_REAL));
    t
}

/// A real server's reply (SYN+ACK) from `rip`:`rport` to the client's port
/// `cport`.
fn reply_from(rip: Ipv4Addr, rport: u16, cport: u16) -> Pkt {
    Pkt {
        src_mac: mac_of(rip),
        src: rip,
        sport: rport,
        dst: CLIENT,
        dport: cport,
        l4: L4::Tcp {
            flags: SYN | ACK,
            seq: 5000,
        },
        ..Pkt::default()
    }
}

#[test]
fn frames_for_another_port_are_sent_by_a_worker_there() {
    let t = two_armed(VIP_DR, Forward::Dr);
    let rip = FAR_REAL;
    let (shared, mut ws) = workers(&t, &[0, 1]);
    ws[0].io(0).unwrap().rx.push_back(Pkt::default().bytes());
    ws[0].round(1);
    assert!(ws[0].io(0).unwrap().sent.is_empty());
    ws[1].round(1);
    let out = ws[1].io(1).unwrap().sent.pop().expect("sent out of port 1");
    assert_eq!(&out[0..6], &mac_of(rip));
    assert_eq!(&out[6..12], &SERVER_SIDE_MAC);
    ws[0].publish();
    assert_eq!(shared.stats(0).get(Counter::NoTxPort), 0);
}

#[test]
fn a_full_inbox_drops_and_counts_and_loses_no_buffer() {
    let t = director();
    let shared = Arc::new(Shared::with_slots(
        Arc::new(t.snapshot()),
        &[vec![0], vec![0]],
        4,
    ));
    let mut ws: Vec<Worker<MemIo>> = (0..2)
        .map(|i| {
            Worker::new(
                i,
                vec![(0, MemIo::default())],
                pipeline(&t, 1024),
                Arc::clone(&shared),
                OPTS,
            )
        })
        .collect();
    let sport = port_owned_by(1, 2);
    for k in 0..10 {
        let p = Pkt {
            dst: VIP_NAT,
            sport,
            l4: L4::Tcp { flags: SYN, seq: k },
            ..Pkt::default()
        };
        ws[0].io(0).unwrap().rx.push_back(p.bytes());
    }
    ws[0].round(1);
    ws[0].publish();
    let c = shared.stats(0);
    assert_eq!(
        (c.get(Counter::HandoffSent), c.get(Counter::HandoffDropped)),
        (4, 6)
    );
    // The owner drains them; the buffers return, so the next ones fit.
    ws[1].round(1);
    for _ in 0..4 {
        ws[0].io(0).unwrap().rx.push_back(
            Pkt {
                dst: VIP_NAT,
                sport,
                ..Pkt::default()
            }
            .bytes(),
        );
    }
    ws[0].round(1);
    ws[0].publish();
    assert_eq!(shared.stats(0).get(Counter::HandoffSent), 8);
}

#[test]
fn a_published_snapshot_is_used_from_the_next_round() {
    let mut t = director();
    let (shared, mut ws) = workers(&t, &[0]);
    let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
    t.del_service(Protocol::Tcp, vip).unwrap();
    shared.snapshot.store(Arc::new(t.snapshot()));
    ws[0].io(0).unwrap().rx.push_back(Pkt::default().bytes());
    ws[0].round(1);
    assert!(ws[0].io(0).unwrap().sent.is_empty(), "no service any more");
}

/// FTP through a NAT director with two workers: the control connection,
/// the 227 reply, the data connection and its replies arrive at either
/// worker, and still meet in the table that holds the helper's state.
#[test]
fn ftp_control_and_data_connections_meet_at_one_worker() {
    let mut t = empty_director();
    let vip: SocketAddr = "198.18.1.3:21".parse().unwrap();
    t.add_service(&service(Protocol::Tcp, "198.18.1.3:21", "rr"))
        .unwrap();
    let rip = Ipv4Addr::new(198, 18, 2, 31);
    t.add_dest(Protocol::Tcp, vip, &real("198.18.2.31:21", Forward::Nat, 1))
        .unwrap();
    t.set_next_hop(IpAddr::V4(rip), 0, mac_of(rip));
    assert!(t.snapshot().steer_by_client);
    let (shared, mut ws) = workers(&t, &[0, 0]);
    // Ports whose per-flow owners differ, so only the client-address rule
    // brings them together.
    let (cport, dport) = (port_owned_by(0, 2), port_owned_by(1, 2));
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n".to_vec();
    let steps: [(usize, Pkt); 4] = [
        (
            0,
            Pkt {
                dst: VIP_NAT,
                dport: 21,
                sport: cport,
                ..Pkt::default()
            },
        ),
        (
            1,
            Pkt {
                src: rip,
                sport: 21,
                dst: CLIENT,
                dport: cport,
                l4: L4::Tcp {
                    flags: ACK | PSH,
                    seq: 5000,
                },
                payload: reply,
                ..Pkt::default()
            },
        ),
        (
            1,
            Pkt {
                dst: VIP_NAT,
                dport: 50000,
                sport: dport,
                ..Pkt::default()
            },
        ),
        (
            0,
            Pkt {
                src: rip,
                sport: 50000,
                dst: CLIENT,
                dport,
                l4: L4::Tcp {
                    flags: SYN | ACK,
                    seq: 9,
                },
                ..Pkt::default()
            },
        ),
    ];
    let mut outs = Vec::new();
    for (w, pkt) in steps {
        ws[w].io(0).unwrap().rx.push_back(pkt.bytes());
        for _ in 0..2 {
            ws[0].round(1);
            ws[1].round(1);
        }
        let mut sent: Vec<Vec<u8>> = ws
            .iter_mut()
            .flat_map(|x| x.io(0).unwrap().sent.drain(..))
            .collect();
        assert_eq!(sent.len(), 1, "{pkt:?} forwarded once");
        outs.push(sent.pop().unwrap());
    }
    // The reply names the VIP; the data connection reaches RIP:50000 and
    // its reply comes from VIP:50000.
    assert!(
        outs[1].windows(10).any(|w| w == b"198,18,1,3"),
        "227 rewritten"
    );
    assert_eq!(&outs[2][30..34], &rip.octets());
    assert_eq!(&outs[2][36..38], &50000u16.to_be_bytes());
    assert_eq!(&outs[3][26..30], &VIP_NAT.octets());
    assert_eq!(&outs[3][34..36], &50000u16.to_be_bytes());
    let owner = owner(CLIENT.octets(), 0, 2);
    for w in &mut ws {
        w.publish();
    }
    assert_eq!(shared.stats(owner).get(Counter::ConnsCreated), 2);
    assert_eq!(shared.stats(1 - owner).get(Counter::ConnsCreated), 0);
}

/// A two-armed NAT director whose workers each have a socket on both
/// interfaces (queue q of each): the client's packet leaves by the server
/// side and the reply by the client side from the same worker, copied
/// between its own sockets, with no hand-over; a reply that arrives at
/// the other worker is handed to the owner, which sends it out of the
/// client side.
#[test]
fn a_worker_with_both_interfaces_forwards_between_them_itself() {
    let server_mac = SERVER_SIDE_MAC;
    let t = two_armed(VIP_NAT, Forward::Nat);
    let rip = FAR_REAL;
    let (shared, mut ws) = workers_on(&t, &[vec![0, 1], vec![0, 1]]);
    let sport = port_owned_by(0, 2);
    let syn = Pkt {
        dst: VIP_NAT,
        sport,
        ..Pkt::default()
    };
    ws[0].io(0).unwrap().rx.push_back(syn.bytes());
    ws[0].round(1);
    assert!(ws[0].io(0).unwrap().sent.is_empty());
    let out = ws[0]
        .io(1)
        .unwrap()
        .sent
        .pop()
        .expect("out of the server side");
    assert_eq!(
        (&out[0..6], &out[6..12]),
        (&mac_of(rip)[..], &server_mac[..])
    );
    assert_eq!(&out[30..34], &rip.octets());

    // The reply arrives at worker 1's server-side socket: handed to worker
    // 0, which sends it out of the client side.
    let reply = Pkt {
        dst_mac: server_mac,
        ..reply_from(rip, 80, sport)
    };
    ws[1].io(1).unwrap().rx.push_back(reply.bytes());
    ws[1].round(1);
    ws[0].round(1);
    let back = ws[0]
        .io(0)
        .unwrap()
        .sent
        .pop()
        .expect("out of the client side");
    assert_eq!(
        (&back[0..6], &back[6..12]),
        (&ROUTER_MAC[..], &DIRECTOR_MAC[..])
    );
    assert_eq!(&back[26..30], &VIP_NAT.octets());
    for w in &mut ws {
        w.publish();
    }
    let (c0, c1) = (shared.stats(0), shared.stats(1));
    assert_eq!(
        (
            c0.get(Counter::Tx),
            c0.get(Counter::HandoffSent),
            c0.get(Counter::HandoffReceived)
        ),
        (2, 0, 1)
    );
    assert_eq!((c1.get(Counter::Tx), c1.get(Counter::HandoffSent)), (0, 1));
}

/// Item 5 of issue 12: through the worker loop with a simulated clock,
/// new UDP flows at `RATE` a second with a 2 s timeout into a table of
/// 8192: expiry keeps up (reaping grows with insertions), so no flow is
/// refused and occupancy stays at rate x timeout. (The loop before
/// reaped at most 256 entries a second when busy: the table filled in
/// three seconds.)
#[test]
fn expiry_keeps_up_with_a_flood_of_new_flows() {
    const RATE: u32 = 3000;
    const TIMEOUT: u32 = 2;
    const CAP: u32 = 8192;
    let mut t = director();
    t.set_timeouts(0, 0, TIMEOUT);
    t.set_defense(xdpvs::conn::Defense {
        unreplied_share: 1_000_000,
        ..xdpvs::conn::Defense::default()
    });
    let shared = Arc::new(Shared::new(Arc::new(t.snapshot()), &[vec![0]]));
    let io = MemIo::default();
    let mut w = Worker::new(0, vec![(0, io)], pipeline(&t, CAP), shared, OPTS);
    let mut n = 0u32;
    for now in 1..=30u32 {
        let io = w.io(0).unwrap();
        io.sent.clear();
        for _ in 0..RATE {
            n += 1;
            let p = Pkt {
                src: Ipv4Addr::from_bits(0xc612_4000 | (n >> 16 & 0xff)),
                sport: n as u16,
                dst: VIP_NAT,
                dport: 53,
                l4: common::L4::Udp { checksum: true },
                ..Pkt::default()
            };
            io.rx.push_back(p.bytes());
        }
        // Bounded: each step takes a batch.
        for _ in 0..RATE {
            if w.step(now) == 0 {
                break;
            }
        }
        assert!(w.io(0).unwrap().rx.is_empty());
        let pl = w.pipeline();
        let pl_len = pl.conns().len();
        assert_eq!(
            pl.stats().dropped(xdpvs::frame::DropReason::TableFull),
            0,
            "second {now}"
        );
        if now > TIMEOUT {
            // The flows of the last TIMEOUT seconds, and those that are
            // due this second already reaped.
            assert_eq!(pl_len, RATE * TIMEOUT, "second {now}");
        }
    }
    let s = w.pipeline().stats();
    assert_eq!(s.get(Counter::ConnsCreated), u64::from(30 * RATE));
    assert_eq!(s.get(Counter::ConnsReclaimed), 0, "expiry alone kept up");
}

/// Issue 13, item 2: workers on sockets under pressure — a TX ring with
/// room for a few frames a batch, injects that find a few free chunks —
/// account for every frame: received = transmitted + dropped for a full
/// TX ring + dropped by the pipeline + not ours + hand-overs dropped (the
/// worker's own `handoff_dropped`, which covers the short injects).
#[test]
fn a_socket_under_pressure_accounts_for_every_frame() {
    use common::faultio::{FaultIo, Tally};
    let t = director();
    let shared = Arc::new(Shared::new(Arc::new(t.snapshot()), &[vec![0], vec![0]]));
    let mut ws: Vec<Worker<FaultIo>> = (0..2)
        .map(|i| {
            Worker::new(
                i,
                vec![(0, FaultIo::new(0))],
                pipeline(&t, 4096),
                Arc::clone(&shared),
                OPTS,
            )
        })
        .collect();
    ws[0].io(0).unwrap().tx_room = Some(5);
    ws[1].io(0).unwrap().tx_room = Some(7);
    ws[0].io(0).unwrap().inject_room = Some(2);
    ws[1].io(0).unwrap().inject_room = Some(3);
    // NAT SYNs (handed to the client's owner half the time), DR SYNs
    // (stay), and truncated frames (dropped), arriving at both workers.
    let mut n = 0u64;
    for i in 0..600u16 {
        let p = Pkt {
            dst: if i % 3 == 0 { VIP_DR } else { VIP_NAT },
            sport: 20000 + i,
            ..Pkt::default()
        };
        let mut bytes = p.bytes();
        if i % 25 == 0 {
            bytes.truncate(30);
        }
        ws[usize::from(i % 2)].io(0).unwrap().io.rx.push_back(bytes);
        n += 1;
    }
    let mut rounds = 0;
    loop {
        let work: usize = ws.iter_mut().map(|w| w.round(1)).sum();
        rounds += 1;
        let queued: usize = ws.iter_mut().map(|w| w.io(0).unwrap().io.rx.len()).sum();
        if work == 0 && queued == 0 {
            break;
        }
        assert!(rounds < 1000, "the workers never drained their queues");
    }
    for w in &mut ws {
        w.publish();
    }
    let tallies: Vec<Tally> = ws.iter_mut().map(|w| w.io(0).unwrap().tally).collect();
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let counter = |c: Counter| shared.stats(0).get(c) + shared.stats(1).get(c);
    let (rx, tx, tx_full) = (sum(|t| t.rx), sum(|t| t.tx), sum(|t| t.tx_full));
    let (dropped, not_ours, refused) =
        (sum(|t| t.dropped), sum(|t| t.not_ours), sum(|t| t.refused));
    let handoff_dropped = counter(Counter::HandoffDropped);
    eprintln!("{tallies:?}; handoff_dropped {handoff_dropped}");
    assert_eq!(rx, n);
    // The faults happened.
    assert!(tx_full > 0 && refused > 0 && dropped > 0, "{tallies:?}");
    // Every short inject is a counted hand-over drop (the inboxes never
    // filled), and every hand-over was injected or dropped.
    assert_eq!(handoff_dropped, refused);
    assert_eq!(
        sum(|t| t.handed),
        sum(|t| t.injected) + handoff_dropped,
        "{tallies:?}"
    );
    assert_eq!(
        rx,
        tx + tx_full + dropped + not_ours + handoff_dropped,
        "frames in = transmitted + dropped + not ours; {tallies:?}"
    );
    let sent: usize = ws.iter_mut().map(|w| w.io(0).unwrap().io.sent.len()).sum();
    assert_eq!(sent as u64, tx);
}
