//! End to end with the kernel's default veth offloads, on the shape of the
//! kernel's own IPVS selftest (`Testbed::two_armed`: a two-armed director
//! that routes and holds the VIP on `lo`, the real server also on the
//! client's LAN for DR/TUN replies), configured as a new user would: a file
//! naming only the interfaces (and the test's control socket), services
//! added with `xdpvsadm -A`/`-a` alone, socat as client and server.
//!
//! With tx checksum offload on (the default) every local sender on a veth
//! — the client, and in NAT the real server — hands on TCP segments whose
//! checksum holds only the pseudo-header sum; the director must finish them
//! (`dataplane.complete_checksums`, "auto" = on for veth). Each mode checks
//! the properties that fail without that: a 1 MiB upload through socat
//! arrives byte-exact, a 1 MiB download (apache) arrives byte-exact, the
//! real server's and the client's `TcpInCsumErrors` stay 0, and the
//! director did finish partial checksums (`csum_completed` > 0: the bed
//! really does hand it partial frames). And the bed does not hide the
//! problem: with `complete_checksums = "off"` the real server drops the
//! client's SYN for its checksum.
//!
//! These are the tests that run with default offloads; every other
//! end-to-end test uses the one-armed bed with offloads off (README,
//! "Tests").

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::time::Duration;

use director::{Daemon, warm_neighbours, xdpvsadm_ok};
use testbed::{Host, Mode, Options, Testbed};

/// The port of the socat service (apache serves 80).
const SOCAT_PORT: u16 = 8080;

/// One bed at a time: this machine may have two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The file a new user writes: the interfaces, and the control socket
/// (the test's own, so that runs never meet).
fn config(bed: &Testbed) -> String {
    config_with(bed, "")
}

/// [`config`] with `extra` lines in `[dataplane]`.
fn config_with(bed: &Testbed, extra: &str) -> String {
    let ifaces: Vec<String> = bed
        .director_ifaces()
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect();
    format!(
        "[dataplane]\ninterfaces = [{}]\n{extra}\n[control]\nsocket = \"{}\"\n",
        ifaces.join(", "),
        director::socket(bed).display()
    )
}

/// `TcpInCsumErrors` of `host`'s namespace (/proc/net/snmp).
fn tcp_csum_errors(bed: &Testbed, host: Host) -> u64 {
    let out = bed.exec(host, &["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "InCsumErrors")
        .expect("InCsumErrors in /proc/net/snmp");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// The `total` of counter `name` in `xdpvsadm --counters`.
fn counter(bed: &Testbed, name: &str) -> u64 {
    let table = xdpvsadm_ok(bed, &["--counters"]);
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} row:\n{table}"))
}

/// Uploads `/big.bin` from the client to VIP:`SOCAT_PORT` with socat; the
/// real server's socat writes what arrives to a file, compared byte for
/// byte.
fn socat_upload(bed: &Testbed) {
    let big = bed.tempdir().join("big.bin");
    let got = bed.tempdir().join("upload.out");
    let listen = format!("TCP4-LISTEN:{SOCAT_PORT},reuseaddr");
    let sink = format!("CREATE:{}", got.display());
    let mut server = bed.spawn(
        Host::Real(0),
        &["timeout", "30", "socat", "-u", &listen, &sink],
    );
    // socat listens within milliseconds; the client retries its connect
    // for the rest (bounded).
    let connect = format!(
        "TCP4:{}:{SOCAT_PORT},retry=20,interval=0.1,connect-timeout=3",
        bed.vip()
    );
    let source = format!("OPEN:{},rdonly", big.display());
    let out = bed.exec(
        Host::Client,
        &["timeout", "30", "socat", "-u", &source, &connect],
    );
    assert!(
        out.status.success(),
        "socat upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "socat server: {status}");
    let data = std::fs::read(&got).unwrap();
    assert_eq!(data.len(), testbed::BIG_LEN, "upload length");
    assert!(data == testbed::big_bin(), "the upload arrived byte-exact");
}

/// Downloads `/big.bin` from VIP:80 (apache) to the client.
fn download(bed: &Testbed) {
    let (status, body) = bed
        .curl(&format!("http://{}/big.bin", bed.vip()))
        .expect("download");
    assert_eq!(status, 200);
    assert_eq!(body.len(), testbed::BIG_LEN, "download length");
    assert!(
        body == testbed::big_bin(),
        "the download arrived byte-exact"
    );
}

/// `-a` option of a forwarding mode.
fn flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Dr => "-g",
        Mode::Tun => "-i",
        Mode::Nat => "-m",
    }
}

/// VIP:`port` → the real server's `port`, rr, by `mode`, with xdpvsadm.
fn add_service(bed: &Testbed, mode: Mode, port: u16) {
    let vip = format!("{}:{port}", bed.vip());
    let rip = format!("{}:{port}", bed.real_addr(0));
    xdpvsadm_ok(bed, &["-A", "-t", &vip, "-s", "rr"]);
    xdpvsadm_ok(bed, &["-a", "-t", &vip, "-r", &rip, flag(mode)]);
}

fn default_offloads(mode: Mode) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::two_armed(Options {
        mode,
        reals: 1,
        director_queues: 1,
    });
    warm_neighbours(&bed, 1);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed)).unwrap();
    let daemon = Daemon::start(&bed, &cfg);
    for iface in bed.director_ifaces() {
        daemon.wait_for(
            &format!("xdpvs: {iface}: driver veth, completing partial checksums"),
            Duration::from_secs(1),
        );
    }

    for port in [80, SOCAT_PORT] {
        add_service(&bed, mode, port);
    }

    socat_upload(&bed);
    download(&bed);

    assert_eq!(
        [Host::Real(0), Host::Client].map(|h| tcp_csum_errors(&bed, h)),
        [0, 0],
        "TcpInCsumErrors of the real server and the client stay 0"
    );
    assert!(
        counter(&bed, "csum_completed") > 0,
        "the director finished partial checksums: the bed hands it partial frames"
    );
    daemon.stop();
}

/// The bed does not hide the problem: with the completion off, the
/// client's SYN reaches the real server with its partial checksum, which
/// drops it (`TcpInCsumErrors` rises) and never answers.
#[test]
fn dr_without_completion_the_real_server_drops_partial_segments() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Testbed::two_armed(Options {
        mode: Mode::Dr,
        reals: 1,
        director_queues: 1,
    });
    warm_neighbours(&bed, 1);
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config_with(&bed, "complete_checksums = \"off\"\n")).unwrap();
    let daemon = Daemon::start(&bed, &cfg);
    daemon.wait_for(
        &format!(
            "xdpvs: {}: driver veth, forwarding checksums as received",
            bed.director_iface()
        ),
        Duration::from_secs(1),
    );
    add_service(&bed, Mode::Dr, 80);
    let got = bed.curl(&format!("http://{}/", bed.vip()));
    assert!(got.is_err(), "a partial SYN was answered: {got:?}");
    assert!(
        tcp_csum_errors(&bed, Host::Real(0)) > 0,
        "the real server counted the bad checksums"
    );
    assert_eq!(counter(&bed, "csum_completed"), 0);
    assert!(counter(&bed, "tx_dr") > 0, "the SYNs were forwarded");
    daemon.stop();
}

#[test]
fn dr_with_default_offloads() {
    default_offloads(Mode::Dr);
}

#[test]
fn nat_with_default_offloads() {
    default_offloads(Mode::Nat);
}

#[test]
fn tun_with_default_offloads() {
    default_offloads(Mode::Tun);
}
