//! End to end on the namespace test bed (offloads off, the reference
//! topology in NAT mode with a two-queue director interface, so two
//! workers): ownership of live connections does not move when the
//! steering rule changes (`worker::handover`, "Ownership that does not
//! move").
//!
//! Six slow NAT downloads of `/big.bin` (client ports chosen so that half
//! change owner when the rule switches to the client-address rule) and two
//! slow DR downloads (a second VIP, held on rs3's `lo`) run while
//! `xdpvsadm` adds a persistent service and a NAT FTP service on other
//! VIPs and widens the persistent service's netmask so that the client's
//! owner changes again. Every download must complete byte-exact, and the
//! workers must have passed frames along an owner chain
//! (`handoff_chained`). Needs root.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use director::{Daemon, config, counter, xdpvsadm_ok};
use testbed::{CLIENT_ADDR, Host, Mode, Options, Testbed};
use xdpvs::worker::owner;

/// The DR service's VIP, on rs3's `lo`.
const VIP_DR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 9);
/// The persistent service's and the FTP service's VIPs (no traffic).
const VIP_PERSIST: &str = "198.18.1.20:80";
const VIP_FTP: &str = "198.18.1.21:21";

/// `curl` of `url` from the client at 64 KiB/s (about 16 s for 1 MiB),
/// from client port `port` (0: any), in the background, into `out`.
fn download(bed: &Testbed, url: &str, port: u16, out: &PathBuf) -> Child {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &bed.ns(Host::Client),
        "curl",
        "-sS",
        "--fail",
    ])
    .args(["--connect-timeout", "3", "--max-time", "60"])
    .args(["--limit-rate", "64k", "-o"])
    .arg(out);
    if port != 0 {
        c.args(["--local-port", &port.to_string()]);
    }
    c.arg(url).stdout(Stdio::null()).stderr(Stdio::piped());
    c.spawn().expect("curl")
}

fn run(bed: &Testbed, host: Host, script: &str) {
    let out = bed.exec(host, &["sh", "-ec", script]);
    assert!(
        out.status.success(),
        "{host:?}: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn live_connections_survive_steering_changes() {
    let bed = Testbed::new(Options {
        mode: Mode::Nat,
        reals: 3,
        director_queues: 2,
    });
    director::warm_neighbours(&bed, 3);
    // DR on a second VIP: rs3 holds it, and answers from it straight to
    // the router (its default route, for NAT, is the director).
    let rs3 = bed.real_addr(2);
    run(
        &bed,
        Host::Real(2),
        &format!(
            "ip addr add {VIP_DR}/32 dev lo\n\
             ip rule add from {VIP_DR} table 100\n\
             ip route add default via {} table 100",
            testbed::ROUTER_LAN_ADDR
        ),
    );
    run(
        &bed,
        Host::Router,
        &format!("ip route add {VIP_DR}/32 via {}", testbed::DIRECTOR_ADDR),
    );
    let cfg = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&cfg, config(&bed, &Mode::Nat, "rr", [1, 1, 1])).unwrap();
    let daemon = Daemon::start(&bed, &cfg);
    let dr = format!("{VIP_DR}:80");
    xdpvsadm_ok(&bed, &["-A", "-t", &dr, "-s", "rr"]);
    xdpvsadm_ok(&bed, &["-a", "-t", &dr, "-r", &format!("{rs3}:80"), "-g"]);

    // Client ports: three whose owner moves when the rule becomes "by
    // client address", three whose owner does not; and a netmask under
    // which the client's owner moves again.
    let c = CLIENT_ADDR.octets();
    let by_client = owner(c, 0, 2);
    let moving: Vec<u16> = (41000..)
        .filter(|&p| owner(c, p, 2) != by_client)
        .take(3)
        .collect();
    let staying: Vec<u16> = (41000..)
        .filter(|&p| owner(c, p, 2) == by_client)
        .take(3)
        .collect();
    let mask = [24, 16, 8, 20, 12, 28]
        .into_iter()
        .map(|bits: u32| Ipv4Addr::from_bits(u32::MAX << (32 - bits)))
        .find(|m| owner((CLIENT_ADDR.to_bits() & m.to_bits()).to_be_bytes(), 0, 2) != by_client)
        .expect("a netmask that moves the client's owner");

    director::small_client_window(&bed);
    let nat_url = format!("http://{}/big.bin", bed.vip());
    let dr_url = format!("http://{VIP_DR}/big.bin");
    let mut downloads: Vec<(String, PathBuf, Child)> = Vec::new();
    for (i, &port) in moving.iter().chain(&staying).enumerate() {
        let out = bed.tempdir().join(format!("nat{i}.out"));
        let child = download(&bed, &nat_url, port, &out);
        downloads.push((format!("NAT from port {port}"), out, child));
    }
    for i in 0..2 {
        let out = bed.tempdir().join(format!("dr{i}.out"));
        let child = download(&bed, &dr_url, 0, &out);
        downloads.push((format!("DR {i}"), out, child));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The first persistent service (on another VIP): the client-address rule.
    xdpvsadm_ok(&bed, &["-A", "-t", VIP_PERSIST, "-s", "rr", "-p", "300"]);
    let rs2 = bed.real_addr(1);
    xdpvsadm_ok(
        &bed,
        &["-a", "-t", VIP_PERSIST, "-r", &format!("{rs2}:80"), "-m"],
    );
    std::thread::sleep(Duration::from_millis(700));
    // The first NAT FTP service (the helper may create connections).
    xdpvsadm_ok(&bed, &["-A", "-t", VIP_FTP, "-s", "rr"]);
    xdpvsadm_ok(
        &bed,
        &["-a", "-t", VIP_FTP, "-r", &format!("{rs2}:21"), "-m"],
    );
    std::thread::sleep(Duration::from_millis(700));
    // A wider netmask: the client's owner moves again.
    let m = mask.to_string();
    xdpvsadm_ok(
        &bed,
        &["-E", "-t", VIP_PERSIST, "-s", "rr", "-p", "300", "-M", &m],
    );
    for (what, _, child) in &mut downloads {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: still running after the changes (else the test proves nothing)"
        );
    }
    let big = testbed::big_bin();
    for (what, out, mut child) in downloads {
        let status = child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "{what}: curl failed: {err}");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), big.len(), "{what}: size");
        assert!(got == big, "{what}: bytes differ");
    }
    let log = daemon.stop();
    for (name, n) in
        ["handoff_sent", "handoff_chained", "handoff_dropped"].map(|c| (c, counter(&log, c)))
    {
        println!("{name}: {n}");
    }
    assert!(
        counter(&log, "handoff_chained") > 0,
        "frames went along an owner chain:\n{log}"
    );
}
