//! The daemon under a service manager, and with least privilege (root; CI
//! runs as root), on the namespace test bed (kernel default offloads do
//! not matter here: DR, offloads off as the bed builds them):
//!
//! - `dist/xdpvs.service` passes `systemd-analyze verify` (with ExecStart
//!   pointed at the built binary, which must exist for it; without its
//!   man pages, which only the package installs) with no warning at all,
//!   and `systemd-analyze security` rates it at most "OK";
//! - the readiness protocol, over a datagram socket the test owns as
//!   `NOTIFY_SOCKET`: the first message is `READY=1` once the daemon has
//!   logged `running:`, `WATCHDOG=1` pings come while it runs, a SIGHUP
//!   gives `RELOADING=1` then `READY=1`, SIGTERM gives `STOPPING=1` and
//!   no ping after it; a worker that panics (fault injection) stops the
//!   pings: `STOPPING=1` names it and no `WATCHDOG=1` follows;
//! - least privilege, twice: started as root with `daemon.user =
//!   "nobody"`, and started as the unit starts it (its User= stood in for
//!   by nobody, its AmbientCapabilities=, CapabilityBoundingSet=,
//!   NoNewPrivileges=, through setpriv; LimitMEMLOCK= is only checked to
//!   be there, see below): the
//!   running daemon's `/proc/PID/status` shows exactly the kept set in
//!   the control thread and no capability in any worker thread, the
//!   control socket is 0600, and forwarding, xdpvsadm edits and a SIGHUP
//!   reload all still work.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use director::{Daemon, config, spread, xdpvs_bin, xdpvsadm_bin};
use testbed::{Host, Mode, Options, Testbed};

/// One bed at a time (two cores, three apache2 and a daemon each).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/xdpvs.service");

fn bed() -> Testbed {
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        reals: 3,
        director_queues: 2,
    });
    director::warm_neighbours(&bed, 3);
    bed
}

/// The unit with its binary paths replaced by the built ones.
fn unit_for_build(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("dist/xdpvs.service");
    assert!(text.contains("ExecStart=/usr/sbin/xdpvs "), "{text}");
    let path = dir.join("xdpvs.service");
    std::fs::write(&path, text.replace("/usr/sbin/xdpvs", xdpvs_bin())).unwrap();
    path
}

/// Which real servers answered `n` requests (all of which succeed). With
/// round robin in each of two workers, n >= 6 reaches every real server
/// (one worker gets at least 3 connections), however the connections
/// spread over the workers.
fn served(bed: &Testbed, n: usize) -> Vec<String> {
    let seen = spread(bed, n);
    assert_eq!(seen.values().sum::<usize>(), n);
    seen.into_keys().collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xdpvs-systemd-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_unit_verifies() {
    let dir = scratch("verify");
    let unit = unit_for_build(&dir);
    // --man=no: the man pages the unit names come with the package.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd; scripts/setup.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // A bad value or an unknown key is only a warning (status 0).
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");

    // Exposure 0 (best) to 10; "OK" is below 4 (threshold in tenths).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=40", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Overall exposure level"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A unit line's value (`Key=value`), the last one if repeated.
fn unit_value(text: &str, key: &str) -> String {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("dist/xdpvs.service has no {key}="))
        .trim()
        .to_owned()
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct Manager {
    sock: UnixDatagram,
    path: PathBuf,
    /// Every message so far, in order.
    seen: Vec<String>,
}

impl Manager {
    fn new(bed: &Testbed) -> Manager {
        let path = bed.tempdir().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Manager {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    fn env(&self, watchdog_usec: u64) -> String {
        format!(
            "NOTIFY_SOCKET={} WATCHDOG_USEC={watchdog_usec}",
            self.path.display()
        )
    }

    /// Reads until a message satisfies `done` (bounded by `limit`);
    /// returns the index of that message in `seen`.
    fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> usize {
        let start = Instant::now();
        let from = self.seen.len();
        if let Some(i) = self.seen[from..].iter().position(|m| done(m)) {
            return from + i;
        }
        loop {
            let mut buf = [0u8; 1024];
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = done(&m);
                self.seen.push(m);
                if hit {
                    return self.seen.len() - 1;
                }
            }
            assert!(
                start.elapsed() < limit,
                "no {what} within {limit:?}; messages: {:?}",
                self.seen
            );
        }
    }

    /// Reads whatever is still queued.
    fn drain(&mut self) {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.sock.set_nonblocking(false).unwrap();
    }

    fn pings_after(&self, i: usize) -> usize {
        self.seen[i + 1..]
            .iter()
            .filter(|m| *m == "WATCHDOG=1")
            .count()
    }
}

#[test]
fn readiness_reload_watchdog_and_stop_are_notified() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed();
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Dr, "rr", [1, 1, 1])).unwrap();
    let mut m = Manager::new(&bed);
    // Pings every 50 ms.
    let daemon = Daemon::start_with_env(&bed, &cfg, &m.env(100_000));
    // start_with_env returned once the log said running:.
    let ready = m.until("READY=1", Duration::from_secs(5), |s| {
        s.starts_with("READY=1")
    });
    assert_eq!(ready, 0, "READY=1 comes first: {:?}", m.seen);
    assert!(
        m.seen[0].contains("\nSTATUS=running: 2 workers, 1 services"),
        "{:?}",
        m.seen[0]
    );
    for _ in 0..3 {
        m.until("WATCHDOG=1", Duration::from_secs(5), |s| s == "WATCHDOG=1");
    }
    assert_eq!(served(&bed, 30), ["rs1", "rs2", "rs3"]);

    daemon.signal("HUP");
    let reloading = m.until("RELOADING=1", Duration::from_secs(10), |s| {
        s.starts_with("RELOADING=1\nMONOTONIC_USEC=")
    });
    let ready = m.until("READY=1 after the reload", Duration::from_secs(10), |s| {
        s.starts_with("READY=1")
    });
    assert!(ready > reloading);
    assert!(
        m.seen[ready].contains("STATUS=reloaded "),
        "{:?}",
        m.seen[ready]
    );
    daemon.wait_for("xdpvs: reloaded ", Duration::from_secs(5));

    let log = daemon.stop();
    m.drain();
    let stopping = m
        .seen
        .iter()
        .position(|s| s.starts_with("STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1: {:?}\nlog:\n{log}", m.seen));
    assert_eq!(m.seen[stopping], "STOPPING=1\nSTATUS=stopping");
    assert_eq!(m.pings_after(stopping), 0, "{:?}", m.seen);
}

#[test]
fn a_dead_worker_stops_the_watchdog() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::new(Options {
        mode: Mode::Dr,
        reals: 3,
        director_queues: 1,
    });
    director::warm_neighbours(&bed, 3);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Dr, "rr", [1, 1, 1])).unwrap();
    let mut m = Manager::new(&bed);
    let env = format!("{} XDPVS_FAULT_WORKER_PANIC=0:1", m.env(100_000));
    let daemon = Daemon::start_with_env(&bed, &cfg, &env);
    m.until("READY=1", Duration::from_secs(5), |s| {
        s.starts_with("READY=1")
    });
    m.until("WATCHDOG=1", Duration::from_secs(5), |s| s == "WATCHDOG=1");
    // The one worker receives the SYN and panics.
    let url = format!("http://{}/", bed.vip());
    let _ = bed.exec(Host::Client, &["curl", "-sS", "--max-time", "2", &url]);
    let (status, log) = daemon.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    m.drain();
    let stopping = m
        .seen
        .iter()
        .position(|s| s.starts_with("STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1: {:?}\nlog:\n{log}", m.seen));
    assert_eq!(
        m.seen[stopping],
        "STOPPING=1\nSTATUS=worker 0 panicked: fault injection: panic after 1 received frames"
    );
    assert_eq!(
        m.pings_after(stopping),
        0,
        "pinged with a dead worker: {:?}",
        m.seen
    );
}

/// The capability sets of one task's `/proc/.../status`.
#[derive(Debug, PartialEq, Eq)]
struct Creds {
    name: String,
    uid: String,
    gid: String,
    inh: u64,
    prm: u64,
    eff: u64,
    bnd: u64,
    amb: u64,
    no_new_privs: bool,
}

fn creds(status: &Path) -> Creds {
    let text = std::fs::read_to_string(status).unwrap();
    let field = |k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{}: no {k}", status.display()))
            .trim()
            .to_owned()
    };
    let hex = |k: &str| u64::from_str_radix(&field(k), 16).unwrap();
    Creds {
        name: field("Name"),
        uid: field("Uid"),
        gid: field("Gid"),
        inh: hex("CapInh"),
        prm: hex("CapPrm"),
        eff: hex("CapEff"),
        bnd: hex("CapBnd"),
        amb: hex("CapAmb"),
        no_new_privs: field("NoNewPrivs") == "1",
    }
}

/// Capability numbers (linux/capability.h) by the names the daemon logs.
fn cap_bit(name: &str) -> u64 {
    let n = match name {
        "cap_net_admin" => 12,
        "cap_net_raw" => 13,
        "cap_ipc_lock" => 14,
        "cap_sys_admin" => 21,
        "cap_perfmon" => 38,
        "cap_bpf" => 39,
        other => panic!("unexpected capability kept: {other}"),
    };
    1 << n
}

/// Whether this kernel checks map reads and updates against capabilities
/// (before 6.5 it does, with unprivileged BPF disabled).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = rel
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Checks the running daemon's threads: the control thread holds exactly
/// the set it logged (and, on a kernel from 6.5 on, that is CAP_NET_ADMIN
/// alone), every worker none; all run as `uid`, with no_new_privs.
/// `bounding`: the bounding set expected (`None`: the kept set, which
/// the daemon can shrink it to when it has CAP_SETPCAP).
fn check_privileges(daemon: &Daemon, uid: u32, bounding: Option<u64>) {
    let log = daemon.log();
    let kept_line = log
        .lines()
        .find_map(|l| {
            l.split_once("xdpvs: capabilities: kept ")
                .map(|(_, rest)| rest)
        })
        .unwrap_or_else(|| panic!("no capabilities line; log:\n{log}"));
    let kept: Vec<&str> = kept_line
        .split(", dropped the rest")
        .next()
        .unwrap()
        .split(", ")
        .collect();
    if kernel_at_least(6, 5) {
        assert_eq!(kept, ["cap_net_admin"], "log:\n{log}");
    }
    let mask: u64 = kept.iter().map(|n| cap_bit(n)).sum();
    let pid = daemon.child.id();
    let ids = format!("{uid}\t{uid}\t{uid}\t{uid}");
    let leader = creds(Path::new(&format!("/proc/{pid}/status")));
    // For the record (`-- --nocapture`): what the running daemon holds.
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for l in text.lines().filter(|l| {
        ["Uid:", "Gid:", "Cap", "NoNewPrivs:"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        eprintln!("/proc/{pid}/status {l}");
    }
    assert_eq!(
        leader,
        Creds {
            name: "xdpvs".into(),
            uid: ids.clone(),
            gid: leader.gid.clone(),
            inh: 0,
            prm: mask,
            eff: mask,
            bnd: bounding.unwrap_or(mask),
            amb: 0,
            no_new_privs: true,
        },
        "the control thread; log:\n{log}"
    );
    let mut workers = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let c = creds(&task.unwrap().path().join("status"));
        assert_eq!(c.uid, ids, "{c:?}");
        if c.name.starts_with("xdpvs-w") {
            workers += 1;
            assert_eq!(
                (c.inh, c.prm, c.eff, c.amb, c.no_new_privs),
                (0, 0, 0, 0, true),
                "a worker keeps no capability: {c:?}"
            );
        } else {
            assert_eq!((c.prm, c.eff), (mask, mask), "{c:?}");
        }
    }
    assert_eq!(workers, 2, "two queues, two workers");
}

/// `xdpvsadm --socket S args...`, which must succeed.
fn adm(bed: &Testbed, sock: &Path, args: &[&str]) -> String {
    let sock = sock.display().to_string();
    let mut all = vec![xdpvsadm_bin(), "--socket", &sock];
    all.extend_from_slice(args);
    let out = bed.exec(Host::Director, &all);
    assert!(
        out.status.success(),
        "xdpvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Forwarding, an xdpvsadm edit and a SIGHUP reload, with the daemon as
/// it now runs; the control socket 0600 and `uid`'s.
fn still_works(bed: &Testbed, daemon: &Daemon, sock: &Path, uid: u32) {
    let meta = std::fs::metadata(sock).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "control socket mode");
    assert_eq!(meta.uid(), uid, "control socket owner");
    assert_eq!(served(bed, 30), ["rs1", "rs2", "rs3"]);
    let vip = format!("{}:80", bed.vip());
    let rs3 = format!("{}:80", bed.real_addr(2));
    adm(bed, sock, &["-d", "-t", &vip, "-r", &rs3]);
    assert!(!adm(bed, sock, &["-L", "-n"]).contains(&rs3));
    assert_eq!(served(bed, 30), ["rs1", "rs2"]);
    // The file is read again (as the daemon's user); it did not change,
    // so the live deletion stays (README, Signals) until rs3 is added back.
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reloaded ", Duration::from_secs(10));
    assert!(!adm(bed, sock, &["-L", "-n"]).contains(&rs3));
    adm(bed, sock, &["-a", "-t", &vip, "-r", &rs3, "-g", "-w", "1"]);
    assert!(adm(bed, sock, &["-L", "-n"]).contains(&rs3));
    assert_eq!(served(bed, 30), ["rs1", "rs2", "rs3"]);
    // A new service, and its removal, rewrite the steering maps.
    let vip2 = format!("{}:8080", bed.vip());
    adm(bed, sock, &["-A", "-t", &vip2, "-s", "rr"]);
    assert!(adm(bed, sock, &["-L", "-n"]).contains(&vip2));
    adm(bed, sock, &["-D", "-t", &vip2]);
    assert!(!adm(bed, sock, &["-L", "-n"]).contains(&vip2));
    // ... with the capabilities kept, or the daemon would say so.
    let log = daemon.log();
    assert!(!log.contains("XDP maps:"), "log:\n{log}");
}

const NOBODY: u32 = 65534;

/// A directory for the control socket that `uid` owns, as systemd's
/// RuntimeDirectory= is the unit user's.
fn runtime_dir(bed: &Testbed, name: &str, uid: u32) -> PathBuf {
    let dir = bed.tempdir().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    dir
}

/// The bed's configuration with the control socket at `sock` and `extra`.
fn config_with(bed: &Testbed, sock: &Path, extra: &str) -> PathBuf {
    let text = config(bed, &Mode::Dr, "rr", [1, 1, 1]).replace(
        &director::socket(bed).display().to_string(),
        &sock.display().to_string(),
    );
    let path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&path, format!("{extra}{text}")).unwrap();
    // Readable by the daemon's user: SIGHUP reads it again.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

#[test]
fn least_privilege_as_daemon_user_and_as_the_unit_runs_it() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = bed();

    // 1. Started as root, switching to daemon.user itself.
    let sock = runtime_dir(&bed, "run1", NOBODY).join("xdpvs.sock");
    let cfg = config_with(&bed, &sock, "[daemon]\nuser = \"nobody\"\n\n");
    let daemon = Daemon::start(&bed, &cfg);
    let log = daemon.log();
    assert!(
        log.contains("dropped the rest; running as user nobody (65534), group nogroup (65534)\n"),
        "log:\n{log}"
    );
    check_privileges(&daemon, NOBODY, None);
    still_works(&bed, &daemon, &sock, NOBODY);
    daemon.stop();
    assert!(!sock.exists(), "the control socket was left behind");

    // 2. As the unit starts it: its user (nobody stands in for xdpvs) with
    // the unit's ambient capabilities, bounding set and no_new_privs.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let caps = |key: &str| -> String {
        let v = unit_value(&unit, key);
        let list: Vec<String> = v
            .split_whitespace()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect();
        format!("-all,{}", list.join(","))
    };
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(unit_value(&unit, "LimitMEMLOCK"), "infinity");
    let sock = runtime_dir(&bed, "run2", NOBODY).join("xdpvs.sock");
    let cfg = config_with(&bed, &sock, "");
    // The build tree may not be reachable by nobody; a copy is.
    let bin = bed.tempdir().join("xdpvs");
    std::fs::copy(xdpvs_bin(), &bin).unwrap();
    let ambient = caps("AmbientCapabilities");
    // LimitMEMLOCK= is not reproduced: raising a hard limit needs
    // CAP_SYS_RESOURCE, which containers (CI's among them) may not give
    // even to root. The unit's CAP_IPC_LOCK exempts the UMEM from the
    // limit anyway, so the daemon starts under this bed's small one.
    let log = bed.tempdir().join("xdpvs-unit.log");
    let cmd = format!(
        "exec setpriv --reuid={NOBODY} --regid={NOBODY} \
         --clear-groups --inh-caps={ambient} --ambient-caps={ambient} --bounding-set={} \
         --no-new-privs {} --config {} 2>{}",
        caps("CapabilityBoundingSet"),
        bin.display(),
        cfg.display(),
        log.display()
    );
    let child = bed.spawn(Host::Director, &["sh", "-c", &cmd]);
    let daemon = Daemon { child, log };
    daemon.wait_for("xdpvs: running:", Duration::from_secs(20));
    assert!(
        !daemon.log().contains("running as user"),
        "no switch without daemon.user"
    );
    // Without CAP_SETPCAP (the unit gives none) the bounding set stays
    // the unit's.
    let bounding = unit_value(&unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| cap_bit(&c.to_lowercase()))
        .sum();
    check_privileges(&daemon, NOBODY, Some(bounding));
    still_works(&bed, &daemon, &sock, NOBODY);
    daemon.stop();
    assert!(!sock.exists(), "the control socket was left behind");
}
