//! The daemon facing bad input and faults, and live changes through
//! `xdpvsadm`, on the namespace test bed (root; CI runs as root):
//!
//! - a configuration naming an unknown interface, a core that does not
//!   exist, or a service without real servers, or an interface whose MTU
//!   does not fit a UMEM frame, is refused with a message
//!   naming the file and key, and nothing is left started (no XDP program,
//!   no socket);
//! - a second daemon on the same control socket is refused and the first
//!   keeps serving;
//! - malformed frames for the VIP are counted and dropped;
//! - a real server that disappears costs only its own connections;
//! - a client's steady stream of requests loses none while real servers
//!   are added, re-weighted, drained and deleted, and the scheduler is
//!   changed, through `xdpvsadm`.
//! - a worker that panics (fault injection, `XDPVS_FAULT_WORKER_PANIC`)
//!   takes the daemon down: it exits non-zero with a last line naming the
//!   worker and the cause, its XDP program detached and its control socket
//!   removed; a killed daemon leaves no XDP program behind either (the BPF
//!   link closes with the process), and a new one starts at once; the
//!   same for one worker of two.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::process::{Command, Stdio};
use std::time::Duration;

use director::{Daemon, config, counter, counts, spread, xdpvsadm, xdpvsadm_ok};
use testbed::{Host, Mode, Options, Testbed};

/// One bed at a time (two cores, three apache2 and a daemon each).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bed(mode: Mode, queues: u32) -> Testbed {
    let bed = Testbed::new(Options {
        mode,
        reals: 3,
        director_queues: queues,
    });
    director::warm_neighbours(&bed, 3);
    bed
}

fn xdp_attached(bed: &Testbed) -> bool {
    let out = bed.exec(
        Host::Director,
        &["ip", "link", "show", &bed.director_iface()],
    );
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn bad_configurations_start_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Dr, 1);
    let good = config(&bed, &Mode::Dr, "rr", [1, 1, 1]);
    let iface = format!("interfaces = [\"{}\"]", bed.director_iface());
    let no_reals = format!(
        "{}\n[[services]]\nproto = \"udp\"\nvip = \"{}:53\"\n",
        good,
        bed.vip()
    );
    let cases = [
        (
            good.replace(&iface, "interfaces = [\"nosuch0\"]"),
            "dataplane.interfaces: no interface named \"nosuch0\"",
        ),
        (
            good.replace(&iface, &format!("{iface}\ncores = [4095]")),
            "dataplane.cores: core 4095 does not exist",
        ),
        (
            no_reals,
            "service UDP 198.18.1.1:53 has no real servers (services[1].reals)",
        ),
    ];
    let path = bed.tempdir().join("bad.toml");
    let path_s = path.display().to_string();
    for (text, says) in cases {
        std::fs::write(&path, text).unwrap();
        let out = bed.exec(
            Host::Director,
            &[director::xdpvs_bin(), "--config", &path_s],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with a bad config: {err}");
        assert!(err.contains(&path_s), "names the file: {err}");
        assert!(err.contains(says), "expected {says:?} in: {err}");
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
        assert!(!xdp_attached(&bed), "an XDP program was left attached");
        assert!(
            !director::socket(&bed).exists(),
            "a control socket was left"
        );
    }
    // --check says the same about what it can see in the file alone.
    let out = bed.exec(
        Host::Director,
        &[director::xdpvs_bin(), "--config", &path_s, "--check"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no real servers"));

    // The interface's own MTU is checked at start-up: frames that large
    // would not fit a UMEM frame (2048 - 256 headroom - 18 = 1774).
    let dev = bed.director_iface();
    let set_mtu = |mtu: &str| {
        let out = bed.exec(
            Host::Director,
            &["ip", "link", "set", "dev", &dev, "mtu", mtu],
        );
        assert!(out.status.success(), "ip link set mtu {mtu}");
    };
    set_mtu("1800");
    std::fs::write(&path, &good).unwrap();
    let out = bed.exec(
        Host::Director,
        &[director::xdpvs_bin(), "--config", &path_s],
    );
    set_mtu(&bed.lan_mtu().to_string());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with frames too large: {err}"
    );
    let says = format!(
        "<3>xdpvs: {path_s}: dataplane.interfaces: {dev} has MTU 1800, whose frames do not fit: \
         expected an MTU of at most 1774"
    );
    assert!(err.starts_with(&says), "expected {says:?} in: {err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(!xdp_attached(&bed), "an XDP program was left attached");
}

#[test]
fn bad_frames_a_second_daemon_and_a_dead_real_cost_only_themselves() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Dr, 1);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Dr, "rr", [1, 1, 1])).unwrap();
    let daemon = Daemon::start(&bed, &cfg);
    assert!(
        xdp_attached(&bed),
        "the running daemon's program is visible"
    );

    // A second daemon on the same socket and interface is refused before
    // it touches anything.
    let out = bed.exec(
        Host::Director,
        &[
            director::xdpvs_bin(),
            "--config",
            &cfg.display().to_string(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon started: {err}");
    assert!(err.contains("control socket"), "{err}");
    assert_eq!(
        spread(&bed, 30),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)])
    );

    // Malformed TCP to the VIP: a header cut after 8 bytes, and one whose
    // data offset points past the packet. The XDP program steers them (the
    // ports are there), the pipeline counts and drops them.
    let (client, vip) = (bed.addr(Host::Client), bed.vip());
    let mut bad = Vec::new();
    for i in 0..10u16 {
        let mut cut = (4000 + i).to_be_bytes().to_vec();
        cut.extend_from_slice(&[0, 80, 0, 0, 0, 1]);
        bad.push(director::ipv4_packet(client, vip, 6, &cut));
        let mut doff = vec![0u8; 20];
        doff[0..2].copy_from_slice(&(5000 + i).to_be_bytes());
        doff[2..4].copy_from_slice(&80u16.to_be_bytes());
        doff[12] = 0xf0;
        doff[13] = 0x02;
        bad.push(director::ipv4_packet(client, vip, 6, &doff));
    }
    director::send_raw_ipv4(&bed, Host::Client, bad);

    director::small_client_window(&bed);
    // Three slow downloads, one per real server (rr), then real server 2
    // vanishes (its interface goes down).
    let downloads: Vec<_> = (0..3)
        .map(|i| {
            let out = bed.tempdir().join(format!("big{i}.out"));
            let url = format!("http://{}/big.bin", bed.vip());
            let child = Command::new("ip")
                .args(["netns", "exec", &bed.ns(Host::Client), "curl", "-sS"])
                .args(["--max-time", "15", "--limit-rate", "256k", "-o"])
                .arg(&out)
                .arg(&url)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            (child, out)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut downloads = downloads;
    for (child, _) in &mut downloads {
        assert!(
            child.try_wait().unwrap().is_none(),
            "downloads still running"
        );
    }
    let rs2_if = bed.iface(Host::Real(1));
    let down = bed.exec(Host::Real(1), &["ip", "link", "set", &rs2_if, "down"]);
    assert!(down.status.success());
    let mut complete = 0;
    for (mut child, out) in downloads {
        let ok = child.wait().unwrap().success();
        let got = std::fs::read(&out).unwrap_or_default();
        if ok && got == testbed::big_bin() {
            complete += 1;
        }
    }
    assert_eq!(
        complete, 2,
        "the two downloads from live real servers complete"
    );
    // The operator (or a health checker) takes it out: nothing fails then.
    let vip_port = format!("{}:80", bed.vip());
    let rs2 = format!("{}:80", bed.real_addr(1));
    xdpvsadm_ok(&bed, &["-e", "-t", &vip_port, "-r", &rs2, "-g", "-w", "0"]);
    assert_eq!(spread(&bed, 30), counts(&[("rs1", 15), ("rs3", 15)]));

    // Every counter reaches the operator while the director runs (workers
    // publish theirs whenever they fall idle).
    let table = xdpvsadm_ok(&bed, &["--counters"]);
    let total = |name: &str| -> u64 {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} row:\n{table}"))
    };
    assert_eq!(total("malformed"), 20, "{table}");
    assert!(
        total("tx_dr") > 0 && total("rx") >= total("tx_dr"),
        "{table}"
    );

    let log = daemon.stop();
    assert_eq!(counter(&log, "malformed"), 20, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(": XDP program redirected ") && !l.contains(" redirected 0 ")),
        "the steering program's counts are logged at stop:\n{log}"
    );
    assert!(!xdp_attached(&bed), "the program is gone with the daemon");
}

/// Issue 5: a client's steady stream loses no request while the table is
/// edited live through xdpvsadm. NAT with two workers, so every change
/// also crosses the hand-over between workers.
#[test]
fn live_changes_through_xdpvsadm_lose_no_request() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Nat, 2);
    let cfg = bed.tempdir().join("xdpvs.toml");
    // Start with two real servers; the third is added live.
    let text = config(&bed, &Mode::Nat, "rr", [1, 1, 1]);
    let rs3 = format!("{}:80", bed.real_addr(2));
    let cut = text.find(&format!("addr = \"{rs3}\"")).unwrap();
    let cut = text[..cut].rfind("[[services.reals]]").unwrap();
    std::fs::write(&cfg, &text[..cut]).unwrap();
    let daemon = Daemon::start(&bed, &cfg);

    let url = format!("http://{}/", bed.vip());
    let mut args = vec![
        "netns".to_owned(),
        "exec".to_owned(),
        bed.ns(Host::Client),
        "curl".to_owned(),
        "-sS".to_owned(),
        "--max-time".to_owned(),
        "60".to_owned(),
        "-H".to_owned(),
        "Connection: close".to_owned(),
        "-w".to_owned(),
        " %{http_code}\n".to_owned(),
    ];
    args.extend(std::iter::repeat_n(url, 1500));
    let stream = Command::new("ip")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let vip = format!("{}:80", bed.vip());
    let rs1 = format!("{}:80", bed.real_addr(0));
    let rs2 = format!("{}:80", bed.real_addr(1));
    let step = || std::thread::sleep(Duration::from_millis(300));
    step();
    xdpvsadm_ok(&bed, &["-a", "-t", &vip, "-r", &rs3, "-m", "-w", "1"]);
    step();
    xdpvsadm_ok(&bed, &["-e", "-t", &vip, "-r", &rs1, "-m", "-w", "3"]);
    step();
    xdpvsadm_ok(&bed, &["-E", "-t", &vip, "-s", "wlc"]);
    step();
    // Drain, then delete: the connections it still has finish first.
    xdpvsadm_ok(&bed, &["-e", "-t", &vip, "-r", &rs2, "-m", "-w", "0"]);
    step();
    xdpvsadm_ok(&bed, &["-d", "-t", &vip, "-r", &rs2]);
    // A refused change changes nothing and says so.
    let dup = xdpvsadm(&bed, &["-a", "-t", &vip, "-r", &rs3, "-m"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("Destination already exists"));

    let listing = xdpvsadm_ok(&bed, &["-L", "-n"]);
    let out = stream.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3000, "every request answered:\n{text}");
    let mut served = std::collections::BTreeMap::new();
    for pair in lines.chunks(2) {
        assert_eq!(pair[1], " 200");
        *served.entry(pair[0]).or_insert(0) += 1;
    }
    assert!(served.get("rs3").copied().unwrap_or(0) > 0, "{served:?}");

    // The listing shows the final table exactly (counters are live, so
    // only the service and the two real servers' rows are compared).
    let rows: Vec<String> = listing
        .lines()
        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(rows[0], "IP Virtual Server version");
    assert_eq!(rows[3], format!("TCP {vip} wlc"));
    let mut reals: Vec<&String> = rows[4..].iter().collect();
    reals.sort();
    assert_eq!(
        reals,
        [&format!("-> {rs1} Masq 3"), &format!("-> {rs3} Masq 1")]
    );
    for args in [
        &["-L", "-n", "--stats"][..],
        &["-L", "-n", "--rate"],
        &["-L", "-n", "-c"],
    ] {
        xdpvsadm_ok(&bed, args);
    }
    let log = daemon.stop();
    assert_eq!(counter(&log, "handoff_dropped"), 0, "{log}");
}

/// Issue 12, item 8: a dead worker is a dead daemon.
#[test]
fn a_panicking_worker_takes_the_daemon_down() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Dr, 1);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Dr, "rr", [1, 1, 1])).unwrap();
    let daemon =
        Daemon::start_with_env(&bed, &cfg, "RUST_BACKTRACE=0 XDPVS_FAULT_WORKER_PANIC=0:1");
    assert!(xdp_attached(&bed));
    // The one worker receives every frame for the VIP: the SYN kills it.
    let url = format!("http://{}/", bed.vip());
    let _ = bed.exec(Host::Client, &["curl", "-sS", "--max-time", "2", &url]);
    let (status, log) = daemon.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    assert_eq!(
        log.lines().last(),
        Some("<3>xdpvs: worker 0 panicked: fault injection: panic after 1 received frames"),
        "the last line names the worker and the cause; log:\n{log}"
    );
    // The panic's own report is one error line too, not the standard
    // library's several (issue 17, item 6).
    assert!(
        log.lines()
            .any(|l| l.starts_with("<3>xdpvs: thread xdpvs-w0 panicked at ")
                && l.ends_with(": fault injection: panic after 1 received frames")),
        "{log}"
    );
    assert!(
        log.lines().all(|l| l.starts_with('<')),
        "every line has its level; log:\n{log}"
    );
    assert!(!xdp_attached(&bed), "an XDP program was left attached");
    assert!(
        !director::socket(&bed).exists(),
        "a control socket was left"
    );

    // Killed outright, the daemon cleans nothing up itself: the kernel
    // detaches its program when the link's descriptor closes, and the
    // next daemon takes over the stale socket file and the queue at once.
    let daemon = Daemon::start(&bed, &cfg);
    daemon.signal("KILL");
    let (status, _) = daemon.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(!xdp_attached(&bed), "a killed daemon left its XDP program");
    let daemon = Daemon::start(&bed, &cfg);
    assert_eq!(
        spread(&bed, 30),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)])
    );
    daemon.stop();
}

/// Issue 13, item 2: a panic in one of several workers (NAT, two queues:
/// frames cross between workers) takes the whole daemon down just the
/// same, and the last line names that worker.
#[test]
fn a_panic_in_one_of_two_workers_takes_the_daemon_down() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Nat, 2);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Nat, "rr", [1, 1, 1])).unwrap();
    let daemon =
        Daemon::start_with_env(&bed, &cfg, "RUST_BACKTRACE=0 XDPVS_FAULT_WORKER_PANIC=1:1");
    // Connections from new source ports until worker 1 receives a frame
    // (RSS spreads them over both queues); bounded.
    let url = format!("http://{}/", bed.vip());
    for _ in 0..40 {
        let _ = bed.exec(Host::Client, &["curl", "-sS", "--max-time", "1", &url]);
        if daemon.log().contains("panicked: fault injection") {
            break;
        }
    }
    let (status, log) = daemon.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    assert_eq!(
        log.lines().last(),
        Some("<3>xdpvs: worker 1 panicked: fault injection: panic after 1 received frames"),
        "log:\n{log}"
    );
    assert!(!xdp_attached(&bed), "an XDP program was left attached");
    assert!(
        !director::socket(&bed).exists(),
        "a control socket was left"
    );
}

/// Issue 17, item 6: the log a supervisor reads. Every line has a syslog
/// priority; `XDPVS_LOG=debug` adds one line per control request (never
/// one per packet); a refused reload is a warning.
#[test]
fn every_log_line_has_a_level_and_debug_shows_control_requests() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed(Mode::Dr, 1);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Dr, "rr", [1, 1, 1])).unwrap();
    let daemon = Daemon::start_with_env(&bed, &cfg, "XDPVS_LOG=debug");
    // Traffic: each frame is counted, none logged.
    assert_eq!(spread(&bed, 6).values().sum::<usize>(), 6);
    xdpvsadm_ok(&bed, &["-L", "-n"]);
    let out = xdpvsadm(&bed, &["-D", "-t", "198.19.255.1:80"]);
    assert!(!out.status.success());
    std::fs::write(&cfg, "[dataplane]\nmtu = 1\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reload refused", Duration::from_secs(10));
    let log = daemon.stop();
    for line in log.lines() {
        let ok = line.len() > 3
            && line.as_bytes()[0] == b'<'
            && (b'3'..=b'7').contains(&line.as_bytes()[1])
            && line[2..].starts_with(">xdpvs: ");
        assert!(ok, "a line without its level: {line:?}\n{log}");
    }
    for want in [
        "<5>xdpvs: running: ",
        "<7>xdpvs: control: --list: ok",
        "<7>xdpvs: control: --delete-service: refused: ",
        "<4>xdpvs: reload refused, nothing changed: ",
        "<5>xdpvs: stopping",
        "<6>xdpvs: worker 0: rx ",
    ] {
        assert!(
            log.lines().any(|l| l.starts_with(want)),
            "no line starting {want:?}:\n{log}"
        );
    }
    // Debug lines are the control requests only, none per packet.
    let debug: Vec<&str> = log.lines().filter(|l| l.starts_with("<7>")).collect();
    assert!(debug.len() >= 2, "{log}");
    assert!(
        debug.iter().all(|l| l.starts_with("<7>xdpvs: control: ")),
        "{log}"
    );
}
