//! Helpers for tests that run the `xdpvs` daemon on the test bed: its
//! configuration, starting and stopping it, and counting which real server
//! answered.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::testbed::{Host, Mode, Testbed};

pub const REQUESTS: usize = 300;

pub fn xdpvs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xdpvs")
}

/// The test bed's configuration for `mode`: one TCP service on the VIP,
/// the three real servers with `weights` under `scheduler`.
pub fn config(bed: &Testbed, mode: &Mode, scheduler: &str, weights: [u32; 3]) -> String {
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
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(bed: &Testbed, config: &Path) -> Daemon {
        Daemon::start_with_env(bed, config, "")
    }

    /// As [`Daemon::start`], with `env` (`NAME=value ...`, shell words)
    /// in the daemon's environment.
    pub fn start_with_env(bed: &Testbed, config: &Path, env: &str) -> Daemon {
        let log = bed.tempdir().join("xdpvs.log");
        let cmd = format!(
            "{env} exec {} --config {} 2>{}",
            xdpvs_bin(),
            config.display(),
            log.display()
        );
        let child = bed.spawn(Host::Director, &["sh", "-c", &cmd]);
        let d = Daemon { child, log };
        d.wait_for("xdpvs: running:", Duration::from_secs(20));
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `line` in it `times` times.
    pub fn wait_for_n(&self, line: &str, times: usize, limit: Duration) {
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

    pub fn wait_for(&self, line: &str, limit: Duration) {
        self.wait_for_n(line, 1, limit);
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} xdpvs");
    }

    /// Waits (bounded by `limit`) for the daemon to exit by itself;
    /// returns its status and whole log.
    pub fn wait_exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("xdpvs still ran after {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait (bounded) for a clean exit; returns the whole log.
    pub fn stop(mut self) -> String {
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
pub fn spread(bed: &Testbed, n: usize) -> BTreeMap<String, usize> {
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

pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

pub fn xdpvsadm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xdpvsadm")
}

/// The control socket the bed's configurations name.
pub fn socket(bed: &Testbed) -> PathBuf {
    bed.tempdir().join("xdpvs.sock")
}

/// `xdpvsadm --socket S args...` in the director's namespace.
pub fn xdpvsadm(bed: &Testbed, args: &[&str]) -> std::process::Output {
    let sock = socket(bed).display().to_string();
    let mut all = vec![xdpvsadm_bin(), "--socket", &sock];
    all.extend_from_slice(args);
    bed.exec(Host::Director, &all)
}

/// [`xdpvsadm`], which must succeed; returns its standard output.
pub fn xdpvsadm_ok(bed: &Testbed, args: &[&str]) -> String {
    let out = xdpvsadm(bed, args);
    assert!(
        out.status.success(),
        "xdpvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pings every real server from the director, so its kernel has their
/// MACs before the daemon starts (as on a live LAN).
pub fn warm_neighbours(bed: &Testbed, reals: usize) {
    for i in 0..reals {
        let a = bed.real_addr(i).to_string();
        let out = bed.exec(Host::Director, &["ping", "-c1", "-W2", &a]);
        assert!(out.status.success(), "director cannot ping {a}");
    }
}

/// An IPv4 packet from `src` to `dst` with protocol `proto` around `l4`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let len = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = xdpvs::wire::checksum::checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// Sends whole IPv4 packets (our own headers, IPPROTO_RAW) from `host`'s
/// namespace, as that host's kernel routes them.
pub fn send_raw_ipv4(bed: &Testbed, host: Host, packets: Vec<Vec<u8>>) {
    use nix::sched::{CloneFlags, setns};
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sendto, socket,
    };
    use std::os::fd::AsRawFd;
    let ns = format!("/run/netns/{}", bed.ns(host));
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("open {ns}: {e}"));
        setns(f, CloneFlags::CLONE_NEWNET).expect("setns");
        let tx = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Raw,
        )
        .expect("raw IP socket");
        for p in packets {
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let to = SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
            sendto(tx.as_raw_fd(), &p, &to, MsgFlags::empty()).expect("send raw packet");
        }
    })
    .join()
    .unwrap();
}

/// The sum over the workers' lines of the shutdown log of counter `name`
/// (`rx`, `sent`, or a drop reason such as `malformed`).
pub fn counter(log: &str, name: &str) -> u64 {
    log.lines()
        .filter(|l| l.starts_with("<6>xdpvs: worker ") && l.contains(": rx "))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.iter().enumerate().find_map(|(i, w)| {
                if let Some(v) = w.strip_prefix(&format!("{name}=")) {
                    return v.parse::<u64>().ok();
                }
                (*w == name).then(|| words.get(i + 1)?.parse::<u64>().ok())?
            })
        })
        .sum()
}

/// Makes the client's TCP receive buffer small (64 KiB at most), so that
/// `curl --limit-rate` paces the transfer on the wire rather than only
/// its reading from a socket buffer that already holds the whole file: a
/// "slow download" then really is in flight for its whole duration.
pub fn small_client_window(bed: &Testbed) {
    let out = bed.exec(
        Host::Client,
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 16384 65536"],
    );
    assert!(
        out.status.success(),
        "sysctl tcp_rmem in the client namespace"
    );
}
