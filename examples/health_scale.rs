//! The checker's CPU at scale: 5 000 TCP checks every second against
//! listeners on 127.0.0.1 inside a network namespace of its own
//! (`xdpvs<pid>hs`, removed on exit), reporting the checker thread's CPU
//! time (utime + stime of `/proc/self/task/TID/stat`) over the run.
//!
//!     cargo run --release --example health_scale [CHECKS] [SECONDS]
//!
//! Defaults: 5 000 checks, 30 s (after a 3 s warm-up). Needs root (it
//! creates the namespace). The listeners run on other threads, so only the
//! checker's own work is counted.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xdpvs::config::{CheckConfig, CheckKind, Forward, Protocol};
use xdpvs::health::{Monitor, THREAD_NAME, Target};

const LISTENERS: u16 = 4;
const BASE_PORT: u16 = 18080;

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(ok.success(), "ip {args:?} failed");
}

/// utime + stime of the checker thread, in clock ticks.
fn checker_ticks() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != THREAD_NAME {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the ")" of the command name: state is field 3,
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        return Some(utime + stime);
    }
    None
}

fn main() {
    let mut args = std::env::args().skip(1);
    let checks: u32 = args.next().map_or(5000, |a| a.parse().expect("CHECKS"));
    let seconds: u64 = args.next().map_or(30, |a| a.parse().expect("SECONDS"));

    let ns = Namespace(format!("xdpvs{}hs", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let file = std::fs::File::open(format!("/run/netns/{}", ns.0)).expect("namespace file");
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");

    // Threads started from here on are born in the namespace.
    let accepted = Arc::new(AtomicU64::new(0));
    for i in 0..LISTENERS {
        let listener = TcpListener::bind(("127.0.0.1", BASE_PORT + i)).expect("listen");
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                accepted.fetch_add(1, Ordering::Relaxed);
                drop(conn);
            }
        });
    }

    let targets: Vec<Target> = (0..checks)
        .map(|i| {
            // Distinct real servers 127.1.x.y; all probes go to the listeners.
            let real: SocketAddr =
                (std::net::Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8), 80).into();
            let mut check = CheckConfig::new(CheckKind::Tcp, real);
            check.interval = Duration::from_secs(1);
            check.connect_timeout = Duration::from_secs(2);
            check.connect_ip = "127.0.0.1".to_owned();
            check.connect_port = BASE_PORT + (i % u32::from(LISTENERS)) as u16;
            Target {
                proto: Protocol::Tcp,
                vip: "198.18.1.1:80".parse().unwrap(),
                real,
                forward: Forward::Dr,
                checks: vec![check],
                dataplane: Default::default(),
            }
        })
        .collect();

    let monitor = Monitor::start(targets).expect("Monitor::start");
    std::thread::sleep(Duration::from_secs(3));
    let mut down = monitor.verdicts().iter().filter(|v| !v.up).count();
    let ticks0 = checker_ticks().expect("the checker thread");
    let accepted0 = accepted.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks1 = checker_ticks().expect("the checker thread");
    let connects = accepted.load(Ordering::Relaxed) - accepted0;
    let wall = start.elapsed().as_secs_f64();
    down += monitor.verdicts().iter().filter(|v| !v.up).count();
    drop(monitor);

    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu = (ticks1 - ticks0) as f64 / hz;
    println!(
        "{checks} TCP checks every 1 s for {wall:.1} s: {:.0} connects/s; checker thread CPU {cpu:.2} s = {:.1} % of one core; down verdicts: {down}",
        connects as f64 / wall,
        100.0 * cpu / wall
    );
}
