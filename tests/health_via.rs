//! Health checks through the forwarding path (`health::via`), on the
//! namespace test bed (one-armed, offloads off; TESTBED.md): the probe
//! runs in the director's namespace, first with no daemon there, then
//! with `xdpvs` forwarding on the same interface (what users run).
//!
//! DR: a real server holding the VIP on `lo` passes; once the VIP is
//! removed it fails, while a direct connection to RIP:port still works;
//! with the VIP back it passes again. A port nobody listens on is
//! "refused" (the real server's RST).
//! TUN: the same, and a real server whose tunnel endpoint is gone (the
//! bed's decapsulation shim detached) fails the TUN probe while a DR
//! probe to it and a direct connection still pass — the probe really
//! travels the tunnel. Needs root.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use director::{Daemon, config};
use testbed::{HTTP_PORT, Host, Mode, Options, Testbed};
use xdpvs::dest::Forward;
use xdpvs::health::via::{self, Via};

/// A passing probe's bound (ARP resolution included).
const PASS: Duration = Duration::from_secs(5);
/// A failing probe's wait: the SYN and one retransmission.
const FAIL: Duration = Duration::from_millis(1500);

/// One bed at a time: each runs three apache2 (and a daemon).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The forwarding-path check of real server `i` for `vport`, in
/// `forward` mode, run in the director's namespace (a thread of its own:
/// setns moves only the calling thread).
fn check(
    bed: &Testbed,
    i: usize,
    forward: Forward,
    vport: u16,
    timeout: Duration,
) -> Result<(), String> {
    use nix::sched::{CloneFlags, setns};
    let ns = format!("/run/netns/{}", bed.ns(Host::Director));
    let interfaces = vec![bed.director_iface()];
    let mtu = bed.lan_mtu() as u16;
    let vip = SocketAddr::V4(SocketAddrV4::new(bed.vip(), vport));
    let real = SocketAddr::V4(SocketAddrV4::new(bed.real_addr(i), vport));
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("open {ns}: {e}"));
        setns(f, CloneFlags::CLONE_NEWNET).expect("setns into the director namespace");
        let v = Via {
            interfaces,
            mtu,
            tunnel_source: None,
            vip,
            real,
            forward,
            bindto: None,
            bind_port: None,
        };
        let start = Instant::now();
        let r = via::check(&v, timeout);
        // Bounded by its timeout (plus scheduling on a busy machine).
        assert!(
            start.elapsed() < timeout + Duration::from_secs(1),
            "the check took {:?} with a timeout of {timeout:?}",
            start.elapsed()
        );
        r
    })
    .join()
    .unwrap()
}

fn passes(bed: &Testbed, i: usize, forward: Forward, what: &str) {
    if let Err(e) = check(bed, i, forward, HTTP_PORT, PASS) {
        panic!("{what}: rs{} should pass through {forward:?}: {e}", i + 1);
    }
}

/// Fails, and says why; the reason is returned for the caller to check.
fn fails(bed: &Testbed, i: usize, forward: Forward, what: &str) -> String {
    match check(bed, i, forward, HTTP_PORT, FAIL) {
        Ok(()) => panic!("{what}: rs{} should fail through {forward:?}", i + 1),
        Err(e) => {
            eprintln!("{what}: rs{} fails: {e}", i + 1);
            e
        }
    }
}

/// The real server still answers on its own address (a direct check,
/// keepalived's TCP_CHECK, would pass).
fn direct_ok(bed: &Testbed, i: usize) {
    let url = format!("http://{}/", bed.real_addr(i));
    let (status, body) = bed
        .curl_from(Host::Director, &url)
        .unwrap_or_else(|e| panic!("direct request to rs{}: {e}", i + 1));
    assert_eq!((status, body), (200, testbed::real_body(i).into_bytes()));
}

fn vip_on_lo(bed: &Testbed, i: usize, add: bool) {
    let vip = format!("{}/32", bed.vip());
    let op = if add { "add" } else { "del" };
    let out = bed.exec(Host::Real(i), &["ip", "addr", op, &vip, "dev", "lo"]);
    assert!(
        out.status.success(),
        "ip addr {op} {vip} dev lo on rs{}: {}",
        i + 1,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No connection of the real server's is left in SYN-RECV (bounded wait:
/// the probe's closing RST may still be on its way).
fn no_half_open(bed: &Testbed, i: usize) {
    let start = Instant::now();
    loop {
        let out = bed.exec(Host::Real(i), &["ss", "-Htn", "state", "syn-recv"]);
        assert!(out.status.success(), "ss: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "rs{} keeps half-open connections:\n{text}",
            i + 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn no_reply(reason: &str) {
    assert!(reason.starts_with("no SYN-ACK from"), "{reason}");
}

fn start_daemon(bed: &Testbed, mode: Mode) -> Daemon {
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(bed, &mode, "rr", [1, 1, 1])).unwrap();
    Daemon::start(bed, &cfg)
}

#[test]
fn dr_real_without_the_vip_fails_through_the_forwarding_path() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        ..Options::default()
    });
    for i in 0..3 {
        passes(&bed, i, Forward::Dr, "VIP on lo");
    }
    // The probe's own RST closed the real server's half-open connection.
    no_half_open(&bed, 0);
    // Nothing listens on port 81: the real server's kernel answers RST.
    let e = check(&bed, 0, Forward::Dr, 81, PASS).unwrap_err();
    assert!(e.starts_with("refused: RST from 198.18.1.1:81"), "{e}");

    vip_on_lo(&bed, 0, false);
    no_reply(&fails(&bed, 0, Forward::Dr, "no daemon, VIP removed"));
    direct_ok(&bed, 0);
    passes(&bed, 1, Forward::Dr, "no daemon, other real");

    let daemon = start_daemon(&bed, Mode::Dr);
    no_reply(&fails(&bed, 0, Forward::Dr, "daemon, VIP removed"));
    direct_ok(&bed, 0);
    passes(&bed, 1, Forward::Dr, "daemon, other real");
    vip_on_lo(&bed, 0, true);
    passes(&bed, 0, Forward::Dr, "daemon, VIP back");
    // The daemon still forwards clients meanwhile.
    let (status, _) = bed.curl(&format!("http://{}/", bed.vip())).unwrap();
    assert_eq!(status, 200);
    let log = daemon.stop();
    assert!(!log.contains("<3>"), "no error logged:\n{log}");
    // Each passing probe's SYN-ACK drew a RST from the director's kernel
    // to VIP:port, which the router sends back to the director, whose
    // data path drops it: no more than one per passing probe with the
    // daemon running (two here). The module documentation says so.
    let stray = director::counter(&log, "no_connection");
    assert!(stray <= 2, "no_connection = {stray}:\n{log}");
}

#[test]
fn tun_real_without_its_tunnel_or_vip_fails_through_the_forwarding_path() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Tun,
        ..Options::default()
    });
    for i in 0..3 {
        passes(&bed, i, Forward::Tun, "tunnel up");
    }
    // rs1: the tunnel endpoint goes (the shim plays the real server's
    // tunl0); the VIP stays, so a DR frame still reaches it.
    let dev = bed.iface(Host::Real(0));
    let out = bed.exec(
        Host::Real(0),
        &["ip", "link", "set", "dev", &dev, "xdp", "off"],
    );
    assert!(out.status.success(), "detach the shim: {out:?}");
    // rs2: the VIP goes.
    vip_on_lo(&bed, 1, false);
    let tunnel_gone = |what: &str| {
        let e = fails(&bed, 0, Forward::Tun, what);
        // Without IPIP the real server's kernel answers "protocol
        // unreachable" (unless its ICMP rate limit holds it back).
        assert!(
            e.starts_with("ICMP protocol unreachable (3/2) from 198.18.2.11")
                || e.starts_with("no SYN-ACK from"),
            "{e}"
        );
    };
    for daemon in [false, true] {
        let d = daemon.then(|| start_daemon(&bed, Mode::Tun));
        let what = if daemon { "daemon" } else { "no daemon" };
        tunnel_gone(&format!("{what}, shim detached"));
        passes(
            &bed,
            0,
            Forward::Dr,
            &format!("{what}, shim detached, as DR"),
        );
        direct_ok(&bed, 0);
        no_reply(&fails(
            &bed,
            1,
            Forward::Tun,
            &format!("{what}, VIP removed"),
        ));
        direct_ok(&bed, 1);
        passes(&bed, 2, Forward::Tun, &format!("{what}, other real"));
        if let Some(d) = d {
            vip_on_lo(&bed, 1, true);
            passes(&bed, 1, Forward::Tun, "daemon, VIP back");
            let (status, _) = bed.curl(&format!("http://{}/", bed.vip())).unwrap();
            assert_eq!(status, 200);
            let log = d.stop();
            assert!(!log.contains("<3>"), "no error logged:\n{log}");
        }
    }
}

/// The source address may be chosen (`bindto`); one the director does
/// not hold is an error naming it, not a probe.
#[test]
fn bindto_must_be_a_director_address() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        reals: 1,
        ..Options::default()
    });
    use nix::sched::{CloneFlags, setns};
    let ns = format!("/run/netns/{}", bed.ns(Host::Director));
    let iface = bed.director_iface();
    let (vip, real) = (bed.vip(), bed.real_addr(0));
    let results = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        setns(f, CloneFlags::CLONE_NEWNET).unwrap();
        let probe = |bindto: Ipv4Addr, iface: &str| {
            let v = Via {
                interfaces: vec![iface.to_string()],
                mtu: 1500,
                tunnel_source: None,
                vip: SocketAddr::V4(SocketAddrV4::new(vip, 80)),
                real: SocketAddr::V4(SocketAddrV4::new(real, 80)),
                forward: Forward::Dr,
                bindto: Some(IpAddr::V4(bindto)),
                bind_port: None,
            };
            via::check(&v, PASS)
        };
        [
            probe(testbed::DIRECTOR_ADDR, &iface),
            probe(Ipv4Addr::new(198, 18, 2, 99), &iface),
            probe(testbed::DIRECTOR_ADDR, "lo"),
        ]
    })
    .join()
    .unwrap();
    assert_eq!(results[0], Ok(()));
    let e = results[1].as_ref().unwrap_err();
    assert!(e.contains("198.18.2.99"), "{e}");
    let e = results[2].as_ref().unwrap_err();
    assert!(e.contains("not one of dataplane.interfaces"), "{e}");
}

/// The kernel selftest's shape: the director holds the VIP on its own
/// `lo`, so the SYN-ACK from the VIP is a martian source to its kernel
/// (dropped before any IP socket): the probe still reads it, as it reads
/// frames before IP. Without the VIP the check fails there too.
#[test]
fn a_director_holding_the_vip_still_reads_the_answer() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::two_armed(Options {
        mode: Mode::Dr,
        reals: 1,
        ..Options::default()
    });
    passes(&bed, 0, Forward::Dr, "two-armed, VIP on both lo");
    no_half_open(&bed, 0);
    vip_on_lo(&bed, 0, false);
    no_reply(&fails(&bed, 0, Forward::Dr, "two-armed, VIP removed"));
    direct_ok(&bed, 0);
}

/// CPU time of the calling thread so far.
fn thread_cpu() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    Duration::from(clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap())
}

/// What a checker keeps between runs (`via::Cached`): it passes run after
/// run without asking the kernel again, fails once the VIP is gone (the
/// path resolved afresh is the same, so the failure stands) and passes
/// once it is back. Prints what a passing probe costs.
#[test]
fn a_cached_check_follows_the_real_server() {
    const RUNS: u32 = 200;
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        reals: 1,
        ..Options::default()
    });
    let ns = format!("/run/netns/{}", bed.ns(Host::Director));
    let v = Via {
        interfaces: vec![bed.director_iface()],
        mtu: 1500,
        tunnel_source: None,
        vip: SocketAddr::V4(SocketAddrV4::new(bed.vip(), HTTP_PORT)),
        real: SocketAddr::V4(SocketAddrV4::new(bed.real_addr(0), HTTP_PORT)),
        forward: Forward::Dr,
        bindto: None,
        bind_port: None,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            use nix::sched::{CloneFlags, setns};
            setns(std::fs::File::open(&ns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
            let mut c = via::Cached::default();
            c.run(&v, PASS).expect("first run");
            let (wall, cpu) = (Instant::now(), thread_cpu());
            for n in 0..RUNS {
                if let Err(e) = c.run(&v, PASS) {
                    panic!("run {n}: {e}");
                }
            }
            let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
            eprintln!(
                "{RUNS} passing probes (DR, cached): {:?} wall, {:?} CPU of the probing thread each",
                wall / RUNS,
                cpu / RUNS
            );
            vip_on_lo(&bed, 0, false);
            let e = c.run(&v, FAIL).unwrap_err();
            no_reply(&e);
            vip_on_lo(&bed, 0, true);
            c.run(&v, PASS).expect("VIP back");
        });
    });
    no_half_open(&bed, 0);
}

/// Through the checker engine (`health::Monitor`): a TCP check with
/// `via = "forwarding"` to a DR real server goes down when its VIP goes
/// and up when it is back, with the probe's reason in the verdict.
#[test]
fn the_monitor_runs_forwarding_checks() {
    use xdpvs::config::{CheckConfig, CheckKind, Protocol, Via as ViaKey};
    use xdpvs::health::{Monitor, Target, Verdict};
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        reals: 1,
        ..Options::default()
    });
    let ns = format!("/run/netns/{}", bed.ns(Host::Director));
    let real = SocketAddr::V4(SocketAddrV4::new(bed.real_addr(0), HTTP_PORT));
    let check = CheckConfig {
        interval: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1000),
        retry: 0,
        via: ViaKey::Forwarding,
        ..CheckConfig::new(CheckKind::Tcp, real)
    };
    let target = Target {
        proto: Protocol::Tcp,
        vip: SocketAddr::V4(SocketAddrV4::new(bed.vip(), HTTP_PORT)),
        real,
        forward: Forward::Dr,
        checks: vec![check],
        dataplane: via::Path {
            interfaces: vec![bed.director_iface()],
            ..via::Path::default()
        },
    };
    // Waits (bounded) for the next verdict.
    let next = |m: &Monitor| -> Verdict {
        let start = Instant::now();
        loop {
            if let Some(v) = m.verdicts().into_iter().next() {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no verdict in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            use nix::sched::{CloneFlags, setns};
            // The monitor's threads are created from this one, in the
            // director's namespace.
            setns(std::fs::File::open(&ns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
            let m = Monitor::start(vec![target]).expect("Monitor::start");
            let v = next(&m);
            assert!(v.up, "initial: {v:?}");
            // A few runs pass: no verdict.
            std::thread::sleep(Duration::from_millis(800));
            assert_eq!(m.verdicts(), vec![], "passing runs change nothing");
            vip_on_lo(&bed, 0, false);
            let v = next(&m);
            assert!(!v.up, "{v:?}");
            assert!(v.reason.contains("no SYN-ACK from 198.18.1.1:80"), "{v:?}");
            vip_on_lo(&bed, 0, true);
            let v = next(&m);
            assert!(v.up, "{v:?}");
        });
    });
}
