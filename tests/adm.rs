//! `xdpvsadm` end to end against a control socket served as the daemon
//! serves it: a [`ControlServer`] and a [`Control`] on a thread of their
//! own. (Traffic through a running director is the daemon's test.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec};
use xdpvs::conn::Timeouts;
use xdpvs::ctrl::control::Control;
use xdpvs::ctrl::proto::ConnView;
use xdpvs::ctrl::server::ControlServer;
use xdpvs::service::ServiceTable;

/// A director's control side on a thread; stopped and its directory
/// removed when dropped.
struct Director {
    dir: PathBuf,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Director {
    fn start(name: &str) -> Director {
        Director::with_conns(name, Vec::new())
    }

    /// A director whose `-L -c` lists `conns`.
    fn with_conns(name: &str, conns: Vec<ConnView>) -> Director {
        let dir = std::env::temp_dir().join(format!("xdpvs-adm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let socket = dir.join("xdpvs.sock");
        let mut server = ControlServer::bind(&socket).expect("bind the control socket");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut conns = conns;
        let thread = thread::spawn(move || {
            let table = ServiceTable::new(Vec::new(), None, Timeouts::default());
            let mut control = Control::new(table, 4096, Instant::now());
            while !flag.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(&server, PollFlags::IN)];
                let t = Timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&t));
                server.poll(&mut |req| control.answer(req, &mut conns));
                control.tick(Instant::now());
            }
        });
        Director {
            dir,
            socket,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn adm(socket: &Path, line: &str, stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdpvsadm"))
        .arg("--socket")
        .arg(socket)
        .args(line.split_whitespace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xdpvsadm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(socket: &Path, line: &str) -> String {
    let out = adm(socket, line, "");
    assert!(
        out.status.success(),
        "xdpvsadm {line}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn xdpvsadm_drives_a_running_control_socket() {
    let d = Director::start("live");
    let s = &d.socket;
    assert_eq!(ok(s, "-A -t 198.18.1.1:80 -s wlc"), "");
    assert_eq!(ok(s, "-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1"), "");
    assert_eq!(ok(s, "-a -t 198.18.1.1:80 -r 198.18.2.12 -m -w 2"), "");
    assert_eq!(
        ok(s, "-L -n"),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.1.1:80 wlc
  -> 198.18.2.11:80               Route   1      0          0         
  -> 198.18.2.12:80               Masq    2      0          0         
"
    );

    // Refused: message on stderr, ipvsadm's status, nothing printed.
    let out = adm(s, "-a -t 198.18.1.1:80 -r 198.18.2.11:80", "");
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Destination already exists\n"
    );
    assert!(out.stdout.is_empty());
    let out = adm(s, "-a -t 198.18.1.1:80 -r 198.18.2.13 -w 100000", "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "illegal weight specified\n"
    );

    // -S, -C, -R from stdin, -S: the same rules.
    let saved = ok(s, "-S -n");
    assert_eq!(
        saved,
        "-A -t 198.18.1.1:80 -s wlc\n\
         -a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1\n\
         -a -t 198.18.1.1:80 -r 198.18.2.12:80 -m -w 2\n"
    );
    assert_eq!(ok(s, "-C"), "");
    assert_eq!(ok(s, "-S -n"), "");
    let out = adm(s, "-R", &saved);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(s, "-S -n"), saved);

    // A bad rule in a restore: nothing of it applied.
    let out = adm(s, "-R", "-A -t 198.18.1.2:80\n-A -t 198.18.1.1:80\n");
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Service already exists\n"
    );
    assert_eq!(ok(s, "-S -n"), saved);

    assert_eq!(ok(s, "--set 600 60 120"), "");
    assert_eq!(
        ok(s, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 600 60 120\n"
    );
    assert_eq!(
        ok(s, "-L -n -c"),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
}

#[test]
fn xdpvsadm_lists_as_json_and_drops_as_a_table() {
    let d = Director::start("json");
    let s = &d.socket;
    assert_eq!(ok(s, "-A -t 198.18.1.1:80 -s sh -b sh-port -p 60"), "");
    assert_eq!(
        ok(s, "-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 3 -x 9"),
        ""
    );
    let text = ok(s, "-L -n --json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(v["version"], 1);
    assert_eq!(v["kind"], "services");
    assert_eq!(v["conn_table_size"], 4096);
    let svc = &v["services"][0];
    assert_eq!(svc["address"], "198.18.1.1");
    assert_eq!(svc["port"], 80);
    assert_eq!(svc["scheduler"], "sh");
    assert_eq!(svc["sched_flags"], serde_json::json!(["sh-port"]));
    assert_eq!(svc["persistence_timeout"], 60);
    let real = &svc["reals"][0];
    assert_eq!(real["forward"], "dr");
    assert_eq!(real["weight"], 3);
    assert_eq!(real["upper_threshold"], 9);
    assert_eq!(real["stats"]["conns"], 0);
    // ipvsadm's own table is untouched by the option's existence.
    assert!(ok(s, "-L -n").starts_with("IP Virtual Server version 1.2.1 (size=4096)\n"));

    let v: serde_json::Value = serde_json::from_str(&ok(s, "-L -n -c --json")).unwrap();
    assert_eq!(v["connections"], serde_json::json!([]));

    // --drops: headings and every reason (no workers behind this socket).
    let table = ok(s, "--drops");
    assert!(table.starts_with("Frames dropped"), "{table}");
    assert!(table.contains("\nFrames lost"), "{table}");
    let v: serde_json::Value = serde_json::from_str(&ok(s, "--drops --json")).unwrap();
    assert_eq!(v["kind"], "drops");

    // Refused where ipvsadm refuses an illegal option; nothing on stdout.
    let out = adm(s, "-S -n --json", "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Illegal 'json' option with the 'save' command\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn xdpvsadm_names_a_missing_daemon() {
    let dir = std::env::temp_dir().join(format!("xdpvs-adm-none-{}", std::process::id()));
    let socket = dir.join("xdpvs.sock");
    let out = adm(&socket, "-L -n", "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("is the xdpvs daemon running"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}

/// An `ipvsadm-save` of a large site: `services` services of `reals` real
/// servers each, one rule a line.
fn large_site(services: u32, reals: u32) -> String {
    let mut text = String::new();
    for s in 0..services {
        let vip = format!("198.18.{}.{}:80", 64 + s / 250, 1 + s % 250);
        text.push_str(&format!("-A -t {vip} -s wrr\n"));
        for r in 0..reals {
            let n = s * reals + r;
            let rip = format!("198.19.{}.{}:80", n / 250, 1 + n % 250);
            text.push_str(&format!("-a -t {vip} -r {rip} -g -w {}\n", 1 + r));
        }
    }
    text
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

#[test]
fn ten_thousand_rules_restore_atomically_and_round_trip() {
    let d = Director::start("large");
    let s = &d.socket;
    let rules = large_site(1000, 9);
    assert_eq!(rules.lines().count(), 10_000);
    // Far more than one request line holds: it travels in parts.
    assert!(rules.len() > 4 * xdpvs::ctrl::proto::MAX_REQUEST);
    let parsed = xdpvs::adm::parse_rules(&rules).unwrap();
    let requests = xdpvs::adm::restore_requests(parsed);
    assert!(requests.len() > 4, "{} requests", requests.len());

    let started = Instant::now();
    let out = adm(s, "-R", &rules);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("-R of 10000 rules: {:?}", started.elapsed());
    let saved = ok(s, "-S -n");
    assert_eq!(sorted_lines(&saved), sorted_lines(&rules));

    // -S | -R after -C gives the same -S, byte for byte.
    assert_eq!(ok(s, "-C"), "");
    assert_eq!(ok(s, "-S -n"), "");
    let out = adm(s, "-R", &saved);
    assert!(out.status.success());
    assert_eq!(ok(s, "-S -n"), saved);

    // All or nothing: a batch as large whose last rule fails changes
    // nothing, not even the parts the daemon had already received.
    let mut bad = format!("-C\n{}", large_site(1000, 9).replace("-s wrr", "-s rr"));
    bad.push_str("-a -t 198.18.64.1:80 -r 198.19.0.1:80 -g -w 1\n");
    let out = adm(s, "-R", &bad);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Destination already exists\n"
    );
    assert_eq!(ok(s, "-S -n"), saved);
}

#[test]
fn restore_parts_without_their_restore_are_never_applied() {
    use xdpvs::ctrl::proto::{Reply, Request, Response};
    let d = Director::start("parts");
    let s = &d.socket;
    let parsed = xdpvs::adm::parse_rules(&large_site(200, 4)).unwrap();
    let mut requests = xdpvs::adm::restore_requests(parsed);
    assert!(requests.len() > 2);
    // The batch's end replaced by another request: the parts are dropped,
    // and the request is refused saying so.
    requests.pop();
    requests.push(Request::Clear);
    match xdpvs::adm::call_all(s, &requests).unwrap() {
        Response::Err { message, .. } => {
            assert!(message.contains("middle of a restore"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // The connection ends after parts only: nothing applied either.
    requests.pop();
    assert_eq!(
        xdpvs::adm::call_all(s, &requests).unwrap(),
        Response::Ok(Reply::Done)
    );
    assert_eq!(ok(s, "-S -n"), "");
    // A lone part is kept for its connection, which ends: nothing.
    let out = xdpvs::adm::call(s, &Request::RestorePart(Vec::new())).unwrap();
    assert_eq!(out, Response::Ok(Reply::Done));
    assert_eq!(ok(s, "-S -n"), "");
}

#[test]
fn a_thousand_separate_edits() {
    let d = Director::start("edits");
    let s = &d.socket;
    assert_eq!(ok(s, "-A -t 198.18.1.1:80 -s wlc"), "");
    let started = Instant::now();
    for n in 0..1000u32 {
        let rip = format!("198.19.{}.{}:80", n / 250, 1 + n % 250);
        assert_eq!(ok(s, &format!("-a -t 198.18.1.1:80 -r {rip} -g -w 1")), "");
    }
    eprintln!("1000 xdpvsadm -a: {:?}", started.elapsed());
    assert_eq!(ok(s, "-S -n").lines().count(), 1001);
}

#[test]
fn a_large_connection_listing_comes_in_bounded_lines() {
    use std::io::{BufRead, BufReader};
    use xdpvs::ctrl::proto::{self, CONNS_PER_LINE, Reply, Request, Response};
    const N: u32 = 3 * CONNS_PER_LINE as u32 + 100;
    let conns: Vec<ConnView> = (0..N)
        .map(|i| ConnView {
            proto: xdpvs::config::Protocol::Tcp,
            client: format!(
                "198.18.{}.{}:{}",
                i >> 16,
                (i >> 8) as u8,
                1024 + (i & 0xff)
            )
            .parse()
            .unwrap(),
            virt: "198.18.1.1:80".parse().unwrap(),
            dest: "198.18.2.11:80".parse().unwrap(),
            state: "ESTABLISHED".into(),
            expires: 899,
        })
        .collect();
    let d = Director::with_conns("conns", conns);
    // On the wire: parts of at most CONNS_PER_LINE entries, then the end.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(&proto::encode_request(&Request::ListConns))
        .unwrap();
    let mut lines = BufReader::new(s);
    let (mut parts, mut total) = (0, 0);
    loop {
        let mut line = Vec::new();
        lines.read_until(b'\n', &mut line).unwrap();
        match proto::decode_response(&line).unwrap() {
            Response::Ok(Reply::ConnsPart(v)) => {
                assert!(v.len() <= CONNS_PER_LINE);
                parts += 1;
                total += v.len();
            }
            Response::Ok(Reply::Conns(v)) => {
                total += v.len();
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, N as usize);
    assert!(parts >= 4, "{parts} parts");
    // xdpvsadm gathers them: ipvsadm's format, every entry once.
    let out = ok(&d.socket, "-L -n -c");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"));
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination")
    );
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), N as usize);
    assert_eq!(
        body[0],
        "TCP 14:59  ESTABLISHED 198.18.0.0:1024    198.18.1.1:80      198.18.2.11:80"
    );
    let json = ok(&d.socket, "-L -n -c --json");
    assert_eq!(
        json.matches("\"client\"").count(),
        N as usize,
        "{}",
        &json[..200]
    );
}

/// How long `xdpvsadm -L -n -c` takes for a million connections through
/// the real control server and client (the daemon's workers left out):
/// `cargo test --release --test adm -- --ignored --nocapture a_million`.
#[test]
#[ignore = "a measurement, not a test: run it in release"]
fn a_million_connections_list() {
    const N: u32 = 1 << 20;
    let conns: Vec<ConnView> = (0..N)
        .map(|i| ConnView {
            proto: xdpvs::config::Protocol::Udp,
            client: format!(
                "198.18.{}.{}:{}",
                i >> 16,
                (i >> 8) as u8,
                1024 + (i & 0xff)
            )
            .parse()
            .unwrap(),
            virt: "198.18.1.1:53".parse().unwrap(),
            dest: "198.18.2.11:53".parse().unwrap(),
            state: "UDP".into(),
            expires: 299,
        })
        .collect();
    let d = Director::with_conns("million", conns);
    for args in ["-L -n -c", "-L -n -c --json"] {
        let started = Instant::now();
        let out = adm(&d.socket, args, "");
        assert!(out.status.success());
        eprintln!(
            "xdpvsadm {args}: {} lines in {:?}",
            out.stdout.iter().filter(|&&b| b == b'\n').count(),
            started.elapsed()
        );
    }
}
