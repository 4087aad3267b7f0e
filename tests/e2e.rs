//! End to end, on the namespace test bed (TESTBED.md): real apache2 on
//! three real servers, real curl on the client, the `xdpvs` daemon started
//! from a configuration file in the director's namespace, for DR, TUN and
//! NAT. Needs root (CI runs as root).
//!
//! Each mode runs the same scenario: 300 requests with rr split exactly
//! evenly; a SIGHUP reload to wrr 3:2:1 splits the next 300 exactly 3:2:1
//! while a slow download started before the reload completes intact; a
//! reload giving one real server weight 0 leaves it without requests.
//! NAT also runs with two workers on a two-queue interface, where the
//! replies of most connections arrive at the worker that does not own them.

#[path = "testbed/mod.rs"]
mod testbed;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::{Host, Mode, Options, Testbed};

const REQUESTS: usize = 300;

fn xdpvs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xdpvs")
}

/// The test bed's configuration for `mode`: one TCP service on the VIP,
/// the three real servers with `weights` under `scheduler`.
fn config(bed: &Testbed, mode: &Mode, scheduler: &str, weights: [u32; 3]) -> String {
    let forward = match mode {
        Mode::Dr => "dr",
        Mode::Tun => "tun",
        Mode::Nat => "nat",
    };
    let mut s = format!(
        "[dataplane]\ninterfaces = [\"{}\"]\nidle = \"wait\"\nbatch_size = 32\n\
         tunnel_source = \"198.18.2.2\"\nmtu = {}\n\n\
         [connections]\nmax_entries = 65536\n\n\
         [control]\nsocket = \"{}\"\n\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{}:80\"\nscheduler = \"{scheduler}\"\n",
        bed.director_iface(),
        bed.lan_mtu(),
        bed.tempdir().join("xdpvs.sock").display(),
        bed.vip(),
    );
    for (i, w) in weights.iter().enumerate() {
        s.push_str(&format!(
            "\n[[services.reals]]\naddr = \"{}:80\"\nforward = \"{forward}\"\nweight = {w}\n",
            bed.real_addr(i)
        ));
    }
    s
}

/// The daemon, running in the director's namespace, its log in a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bed: &Testbed, config: &Path) -> Daemon {
        let log = bed.tempdir().join("xdpvs.log");
        let cmd = format!(
            "exec {} --config {} 2>{}",
            xdpvs_bin(),
            config.display(),
            log.display()
        );
        let child = bed.spawn(Host::Director, &["sh", "-c", &cmd]);
        let d = Daemon { child, log };
        d.wait_for("xdpvs: running:", Duration::from_secs(20));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `line` in it `times` times.
    fn wait_for_n(&self, line: &str, times: usize, limit: Duration) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.matches(line).count() >= times {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "xdpvs did not log {line:?} within {limit:?}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, line: &str, limit: Duration) {
        self.wait_for_n(line, 1, limit);
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} xdpvs");
    }

    /// SIGTERM, wait (bounded) for a clean exit; returns the whole log.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(status.success(), "xdpvs exited with {status}; log:\n{log}");
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "xdpvs did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `n` requests for `/` from the client, each on a new connection, in one
/// curl process; returns how many each real server answered.
fn spread(bed: &Testbed, n: usize) -> BTreeMap<String, usize> {
    let url = format!("http://{}/", bed.vip());
    let mut args = vec![
        "curl",
        "-sS",
        "--max-time",
        "60",
        "--connect-timeout",
        "5",
        "-H",
        "Connection: close",
        "-w",
        " %{http_code}\n",
    ];
    for _ in 0..n {
        args.push(&url);
    }
    let out = bed.exec(Host::Client, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        2 * n,
        "one body line and one status line per request:\n{text}"
    );
    for pair in lines.chunks(2) {
        assert_eq!(
            pair[1], " 200",
            "status of a request answered {:?}",
            pair[0]
        );
        assert!(pair[0].starts_with("rs"), "unexpected body {:?}", pair[0]);
        *seen.entry(pair[0].to_owned()).or_insert(0) += 1;
    }
    seen
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

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
    // Let the director's kernel learn the real servers' MACs first, as a
    // director on a live LAN has them.
    for i in 0..3 {
        let a = bed.real_addr(i).to_string();
        let out = bed.exec(Host::Director, &["ping", "-c1", "-W2", &a]);
        assert!(out.status.success(), "director cannot ping {a}");
    }
    let cfg_path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg_path, config(&bed, &mode, "rr", [1, 1, 1])).unwrap();
    let daemon = Daemon::start(&bed, &cfg_path);

    let third = REQUESTS / 3;
    assert_eq!(
        spread(&bed, REQUESTS),
        counts(&[("rs1", third), ("rs2", third), ("rs3", third)]),
        "rr splits evenly"
    );

    let download = slow_download(&bed);
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(&cfg_path, config(&bed, &mode, "wrr", [3, 2, 1])).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reloaded", Duration::from_secs(10));
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
        .filter(|l| l.starts_with("xdpvs: worker ") && l.contains(": rx "))
        .collect();
    assert_eq!(
        workers.len(),
        queues as usize,
        "one worker per queue:\n{log}"
    );
    let field = |line: &str, name: &str| -> u64 {
        let rest = &line[line.find(&format!(" {name} ")).unwrap() + name.len() + 2..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    for w in &workers {
        assert!(field(w, "rx") > 0, "every worker received traffic: {w}");
        assert!(!w.contains("no_neighbour"), "{w}");
    }
    if queues > 1 && mode == Mode::Nat {
        let handed: u64 = workers.iter().map(|w| field(w, "sent")).sum();
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
