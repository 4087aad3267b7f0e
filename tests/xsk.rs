//! AF_XDP end to end, between two namespaces on a two-queue veth pair:
//! the steering program sends exactly the VIP's traffic to the sockets (one
//! per queue) while everything else reaches the kernel; rules change live;
//! frames transmitted from the sockets arrive and the sockets' counters
//! say so; a queue another socket has just let go of is bound again, one
//! another socket holds is refused clearly after a bounded wait. Needs
//! root.

mod netns;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netns::{ADDR_A, ADDR_B, VethPair};
use xdpvs::config::{XdpMode, ZeroCopy};
use xdpvs::frame::{DropReason, Frame, Verdict};
use xdpvs::service::SteerRules;
use xdpvs::xsk::steer::{SteerStats, Steering};
use xdpvs::xsk::{BUSY_WAIT, XdpKernelStats, Xsk, XskConfig, XskError, XskStats};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP_PORT: u16 = 9000;

enum Cmd {
    Rules(SteerRules, mpsc::Sender<()>),
    Stats(mpsc::Sender<SteerStats>),
    /// Each socket's (zero-copy, own counters, kernel counters).
    Counters(mpsc::Sender<Vec<(bool, XskStats, XdpKernelStats)>>),
    Stop,
}

fn vip_rules() -> SteerRules {
    SteerRules {
        vips: vec![(17, VIP, VIP_PORT)],
        nat_reals: vec![(6, Ipv4Addr::new(198, 18, 0, 50), 80)],
        ..SteerRules::default()
    }
}

/// Echoes frames whose sequence number (first payload word) is even back
/// to their sender, with addresses and ports swapped; drops the others.
fn echo_even(frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
    for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()) {
        let d = f.data_mut();
        if d.len() < 46 || u32::from_be_bytes([d[42], d[43], d[44], d[45]]) % 2 == 1 {
            *v = Verdict::Drop(DropReason::Malformed);
            continue;
        }
        for (a, b, n) in [(0, 6, 6), (26, 30, 4), (34, 36, 2)] {
            for i in 0..n {
                d.swap(a + i, b + i);
            }
        }
        // Datagrams sent by a local socket over veth carry only a partial
        // checksum (offloaded); none at all is valid for UDP over IPv4.
        d[40..42].fill(0);
        *v = Verdict::Tx {
            port: 0,
            len: f.len(),
        };
    }
}

/// The director side: steering plus one socket per queue, serviced until
/// told to stop.
fn dut(
    ns: String,
    ifname: String,
    rx: [Arc<AtomicU64>; 2],
    cmds: mpsc::Receiver<Cmd>,
    ready: mpsc::Sender<()>,
) {
    VethPair::enter(&ns);
    let (mut steer, info) = Steering::attach(&ifname, XdpMode::Auto).expect("attach");
    assert!(!info.replaced_stale);
    let mut socks = Vec::new();
    for q in 0..2 {
        let mut cfg = XskConfig::new(&ifname, q);
        cfg.frames = 1024;
        cfg.zero_copy = ZeroCopy::Auto;
        let x = Xsk::open(&cfg, 0).expect("socket");
        steer.register_socket(q, x.as_raw_fd()).expect("register");
        socks.push(x);
    }
    steer.set_rules(&vip_rules()).expect("rules");
    ready.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        match cmds.try_recv() {
            Ok(Cmd::Rules(r, done)) => {
                steer.set_rules(&r).expect("rules");
                done.send(()).unwrap();
            }
            Ok(Cmd::Stats(reply)) => reply.send(steer.stats().expect("stats")).unwrap(),
            Ok(Cmd::Counters(reply)) => reply
                .send(
                    socks
                        .iter()
                        .map(|x| {
                            let k = x.kernel_stats().expect("XDP_STATISTICS");
                            (x.zero_copy(), x.stats(), k)
                        })
                        .collect(),
                )
                .unwrap(),
            Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        for (q, x) in socks.iter_mut().enumerate() {
            let n = x.rx_batch(64, echo_even);
            rx[q].fetch_add(n as u64, Ordering::Relaxed);
            x.service();
            let (total, counted) = x.frame_accounting();
            assert_eq!(total, counted);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct Client {
    socks: Vec<UdpSocket>,
    seq: u32,
}

impl Client {
    fn new() -> Client {
        let socks = (0..16)
            .map(|_| {
                let s = UdpSocket::bind((ADDR_B, 0)).expect("bind");
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        Client { socks, seq: 0 }
    }

    /// Sends `n` datagrams to `to`, spread over the sockets, paced.
    fn send(&mut self, to: (Ipv4Addr, u16), n: u32) {
        for i in 0..n {
            let mut payload = [0u8; 32];
            payload[..4].copy_from_slice(&self.seq.to_be_bytes());
            self.seq += 1;
            let s = &self.socks[i as usize % self.socks.len()];
            s.send_to(&payload, to).expect("send");
            if i % 16 == 15 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Echoes received within `wait`, stopping early at `want`.
    fn echoes(&self, want: u32, wait: Duration) -> u32 {
        let mut got = 0;
        let mut buf = [0u8; 64];
        let t = Instant::now();
        while got < want && t.elapsed() < wait {
            for s in &self.socks {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    assert_eq!(from, (VIP, VIP_PORT).into());
                    assert_eq!(n, 32);
                    assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()) % 2, 0);
                    got += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }
}

fn total(rx: &[Arc<AtomicU64>; 2]) -> u64 {
    rx[0].load(Ordering::Relaxed) + rx[1].load(Ordering::Relaxed)
}

fn wait_total(rx: &[Arc<AtomicU64>; 2], want: u64) -> u64 {
    let t = Instant::now();
    while total(rx) < want && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Anything beyond `want` would arrive shortly after.
    std::thread::sleep(Duration::from_millis(50));
    total(rx)
}

#[test]
fn steering_and_echo_between_namespaces() {
    let veth = VethPair::new("e");
    let rx = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let d = {
        let (ns, ifname, rx) = (veth.a.clone(), veth.ia.clone(), rx.clone());
        std::thread::spawn(move || dut(ns, ifname, rx, cmd_rx, ready_tx))
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("director side did not come up");
    let stats = || {
        let (tx, r) = mpsc::channel();
        cmd_tx.send(Cmd::Stats(tx)).unwrap();
        r.recv_timeout(Duration::from_secs(2)).unwrap()
    };
    let set_rules = |rules: SteerRules| {
        let (tx, r) = mpsc::channel();
        cmd_tx.send(Cmd::Rules(rules, tx)).unwrap();
        r.recv_timeout(Duration::from_secs(2)).unwrap();
    };

    VethPair::enter(&veth.b);
    // The VIP lives on no interface; B reaches it through A's MAC.
    assert!(VethPair::exec(
        &veth.b,
        &[
            "ip",
            "neigh",
            "add",
            "198.18.0.100",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            &veth.ib
        ]
    ));
    let mut client = Client::new();

    // VIP traffic reaches the sockets, on both queues; half comes back.
    client.send((VIP, VIP_PORT), 800);
    assert_eq!(wait_total(&rx, 800), 800, "VIP datagrams at the sockets");
    let per_queue = [rx[0].load(Ordering::Relaxed), rx[1].load(Ordering::Relaxed)];
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "one queue got nothing: {per_queue:?}"
    );
    assert_eq!(client.echoes(400, Duration::from_secs(3)), 400, "echoes");

    // Everything else stays with the kernel while the program is attached.
    let passed = stats().passed;
    assert!(
        VethPair::exec(
            &veth.b,
            &[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                &ADDR_A.to_string()
            ]
        ),
        "ping to the director's own address failed while steering was attached"
    );
    client.send((ADDR_A, VIP_PORT), 100);
    client.send((VIP, VIP_PORT + 1), 100);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(total(&rx), 800, "non-VIP traffic reached the sockets");
    let s = stats();
    assert!(s.passed >= passed + 200, "{s:?}");
    assert_eq!(s.redirected, 800, "{s:?}");

    // Live rule changes: without the VIP its traffic goes to the kernel…
    set_rules(SteerRules::default());
    client.send((VIP, VIP_PORT), 100);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        total(&rx),
        800,
        "traffic to a removed VIP reached the sockets"
    );
    // …and with it back, to the sockets again.
    set_rules(vip_rules());
    client.send((VIP, VIP_PORT), 100);
    assert_eq!(wait_total(&rx, 900), 900, "VIP datagrams after re-adding");
    assert_eq!(
        client.echoes(50, Duration::from_secs(3)),
        50,
        "echoes after re-adding"
    );

    // The sockets' counters: every frame received counted once, every echo
    // (the even half: 400 + 50) placed on the TX ring once, nothing refused.
    let counters = {
        let (tx, r) = mpsc::channel();
        cmd_tx.send(Cmd::Counters(tx)).unwrap();
        r.recv_timeout(Duration::from_secs(2)).unwrap()
    };
    eprintln!("{counters:#?}");
    let sum = |f: fn(&XskStats) -> u64| counters.iter().map(|(_, s, _)| f(s)).sum::<u64>();
    assert_eq!(sum(|s| s.rx), total(&rx), "rx counts the frames received");
    assert_eq!(sum(|s| s.tx), 450, "tx counts the echoes put on the ring");
    assert_eq!(sum(|s| s.tx_ring_full), 0);
    assert_eq!(sum(|s| s.invalid_descriptors + s.lost_chunks), 0);
    for (zero_copy, s, k) in &counters {
        assert_eq!((k.rx_invalid_descs, k.tx_invalid_descs), (0, 0), "{k:?}");
        // Copy mode transmits only from sendto.
        if !zero_copy && s.tx > 0 {
            assert!(s.tx_kicks > 0, "{s:?}");
        }
    }

    cmd_tx.send(Cmd::Stop).unwrap();
    d.join().expect("director side");
}

fn attached(ns: &str, ifname: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", "dev", ifname])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A program left attached through netlink (as by an older, crashed
/// daemon) is replaced when it is ours and refused when it is not; our own
/// attachment goes away with the `Steering`.
#[test]
fn stale_program_replaced_foreign_refused() {
    let veth = VethPair::new("s");
    let obj = concat!(env!("OUT_DIR"), "/xdpvs_steer.bpf.o");
    let load = |obj: &str| {
        assert!(VethPair::exec(
            &veth.a,
            &[
                "ip",
                "link",
                "set",
                "dev",
                &veth.ia,
                "xdpgeneric",
                "obj",
                obj,
                "sec",
                "xdp"
            ]
        ));
    };
    VethPair::enter(&veth.a);

    load(obj);
    assert!(attached(&veth.a, &veth.ia).contains("xdpvs_steer"));
    let (steer, info) = Steering::attach(&veth.ia, XdpMode::Generic).expect("replace stale");
    assert!(info.replaced_stale && !info.native);
    drop(steer);
    assert!(
        !attached(&veth.a, &veth.ia).contains("prog/xdp"),
        "program left attached after drop"
    );

    let dir = std::env::temp_dir().join(format!("xdpvs-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("other.c");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp\") int other_prog(struct xdp_md *c) { return XDP_PASS; }\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n",
    )
    .unwrap();
    let other = dir.join("other.o");
    let arch = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let ok = std::process::Command::new("clang")
        .args(["-O2", "-target", "bpf", &arch, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&other)
        .status()
        .expect("clang")
        .success();
    assert!(ok, "clang could not build the foreign test program");
    load(other.to_str().unwrap());
    let err = Steering::attach(&veth.ia, XdpMode::Auto)
        .err()
        .expect("attached over a foreign program");
    let _ = std::fs::remove_dir_all(&dir);
    let msg = err.to_string();
    assert!(
        msg.contains(&veth.ia) && msg.contains("other_prog"),
        "unexpected error: {msg}"
    );
    assert!(attached(&veth.a, &veth.ia).contains("other_prog"));
}

/// Issue 12, item 16: the kernel frees a closed socket's hold on its queue
/// in deferred work, so a bind right after a close is refused with EBUSY
/// for a moment (before the retry, nearly every time on veth). Binding
/// again at once — after a plain socket, and after one an XDP program's
/// XSKMAP held — must succeed every time.
#[test]
fn a_queue_just_let_go_of_binds_again_at_once() {
    let veth = VethPair::new("r");
    let (ns, ifname) = (veth.a.clone(), veth.ia.clone());
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        let mut cfg = XskConfig::new(&ifname, 0);
        cfg.zero_copy = ZeroCopy::Off;
        for round in 0..10 {
            drop(Xsk::open(&cfg, 0).expect("first socket"));
            let again = Xsk::open(&cfg, 0);
            assert!(again.is_ok(), "round {round}: {:?}", again.err());
        }
        for round in 0..5 {
            let (mut steer, _) = Steering::attach(&ifname, XdpMode::Auto).expect("attach");
            let x = Xsk::open(&cfg, 0).expect("first socket");
            steer.register_socket(0, x.as_raw_fd()).expect("register");
            drop(x);
            drop(steer);
            let again = Xsk::open(&cfg, 0);
            assert!(again.is_ok(), "round {round} (XSKMAP): {:?}", again.err());
        }
    })
    .join()
    .unwrap();
}

/// A queue that another live socket holds stays busy: the open gives up
/// after BUSY_WAIT with an error that says so.
#[test]
fn a_queue_held_by_another_socket_is_refused_after_a_bounded_wait() {
    let veth = VethPair::new("h");
    let (ns, ifname) = (veth.a.clone(), veth.ia.clone());
    std::thread::spawn(move || {
        VethPair::enter(&ns);
        let mut cfg = XskConfig::new(&ifname, 0);
        cfg.zero_copy = ZeroCopy::Off;
        let _holder = Xsk::open(&cfg, 0).expect("first socket");
        let start = Instant::now();
        let err = match Xsk::open(&cfg, 0) {
            Ok(_) => panic!("two sockets bound one queue"),
            Err(e) => e,
        };
        let took = start.elapsed();
        assert!(matches!(err, XskError::QueueBusy { .. }), "{err:?}");
        assert!(
            took >= BUSY_WAIT && took < BUSY_WAIT + Duration::from_secs(8),
            "gave up after {took:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("AF_XDP socket on {ifname} queue 0: bind: ")),
            "{text}"
        );
        assert!(
            text.contains("another AF_XDP socket still holds the queue after 2s"),
            "{text}"
        );
    })
    .join()
    .unwrap();
}

/// Issue 13, item 2: the steering maps' size as the daemon reads it is
/// the kernel's: exactly that many VIP keys (and NAT real server keys)
/// go in, one more is refused by the kernel. The control side refuses
/// any table beyond these sizes before it reaches the maps
/// (`Control::set_steer_limits`).
#[test]
fn the_steering_maps_hold_what_their_limits_say() {
    let veth = VethPair::new("sl");
    VethPair::enter(&veth.a);
    let (mut steer, _) = Steering::attach(&veth.ia, XdpMode::Auto).expect("attach");
    let l = steer.limits().expect("limits");
    assert_eq!(
        (l.vips, l.vip_addrs, l.nat_reals, l.nat_real_addrs),
        (16384, 16384, 16384, 16384)
    );
    // Distinct addresses from 198.18.64.0 on (inside 198.18.0.0/15).
    let addr = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 64, 0)) + i);
    let full = SteerRules {
        vips: (0..l.vips).map(|i| (17, addr(i), 53)).collect(),
        nat_reals: (0..l.nat_reals).map(|i| (6, addr(i), 80)).collect(),
        ..SteerRules::default()
    };
    steer.set_rules(&full).expect("exactly the maps' size fits");
    let mut over = full.clone();
    over.vips.push((17, addr(l.vips), 53));
    let e = steer
        .set_rules(&over)
        .expect_err("one more VIP than the map holds");
    assert!(e.to_string().contains("vips"), "{e}");
    // Back to a small set: the maps follow.
    steer.set_rules(&vip_rules()).expect("shrink");
}
