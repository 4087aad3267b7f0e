//! The health checker against real servers: apache2 (HTTP 200 and 500,
//! HTTPS with mod_ssl and a self-signed certificate), dnsmasq (DNS and
//! UDP), socat (an endpoint that answers garbage, one that never
//! finishes its body), and scripts (plain, dynamic, hanging). The
//! [`Monitor`] runs without a director: the test thread enters the
//! checker's namespace (`a`, 198.18.0.1) before starting it, so the
//! Monitor's thread is born there; the servers run in namespace `b`
//! (198.18.0.2). Offloads stay at the kernel's defaults (no frame sizes
//! matter here).
//!
//! Timing properties are counted, not timed: the scripts count their own
//! runs, and the verdicts must come exactly after the runs that
//! rise/fall/retry say.

mod netns;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns::VethPair;
use xdpvs::config::{
    CheckConfig, CheckKind, CommandLine, DnsCheck, Forward, HttpCheck, Protocol, ScriptCheck,
    UdpCheck, UrlCheck,
};
use xdpvs::health::{Monitor, Target, Verdict};

const SERVER: &str = "198.18.0.2";
const BOUND: Duration = Duration::from_secs(20);

/// Two namespaces, the servers in `b`, a temp dir; all removed on drop.
struct Bed {
    pair: VethPair,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let pair = VethPair::new(tag);
        let dir = PathBuf::from(format!("/tmp/{}-health", pair.a));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        // Port unreachable must come back for every probe.
        for knob in [
            "net.ipv4.icmp_ratelimit=0",
            "net.ipv4.icmp_msgs_per_sec=100000",
        ] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &pair.b, "sysctl", "-qw", knob])
                .status();
        }
        Bed {
            pair,
            dir,
            children: Vec::new(),
        }
    }

    fn spawn_b(&mut self, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.pair.b])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join(format!("{}.err", self.children.len())))
                    .unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        self.children.push(child);
    }

    /// apache2 on :80 (/ = 200, /broken/ = 500) and :443 (mod_ssl, a
    /// self-signed certificate for rs.test).
    fn apache(&mut self) {
        let d = self.dir.clone();
        for sub in ["htdocs/broken", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("htdocs/index.html"), "healthy OK\n").unwrap();
        // An invalid .htaccess: apache answers 500 Internal Server Error.
        std::fs::write(d.join("htdocs/broken/.htaccess"), "NotADirective x\n").unwrap();
        std::fs::write(d.join("htdocs/broken/index.html"), "never\n").unwrap();
        for p in ["htdocs", "htdocs/broken", "run"] {
            chmod(&d.join(p), 0o755);
        }
        // A test CA and a leaf certificate for rs.test signed by it.
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &["-days", "2", "-subj", "/CN=xdpvs test CA"],
                &["-keyout", &p("ca.key"), "-out", &p("ca.pem")],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-new"],
                &ec[..],
                &["-subj", "/CN=rs.test"],
                &["-keyout", &p("key.pem"), "-out", &p("leaf.csr")],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=DNS:rs.test\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("leaf.ext"),
            "-out",
            &p("cert.pem"),
        ]);
        let m = "/usr/lib/apache2/modules";
        let conf = format!(
            "ServerRoot \"{d}\"\nServerName rs.test\nListen {SERVER}:80\nListen {SERVER}:443\n\
             PidFile \"{d}/apache2.pid\"\nErrorLog \"{d}/error.log\"\nLogLevel notice\n\
             DefaultRuntimeDir \"{d}/run\"\nMutex file:{d}/run default\n\
             LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule dir_module {m}/mod_dir.so\n\
             LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so\n\
             LoadModule ssl_module {m}/mod_ssl.so\n\
             User www-data\nGroup www-data\nStartServers 1\nServerLimit 2\n\
             ThreadsPerChild 16\nMaxRequestWorkers 32\n\
             DocumentRoot \"{d}/htdocs\"\nDirectoryIndex index.html\n\
             <Directory \"{d}/htdocs\">\n  Require all granted\n  AllowOverride All\n</Directory>\n\
             SSLSessionCache shmcb:{d}/run/ssl_scache(512000)\n\
             <VirtualHost {SERVER}:443>\n  SSLEngine on\n\
             \x20 SSLCertificateFile {d}/cert.pem\n  SSLCertificateKeyFile {d}/key.pem\n\
             </VirtualHost>\n",
            d = d.display()
        );
        std::fs::write(d.join("apache2.conf"), conf).unwrap();
        chmod(&d.join("key.pem"), 0o644);
        let conf = d.join("apache2.conf");
        self.spawn_b(&[
            "/usr/sbin/apache2",
            "-f",
            conf.to_str().unwrap(),
            "-DFOREGROUND",
        ]);
        // Listening is not enough: apache may still be between its two
        // configuration passes; it is ready once it says so.
        let log = d.join("error.log");
        let start = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("resuming normal operations")
        {
            assert!(start.elapsed() < BOUND, "apache did not start: {log:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_tcp(80);
        self.wait_tcp(443);
    }

    fn dnsmasq(&mut self) {
        let pid = self.dir.join("dnsmasq.pid");
        self.spawn_b(&[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--bind-interfaces",
            &format!("--listen-address={SERVER}"),
            "--except-interface=lo",
            "--user=root",
            &format!("--pid-file={}", pid.display()),
            "--local=/test/",
            "--address=/www.example.test/198.18.0.99",
        ]);
    }

    /// socat on `port` running `cmd` for each connection.
    fn socat(&mut self, port: u16, cmd: &str) {
        let listen = format!("TCP-LISTEN:{port},bind={SERVER},reuseaddr,fork");
        self.spawn_b(&["socat", &listen, &format!("SYSTEM:{cmd}")]);
        self.wait_tcp(port);
    }

    /// Waits (from namespace `a`) until `SERVER:port` accepts.
    fn wait_tcp(&self, port: u16) {
        let to = SocketAddr::new(SERVER.parse().unwrap(), port);
        let start = Instant::now();
        while TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_err() {
            assert!(start.elapsed() < BOUND, "nothing listens on {to}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o755);
        p
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|x| x == "err" || x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    eprintln!("--- {}:\n{text}", p.display());
                }
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
        }
        // Whatever still runs in `b` (socat's forks, apache's workers).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.pair.b])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (scripts/setup.sh)");
    assert!(ok.success(), "openssl {args:?} failed");
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn real(port: u16) -> SocketAddr {
    SocketAddr::new(SERVER.parse().unwrap(), port)
}

/// A check with short times, 0 retries, rise = fall = 1.
fn quick(kind: CheckKind, port: u16) -> CheckConfig {
    CheckConfig {
        interval: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1500),
        retry: 0,
        delay_before_retry: Duration::from_millis(50),
        ..CheckConfig::new(kind, real(port))
    }
}

fn target(port: u16, checks: Vec<CheckConfig>) -> Target {
    Target {
        proto: Protocol::Tcp,
        vip: "198.18.1.1:80".parse().unwrap(),
        real: real(port),
        forward: Forward::Dr,
        checks,
        dataplane: Default::default(),
    }
}

fn http(path: &str, status: Vec<(u16, u16)>) -> HttpCheck {
    HttpCheck {
        urls: vec![UrlCheck {
            path: path.to_owned(),
            status,
            digest: None,
            regex: None,
        }],
        virtualhost: None,
        sni: true,
        verify_certificate: false,
        ca_file: None,
    }
}

fn script(cmd: &str, timeout_ms: u64, dynamic: bool) -> CheckKind {
    CheckKind::Script(ScriptCheck {
        command: CommandLine::parse(cmd).unwrap(),
        timeout: Duration::from_millis(timeout_ms),
        dynamic,
        user: None,
    })
}

/// Starts a Monitor whose thread lives in namespace `a`.
fn monitor_in(bed: &Bed, targets: Vec<Target>) -> Monitor {
    VethPair::enter(&bed.pair.a);
    Monitor::start(targets).expect("Monitor::start")
}

/// The verdicts seen so far, and for each real server how far its
/// waits have read.
#[derive(Default, Debug)]
struct Seen {
    all: Vec<Verdict>,
    read: std::collections::HashMap<SocketAddr, usize>,
}

impl std::ops::Deref for Seen {
    type Target = [Verdict];
    fn deref(&self) -> &[Verdict] {
        &self.all
    }
}

impl Seen {
    fn extend(&mut self, more: Vec<Verdict>) {
        self.all.extend(more);
    }
}

/// Collects verdicts until one for `real` after the last one this
/// returned for it satisfies `want` (bounded).
fn wait_for(
    m: &Monitor,
    seen: &mut Seen,
    real: SocketAddr,
    want: impl Fn(&Verdict) -> bool,
) -> Verdict {
    let start = Instant::now();
    loop {
        seen.all.extend(m.verdicts());
        let from = seen.read.get(&real).copied().unwrap_or(0);
        if let Some(i) =
            (from..seen.all.len()).find(|&i| seen.all[i].real == real && want(&seen.all[i]))
        {
            seen.read.insert(real, i + 1);
            return seen.all[i].clone();
        }
        assert!(
            start.elapsed() < BOUND,
            "no such verdict for {real} within {BOUND:?}; seen: {:#?}",
            seen.all
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn of(seen: &[Verdict], real: SocketAddr) -> Vec<(bool, Option<u32>)> {
    seen.iter()
        .filter(|v| v.real == real)
        .map(|v| (v.up, v.weight))
        .collect()
}

#[test]
fn http_and_https_against_apache() {
    let mut bed = Bed::new("hh");
    bed.apache();
    let body_md5 = {
        use md5::{Digest, Md5};
        let d: [u8; 16] = Md5::digest(b"healthy OK\n").into();
        d
    };
    let mut good = http("/", vec![(200, 299)]);
    good.urls[0].digest = Some(body_md5);
    good.urls[0].regex = Some("healthy".to_owned());
    let mut bad_digest = http("/", vec![(200, 299)]);
    bad_digest.urls[0].digest = Some([0; 16]);
    let mut verify = http("/", vec![(200, 299)]);
    verify.verify_certificate = true;
    verify.virtualhost = Some("rs.test".to_owned());
    let mut verify_ca = verify.clone();
    verify_ca.ca_file = Some(bed.dir.join("ca.pem"));
    // One target per case, told apart by their (fake) real server port.
    let cases: Vec<(u16, CheckKind, u16, Option<&str>)> = vec![
        (1, CheckKind::Http(good), 80, None),
        (
            2,
            CheckKind::Http(http("/broken/", vec![(200, 299)])),
            80,
            Some("status 500 not in 200-299"),
        ),
        (
            3,
            CheckKind::Http(http("/broken/", vec![(500, 500)])),
            80,
            None,
        ),
        (4, CheckKind::Http(bad_digest), 80, Some("digest")),
        (5, CheckKind::Https(http("/", vec![(200, 299)])), 443, None),
        (6, CheckKind::Https(verify), 443, Some("certificate")),
        (7, CheckKind::Https(verify_ca), 443, None),
    ];
    let targets = cases
        .iter()
        .map(|(id, kind, port, _)| {
            let mut c = quick(kind.clone(), *port);
            c.connect_ip = SERVER.to_owned();
            target(*id, vec![c])
        })
        .collect();
    let m = monitor_in(&bed, targets);
    let mut seen = Seen::default();
    for (id, _, _, fails) in &cases {
        let r = real(*id);
        match fails {
            Some(why) => {
                let v = wait_for(&m, &mut seen, r, |v| !v.up);
                assert!(v.reason.contains(why), "case {id}: {v:?}");
            }
            None => {
                wait_for(&m, &mut seen, r, |v| v.up);
            }
        }
    }
    // The passing ones stay up: give each a few more checks.
    std::thread::sleep(Duration::from_millis(1000));
    seen.extend(m.verdicts());
    for (id, _, _, fails) in &cases {
        if fails.is_none() {
            assert_eq!(of(&seen, real(*id)), [(true, None)], "case {id}: {seen:#?}");
        }
    }
}

#[test]
fn garbage_never_closing_and_unresolvable() {
    let mut bed = Bed::new("hg");
    bed.socat(8081, "echo SSH-2.0-garbage-not-http; sleep 5");
    bed.socat(
        8082,
        "printf 'HTTP/1.0 200 OK\\r\\n\\r\\npartial'; sleep 60",
    );
    let garbage = quick(CheckKind::Http(http("/", vec![(200, 299)])), 8081);
    let mut endless = http("/", vec![(200, 299)]);
    endless.urls[0].regex = Some("complete".to_owned());
    let mut endless = quick(CheckKind::Http(endless), 8082);
    endless.connect_timeout = Duration::from_millis(700);
    let mut nowhere = quick(CheckKind::Tcp, 80);
    nowhere.connect_ip = "no-such-host.invalid".to_owned();
    let refused = quick(CheckKind::Tcp, 8099);
    let open = quick(CheckKind::Tcp, 8081);
    let targets = vec![
        target(1, vec![garbage]),
        target(2, vec![endless]),
        target(3, vec![nowhere]),
        target(4, vec![refused]),
        target(5, vec![open]),
    ];
    let m = monitor_in(&bed, targets);
    let mut seen = Seen::default();
    let v = wait_for(&m, &mut seen, real(1), |v| !v.up);
    assert!(v.reason.contains("not an HTTP response"), "{v:?}");
    let v = wait_for(&m, &mut seen, real(2), |v| !v.up);
    assert!(v.reason.contains("timed out after 0.7s"), "{v:?}");
    let v = wait_for(&m, &mut seen, real(3), |v| !v.up);
    assert!(v.reason.contains("resolve no-such-host.invalid"), "{v:?}");
    let v = wait_for(&m, &mut seen, real(4), |v| !v.up);
    assert!(v.reason.contains("connect: Connection refused"), "{v:?}");
    assert_eq!(v.check, format!("TCP_CHECK {SERVER}:8099"));
    std::thread::sleep(Duration::from_millis(800));
    seen.extend(m.verdicts());
    assert_eq!(of(&seen, real(5)), [(true, None)], "{seen:#?}");
    // Not stuck: the checker still answers and stops promptly.
    let start = Instant::now();
    drop(m);
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A DNS query for www.example.test as bytes (id 0x1234, RD, type A).
fn dns_query_hex() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["www", "example", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn udp_and_dns_against_dnsmasq() {
    let mut bed = Bed::new("hd");
    bed.dnsmasq();
    let dns = |name: &str, rcode: u16| {
        quick(
            CheckKind::Dns(DnsCheck {
                query_name: name.to_owned(),
                query_type: 1,
                rcode,
            }),
            53,
        )
    };
    let udp = |payload: Vec<u8>, require_reply: bool, port: u16| {
        let mut c = quick(
            CheckKind::Udp(UdpCheck {
                payload,
                require_reply,
            }),
            port,
        );
        c.connect_timeout = Duration::from_millis(600);
        c
    };
    let targets = vec![
        target(1, vec![dns("www.example.test", 0)]),
        target(2, vec![dns("nope.test", 0)]),
        target(3, vec![dns("nope.test", 3)]),
        target(4, vec![udp(dns_query_hex(), true, 53)]),
        target(5, vec![udp(b"hello".to_vec(), false, 9)]),
        target(6, vec![udp(b"\x00".to_vec(), true, 53)]),
    ];
    let m = monitor_in(&bed, targets);
    let mut seen = Seen::default();
    let v = wait_for(&m, &mut seen, real(2), |v| !v.up);
    assert!(v.reason.contains("rcode"), "{v:?}");
    let v = wait_for(&m, &mut seen, real(5), |v| !v.up);
    assert!(v.reason.contains("ICMP: Connection refused"), "{v:?}");
    let v = wait_for(&m, &mut seen, real(6), |v| !v.up);
    assert_eq!(v.reason, "no reply", "{v:?}");
    std::thread::sleep(Duration::from_millis(1500));
    seen.extend(m.verdicts());
    for id in [1, 3, 4] {
        assert_eq!(
            of(&seen, real(id)),
            [(true, None)],
            "target {id}: {seen:#?}"
        );
    }
}

/// A script that counts its runs in `dir/count` and fails the runs listed
/// in its second argument.
const COUNTER: &str = "#!/bin/sh\n\
    n=$(( $(cat \"$1/count\" 2>/dev/null || echo 0) + 1 ))\n\
    echo $n > \"$1/count.tmp\" && mv \"$1/count.tmp\" \"$1/count\"\n\
    case \" $2 \" in *\" $n \"*) exit ${3:-1};; esac\n\
    exit ${4:-0}\n";

fn runs(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn rise_fall_retry_by_count() {
    let bed = Bed::new("hr");
    let counter = bed.script("counter.sh", COUNTER);
    let work = bed.dir.join("w1");
    std::fs::create_dir_all(&work).unwrap();
    // retry = 1: a check is up to 2 runs. fall = 3, rise = 2.
    // run 1 pass | runs 2-5 fail: 2 failed checks (< fall) | run 6 pass |
    // runs 7-12: 3 failed checks -> down after run 12 | runs 13, 14 pass ->
    // up after run 14 | run 15 fails, its retry (16) passes: no change.
    let fails = "2 3 4 5 7 8 9 10 11 12 15";
    let cmd = format!("{} {} '{fails}'", counter.display(), work.display());
    let mut c = quick(script(&cmd, 2000, false), 80);
    c.interval = Duration::from_millis(100);
    c.delay_before_retry = Duration::from_millis(10);
    c.retry = 1;
    c.fall = 3;
    c.rise = 2;
    let t = target(1, vec![c]);
    let m = monitor_in(&bed, vec![t]);
    let mut seen = Seen::default();
    let v = wait_for(&m, &mut seen, real(1), |v| !v.up);
    assert!(runs(&work) >= 12, "down after {} runs", runs(&work));
    assert_eq!(v.reason, "exit status 1");
    wait_for(&m, &mut seen, real(1), |v| v.up);
    assert!(runs(&work) >= 14, "up after {} runs", runs(&work));
    let start = Instant::now();
    while runs(&work) < 20 {
        assert!(
            start.elapsed() < BOUND,
            "the check stopped at {} runs",
            runs(&work)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.extend(m.verdicts());
    assert_eq!(
        of(&seen, real(1)),
        [(true, None), (false, None), (true, None)],
        "{seen:#?}"
    );
}

#[test]
fn alpha_dynamic_and_hanging_scripts() {
    let bed = Bed::new("hs");
    let counter = bed.script("counter.sh", COUNTER);
    let dirs: Vec<PathBuf> = (1..=2)
        .map(|i| {
            let d = bed.dir.join(format!("w{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    // alpha, rise 2: starts down, up after 2 passing runs.
    let mut alpha = quick(
        script(
            &format!("{} {} ''", counter.display(), dirs[0].display()),
            2000,
            false,
        ),
        80,
    );
    alpha.alpha = true;
    alpha.rise = 2;
    alpha.interval = Duration::from_millis(100);
    // dynamic: runs 1-3 exit 12 (weight 10), the rest exit 1 (down).
    let dynamic = quick(
        script(
            &format!("{} {} '1 2 3' 12 1", counter.display(), dirs[1].display()),
            2000,
            true,
        ),
        80,
    );
    // A script that hangs, and leaves a child that hangs too.
    let pids = bed.dir.join("pids");
    let hang = bed.script(
        "hang.sh",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $$ $! > {}\nwait\n",
            pids.display()
        ),
    );
    let hanging = quick(script(hang.to_str().unwrap(), 300, false), 80);
    let m = monitor_in(
        &bed,
        vec![
            target(1, vec![alpha]),
            target(2, vec![dynamic]),
            target(3, vec![hanging]),
        ],
    );
    let mut seen = Seen::default();
    let first = wait_for(&m, &mut seen, real(1), |_| true);
    assert!(!first.up, "alpha starts down: {first:?}");
    wait_for(&m, &mut seen, real(1), |v| v.up);
    assert!(runs(&dirs[0]) >= 2, "up after {} runs", runs(&dirs[0]));

    wait_for(&m, &mut seen, real(2), |v| v.weight == Some(10));
    let v = wait_for(&m, &mut seen, real(2), |v| !v.up);
    assert!(runs(&dirs[1]) >= 4);
    assert_eq!(v.reason, "exit status 1");
    assert_eq!(
        of(&seen, real(2)),
        [(true, None), (true, Some(10)), (false, None)]
    );

    let v = wait_for(&m, &mut seen, real(3), |v| !v.up);
    assert_eq!(v.reason, "timed out after 0.3s, killed");
    // The script and its child are gone (SIGKILL to the group).
    let text = std::fs::read_to_string(&pids).unwrap();
    let start = Instant::now();
    for pid in text.split_whitespace() {
        while Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            assert!(
                start.elapsed() < BOUND,
                "pid {pid} of the hung script still runs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn update_keeps_unchanged_checks() {
    let bed = Bed::new("hu");
    let counter = bed.script("counter.sh", COUNTER);
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let d = bed.dir.join(format!("w{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let check = |i: usize, fails: &str| {
        let mut c = quick(
            script(
                &format!("{} {} '{fails}'", counter.display(), dirs[i].display()),
                2000,
                false,
            ),
            80,
        );
        c.interval = Duration::from_millis(100);
        c
    };
    // Target 1 fails from run 1 on: down. Target 2 stays up.
    let every: String = (1..=500).map(|n| format!("{n} ")).collect();
    let t1 = target(1, vec![check(0, &every)]);
    let t2 = target(2, vec![check(1, "")]);
    let m = monitor_in(&bed, vec![t1.clone(), t2.clone()]);
    let mut seen = Seen::default();
    wait_for(&m, &mut seen, real(1), |v| !v.up);
    // Reload: target 1 unchanged, target 2 gone, target 3 new.
    let t3 = target(3, vec![check(2, "")]);
    m.update(vec![t1.clone(), t3]);
    wait_for(&m, &mut seen, real(3), |v| v.up);
    let frozen = runs(&dirs[1]);
    let before = runs(&dirs[0]);
    let start = Instant::now();
    while runs(&dirs[0]) < before + 5 {
        assert!(start.elapsed() < BOUND, "target 1's check stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.extend(m.verdicts());
    // Target 1 kept its state: no second initial verdict, still down.
    assert_eq!(
        of(&seen, real(1)),
        [(true, None), (false, None)],
        "{seen:#?}"
    );
    assert_eq!(m.is_up(Protocol::Tcp, t1.vip, t1.real), Some(false));
    assert_eq!(of(&seen, real(3)), [(true, None)]);
    // Target 2's check stopped (at most one run was in flight).
    assert!(runs(&dirs[1]) <= frozen + 1);
    assert_eq!(m.is_up(Protocol::Tcp, t2.vip, t2.real), None);
}
