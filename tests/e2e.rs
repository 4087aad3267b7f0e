//! End to end, on the namespace test bed (TESTBED.md): real apache2 on
//! three real servers, real curl on the client, the `xdpvs` daemon started
//! from a configuration file in the director's namespace, for DR, TUN and
//! NAT. Needs root (CI runs as root).
//!
//! Each mode runs the same scenario: 300 requests with rr split exactly
//! evenly; a SIGHUP reload to wrr 3:2:1 splits the next 300 exactly 3:2:1
//! while a slow download started before the reload completes intact; a
//! reload giving one real server weight 0 leaves it without requests.
//! Around the first reload, live edits: a service added with `xdpvsadm`
//! and `--set` timeouts survive it, a live scheduler edit the file's change
//! overrides is logged.
//! NAT also runs with two workers on a two-queue interface, where the
//! replies of most connections arrive at the worker that does not own them.
//! TUN also runs configured by `xdpvsadm` commands alone, without
//! `tunnel_source`: the outer source is each real server's route source.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::io::Read;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use director::{Daemon, REQUESTS, config, counts, spread};
use testbed::{Host, Mode, Options, Testbed};

/// A download of `/big.bin` at 256 KiB/s (about 4 s), in the background.
fn slow_download(bed: &Testbed) -> Child {
    let url = format!("http://{}/big.bin", bed.vip());
    let out = bed.tempdir().join("big.out");
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &bed.ns(Host::Client),
        "curl",
        "-sS",
        "--fail",
    ])
    .args(["--max-time", "30", "--limit-rate", "256k", "-o"])
    .arg(&out)
    .arg(&url)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c.spawn().expect("curl")
}

fn finish_download(bed: &Testbed, mut c: Child) {
    let status = c.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "the long download failed: {err}");
    let got = std::fs::read(bed.tempdir().join("big.out")).unwrap();
    assert_eq!(got, testbed::big_bin(), "the long download arrived intact");
}

/// One bed at a time: each runs three apache2, curl and a daemon, and
/// this machine may have two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(mode: Mode, queues: u32) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode,
        reals: 3,
        director_queues: queues,
    });
    let mode = bed.options().mode;
    director::warm_neighbours(&bed, 3);
    let cfg_path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg_path, config(&bed, &mode, "rr", [1, 1, 1])).unwrap();
    let daemon = Daemon::start(&bed, &cfg_path);

    let third = REQUESTS / 3;
    assert_eq!(
        spread(&bed, REQUESTS),
        counts(&[("rs1", third), ("rs2", third), ("rs3", third)]),
        "rr splits evenly"
    );
    // The same, as the operator sees it: --stats counts 300 connections,
    // 100 per real server; replies are counted only where the director
    // sees them (NAT).
    let stats = director::xdpvsadm_ok(&bed, &["-L", "-n", "--stats", "--exact"]);
    let rows: Vec<Vec<&str>> = stats
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let svc = &rows[0];
    assert_eq!((svc[0], svc[2]), ("TCP", "300"), "{stats}");
    for r in &rows[1..] {
        assert_eq!((r[0], r[2]), ("->", "100"), "{stats}");
    }
    let out_pkts: u64 = svc[4].parse().unwrap();
    assert_eq!(out_pkts > 0, mode == Mode::Nat, "{stats}");

    director::small_client_window(&bed);
    let mut download = slow_download(&bed);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        download.try_wait().unwrap().is_none(),
        "the download is still running at the reload"
    );
    // Live edits around the reload (README, Signals): a service the file
    // does not name and `--set` timeouts stay; the file's scheduler change
    // overrides a live scheduler edit, and the log says so.
    let vip = format!("{}:80", bed.vip());
    director::xdpvsadm_ok(&bed, &["-A", "-t", "198.18.1.9:8080", "-s", "sh"]);
    director::xdpvsadm_ok(&bed, &["--set", "100", "0", "0"]);
    director::xdpvsadm_ok(&bed, &["-E", "-t", &vip, "-s", "lc"]);
    std::fs::write(&cfg_path, config(&bed, &mode, "wrr", [3, 2, 1])).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reloaded", Duration::from_secs(10));
    daemon.wait_for(
        &format!(
            "reload: service TCP {vip}: the file's settings replace a live edit (scheduler lc → wrr)"
        ),
        Duration::from_secs(1),
    );
    let saved = director::xdpvsadm_ok(&bed, &["-S", "-n"]);
    assert!(
        saved.contains("-A -t 198.18.1.9:8080 -s sh\n"),
        "the live service stays:\n{saved}"
    );
    assert!(saved.contains(&format!("-A -t {vip} -s wrr\n")), "{saved}");
    assert!(
        director::xdpvsadm_ok(&bed, &["-L", "--timeout"])
            .starts_with("Timeout (tcp tcpfin udp): 100 "),
        "--set stays"
    );
    assert_eq!(
        spread(&bed, REQUESTS),
        counts(&[("rs1", 150), ("rs2", 100), ("rs3", 50)]),
        "wrr 3:2:1"
    );
    finish_download(&bed, download);

    std::fs::write(&cfg_path, config(&bed, &mode, "wrr", [1, 0, 1])).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_n("xdpvs: reloaded", 2, Duration::from_secs(10));
    assert_eq!(
        spread(&bed, REQUESTS),
        counts(&[("rs1", 150), ("rs3", 150)]),
        "weight 0 gets nothing"
    );

    let log = daemon.stop();
    assert!(log.contains("xdpvs: stopping"), "{log}");
    let workers: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("<6>xdpvs: worker ") && l.contains(": rx "))
        .collect();
    assert_eq!(
        workers.len(),
        queues as usize,
        "one worker per queue:\n{log}"
    );
    // `rx N tx N` lead the line; any other counter is `name=N`, there
    // only when it is not zero.
    let field = |line: &str, name: &str| -> u64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .iter()
            .enumerate()
            .find_map(|(i, w)| match w.strip_prefix(&format!("{name}=")) {
                Some(v) => v.parse().ok(),
                None => (*w == name).then(|| words[i + 1].parse().unwrap()),
            })
            .unwrap_or(0)
    };
    for w in &workers {
        assert!(field(w, "rx") > 0, "every worker received traffic: {w}");
        assert!(!w.contains("no_neighbour"), "{w}");
    }
    if queues > 1 && mode == Mode::Nat {
        let handed: u64 = workers.iter().map(|w| field(w, "handoff_sent")).sum();
        assert!(handed > 0, "NAT replies were handed to their owner:\n{log}");
    }
    // The XDP program is gone with the daemon: the director's interface
    // has no program left (no black hole).
    let link = bed.exec(
        Host::Director,
        &["ip", "link", "show", &bed.director_iface()],
    );
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains("prog/xdp"),
        "XDP program left attached:\n{link}"
    );
}

#[test]
fn dr() {
    scenario(Mode::Dr, 1);
}

#[test]
fn tun() {
    scenario(Mode::Tun, 1);
}

#[test]
fn nat() {
    scenario(Mode::Nat, 1);
}

#[test]
fn nat_two_workers_on_two_queues() {
    scenario(Mode::Nat, 2);
}

#[test]
fn dr_two_workers_on_two_queues() {
    scenario(Mode::Dr, 2);
}

/// TUN as ipvsadm users configure it: a file naming the interface (and
/// the control socket), then `-A` and `-a -i` commands, no
/// `tunnel_source`. The outer source is the source of the kernel's route
/// to each real server: the director's LAN address, except for rs3,
/// whose host route names a second address; when that route goes, rs3's
/// source follows within the next refresh. Offload-free bed.
#[test]
fn tun_from_xdpvsadm_commands_alone() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Tun,
        reals: 3,
        director_queues: 1,
    });
    director::warm_neighbours(&bed, 3);
    let dev = bed.director_iface();
    let rs3 = bed.real_addr(2).to_string();
    let second = "198.18.2.3";
    for step in [
        &["ip", "addr", "add", &format!("{second}/32"), "dev", &dev][..],
        &["ip", "route", "add", &rs3, "dev", &dev, "src", second],
    ] {
        let out = bed.exec(Host::Director, step);
        assert!(
            out.status.success(),
            "{step:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cfg_path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[dataplane]\ninterfaces = [\"{dev}\"]\nidle = \"wait\"\n\n\
             [control]\nsocket = \"{}\"\n",
            director::socket(&bed).display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&bed, &cfg_path);
    let vip = format!("{}:80", bed.vip());
    director::xdpvsadm_ok(&bed, &["-A", "-t", &vip, "-s", "rr"]);
    for i in 0..3 {
        let rip = format!("{}:80", bed.real_addr(i));
        director::xdpvsadm_ok(&bed, &["-a", "-t", &vip, "-r", &rip, "-i", "-w", "1"]);
    }
    let saved = director::xdpvsadm_ok(&bed, &["-S", "-n"]);
    assert_eq!(saved.matches(" -i -w 1").count(), 3, "{saved}");
    for (i, src) in [(0, "198.18.2.2"), (1, "198.18.2.2"), (2, second)] {
        daemon.wait_for(
            &format!("real server {}: tunnel source {src} ", bed.real_addr(i)),
            Duration::from_secs(5),
        );
    }
    assert_eq!(
        spread(&bed, 30),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]),
        "rr over three tunnels"
    );
    // rs3's route now gives the LAN address: the next refresh (one a
    // second) takes it.
    let out = bed.exec(Host::Director, &["ip", "route", "del", &rs3]);
    assert!(out.status.success());
    daemon.wait_for(
        &format!("real server {rs3}: tunnel source 198.18.2.2 "),
        Duration::from_secs(5),
    );
    assert_eq!(
        spread(&bed, 30),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]),
        "rr over three tunnels after the route change"
    );
    let log = daemon.stop();
    assert!(!log.contains("no_source"), "{log}");
    assert!(!log.contains("no_neighbour"), "{log}");
}

/// A NAT real server's UDP replies larger than the MTU leave it in
/// fragments; the director translates every fragment (the first by its
/// connection, the rest by the fragment table), so the client's kernel
/// reassembles a datagram from VIP:53 — with any fragment left untranslated
/// (the real server's address) there would be nothing to reassemble.
/// socat on both ends; the bed's default offload-free flavour.
#[test]
fn nat_udp_replies_larger_than_the_mtu_arrive_translated() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Nat,
        reals: 1,
        director_queues: 1,
    });
    director::warm_neighbours(&bed, 1);
    let answer: Vec<u8> = (0..3000u32)
        .map(|i| b"0123456789abcdef"[(i * 7 % 16) as usize])
        .collect();
    let file = bed.tempdir().join("answer.txt");
    std::fs::write(&file, &answer).unwrap();
    let serve = format!("cat {}", file.display());
    let mut server = bed.spawn(
        Host::Real(0),
        &[
            "socat",
            "UDP4-LISTEN:5353,fork,reuseaddr",
            &format!("SYSTEM:{serve}"),
        ],
    );
    let start = std::time::Instant::now();
    loop {
        let ss = bed.exec(Host::Real(0), &["ss", "-uln"]);
        if String::from_utf8_lossy(&ss.stdout).contains(":5353") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "socat is not listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg_path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[dataplane]\ninterfaces = [\"{}\"]\nidle = \"wait\"\n\n\
             [control]\nsocket = \"{}\"\n\n\
             [[services]]\nproto = \"udp\"\nvip = \"{}:53\"\nscheduler = \"rr\"\n\n\
             [[services.reals]]\naddr = \"{}:5353\"\nforward = \"nat\"\n",
            bed.director_iface(),
            director::socket(&bed).display(),
            bed.vip(),
            bed.real_addr(0)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&bed, &cfg_path);
    let query = format!("echo q | socat -t 1 -T 5 - UDP4:{}:53", bed.vip());
    for k in 0..5 {
        let out = bed.exec(Host::Client, &["sh", "-c", &query]);
        assert!(
            out.stdout == answer,
            "query {k}: {} bytes back, {}; xdpvs log:\n{}",
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr),
            daemon.log()
        );
    }
    let log = daemon.stop();
    let _ = server.kill();
    let _ = server.wait();
    assert!(!log.contains("fragment"), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("<6>xdpvs: worker 0: rx"))
        .unwrap();
    // Five replies of three fragments each, all sent as replies.
    assert!(line.contains("tx_replies=15"), "{line}");
}
