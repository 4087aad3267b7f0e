//! Self-test of the namespace test bed (tests/testbed/mod.rs), with no
//! director running: everything that must work before `xdpvs` starts does
//! (routing, the real servers' apache, the TUN shim), the VIP does not
//! answer, and dropping the bed leaves no namespace and no temp dir behind.

// A crate root named testbed.rs beside testbed/ needs the path spelled out.
#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use testbed::{DIRECTOR_ADDR, Host, Mode, Options, ROUTER_LAN_ADDR, Testbed, VIP};
use xdpvs::wire::checksum;

fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn stdout(bed: &Testbed, host: Host, args: &[&str]) -> String {
    let out = bed.exec(host, args);
    assert!(
        out.status.success(),
        "{args:?} in {host:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(bed: &Testbed, host: Host, path: &str) -> String {
    stdout(bed, host, &["cat", &format!("/proc/sys/{path}")])
        .trim()
        .to_owned()
}

fn check_bed(mode: Mode, director_queues: u32) {
    let start = Instant::now();
    let bed = Testbed::new(Options {
        mode,
        reals: 3,
        director_queues,
    });
    let built = start.elapsed();
    let prefix = bed.prefix().to_owned();
    let tempdir = bed.tempdir().to_owned();
    assert!(
        prefix.starts_with("xdpvs") && prefix.len() <= 12,
        "{prefix}"
    );
    assert_eq!(
        netns_with_prefix(&prefix).len(),
        6,
        "client, router, director, 3 reals"
    );
    assert!(tempdir.is_dir());

    // Each real server's apache, through the router. In NAT the real
    // servers' replies go to the director, which forwards nothing yet, so
    // only hosts on the LAN reach them.
    let from = match mode {
        Mode::Nat => Host::Router,
        Mode::Dr | Mode::Tun => Host::Client,
    };
    for i in 0..3 {
        let url = format!("http://{}/", bed.real_addr(i));
        let got = bed.curl_from(from, &url).unwrap();
        assert_eq!(got, (200, format!("rs{}\n", i + 1).into_bytes()), "{url}");
    }
    let url = format!("http://{}/big.bin", bed.real_addr(2));
    let (code, body) = bed.curl_from(from, &url).unwrap();
    assert_eq!(code, 200, "{url}");
    assert!(
        body == testbed::big_bin(),
        "{url}: {} bytes, not big.bin",
        body.len()
    );

    for i in 0..3 {
        let addr = bed.real_addr(i).to_string();
        stdout(&bed, Host::Director, &["ping", "-c", "1", "-W", "2", &addr]);
    }

    // No director yet: the router sends the VIP to 198.18.2.2, which drops
    // it (no forwarding, not local), and no real server answers ARP for it.
    let t = Instant::now();
    let out = bed.exec(
        Host::Client,
        &[
            "curl",
            "-sS",
            "--connect-timeout",
            "0.5",
            "-m",
            "1",
            "http://198.18.1.1/",
        ],
    );
    assert!(!out.status.success(), "VIP answered without a director");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "curl to the VIP took {:?}",
        t.elapsed()
    );

    let dev = bed.director_iface();
    let queues = stdout(
        &bed,
        Host::Director,
        &["ls", &format!("/sys/class/net/{dev}/queues")],
    );
    for kind in ["rx-", "tx-"] {
        let n = queues
            .split_whitespace()
            .filter(|q| q.starts_with(kind))
            .count();
        assert_eq!(
            n as u32, director_queues,
            "{kind} queues of {dev}: {queues}"
        );
    }
    let features = stdout(&bed, Host::Director, &["ethtool", "-k", &dev]);
    for off in [
        "tx-checksumming: off",
        "rx-checksumming: off",
        "generic-receive-offload: off",
    ] {
        assert!(features.contains(off), "{dev}: expected {off}");
    }
    let mac = stdout(
        &bed,
        Host::Director,
        &["cat", &format!("/sys/class/net/{dev}/address")],
    );
    assert_eq!(mac.trim(), "02:00:c6:12:02:02");
    assert_eq!(bed.mac(Host::Director), [2, 0, 198, 18, 2, 2]);
    let mtu = stdout(
        &bed,
        Host::Director,
        &["cat", &format!("/sys/class/net/{dev}/mtu")],
    );
    assert_eq!(mtu.trim(), bed.lan_mtu().to_string());

    for i in 0..3 {
        let host = Host::Real(i);
        let rdev = bed.iface(host);
        let route = stdout(&bed, host, &["ip", "-4", "route", "show", "default"]);
        let lo = stdout(&bed, host, &["ip", "-4", "addr", "show", "dev", "lo"]);
        let link = stdout(&bed, host, &["ip", "link", "show", "dev", &rdev]);
        match mode {
            Mode::Nat => {
                assert!(route.contains(&format!("via {DIRECTOR_ADDR}")), "{route}");
                assert!(
                    !lo.contains(&VIP.to_string()),
                    "NAT real holds the VIP: {lo}"
                );
            }
            Mode::Dr | Mode::Tun => {
                assert!(route.contains(&format!("via {ROUTER_LAN_ADDR}")), "{route}");
                assert!(lo.contains(&format!("{VIP}/32")), "VIP not on lo: {lo}");
                for c in ["all", rdev.as_str()] {
                    assert_eq!(
                        sysctl(&bed, host, &format!("net/ipv4/conf/{c}/arp_ignore")),
                        "1"
                    );
                    assert_eq!(
                        sysctl(&bed, host, &format!("net/ipv4/conf/{c}/arp_announce")),
                        "2"
                    );
                }
            }
        }
        // The link flags show "xdp" (native) or "xdpgeneric" while attached.
        let has_xdp = link
            .split_whitespace()
            .any(|w| w == "xdp" || w == "xdpgeneric");
        assert_eq!(has_xdp, mode == Mode::Tun, "{rdev}: {link}");
    }

    if mode == Mode::Tun {
        // The shim decapsulates: an IPIP packet to each real server whose
        // inner ICMP echo is for the VIP is answered from the VIP.
        // The full-size case: a 1500-byte inner packet (what a 1500-MTU
        // client sends) is 1520 bytes encapsulated, which the LAN carries.
        for i in 0..3 {
            for (k, payload) in [(0, 32), (1, 1500 - 28)] {
                let id = 1000 + 2 * i as u16 + k;
                assert!(
                    ipip_echo(&bed, i, id, payload, Duration::from_secs(2)),
                    "no echo reply from the VIP through the IPIP shim on rs{} ({payload}-byte payload)",
                    i + 1
                );
            }
        }
        // Control: without the shim the same packet gets no such reply (the
        // kernel has no IPIP), so the check above can fail.
        let rdev = bed.iface(Host::Real(0));
        stdout(
            &bed,
            Host::Real(0),
            &["ip", "link", "set", "dev", &rdev, "xdp", "off"],
        );
        assert!(
            !ipip_echo(&bed, 0, 2000, 32, Duration::from_millis(500)),
            "echo reply from the VIP without the shim: the kernel decapsulates IPIP?"
        );
    }

    let t = Instant::now();
    drop(bed);
    eprintln!(
        "{mode:?}: bed built in {built:?}, checks {:?}, teardown {:?}",
        start.elapsed() - built - t.elapsed(),
        t.elapsed()
    );
    assert_eq!(
        netns_with_prefix(&prefix),
        Vec::<String>::new(),
        "namespaces left behind"
    );
    assert!(!tempdir.exists(), "{} left behind", tempdir.display());
}

#[test]
fn dr_bed_without_director() {
    check_bed(Mode::Dr, 1);
}

#[test]
fn tun_bed_without_director() {
    check_bed(Mode::Tun, 1);
}

#[test]
fn nat_bed_without_director() {
    check_bed(Mode::Nat, 2);
}

/// From the director's namespace: sends one IPIP packet to real server
/// `real` carrying an ICMP echo request (`payload` bytes of data) from the
/// director to the VIP, and
/// waits up to `wait` for the echo reply from the VIP (the real server
/// answers it directly, as DR/TUN replies do).
fn ipip_echo(bed: &Testbed, real: usize, id: u16, payload: usize, wait: Duration) -> bool {
    let ns = format!("/run/netns/{}", bed.ns(Host::Director));
    let real_addr = bed.real_addr(real);
    // setns changes only the calling thread's namespace: a thread of its own.
    std::thread::spawn(move || {
        let nsfile = File::open(&ns).unwrap_or_else(|e| panic!("open {ns}: {e}"));
        setns(nsfile, CloneFlags::CLONE_NEWNET).expect("setns into the director namespace");
        let rx = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Icmp,
        )
        .expect("raw ICMP socket");
        setsockopt(&rx, sockopt::ReceiveTimeout, &TimeVal::new(0, 50_000)).expect("SO_RCVTIMEO");
        // IPPROTO_RAW: we write the outer IPv4 header ourselves.
        let tx = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Raw,
        )
        .expect("raw IP socket");

        let mut icmp = vec![8, 0, 0, 0];
        icmp.extend_from_slice(&id.to_be_bytes());
        icmp.extend_from_slice(&1u16.to_be_bytes());
        let data: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
        icmp.extend_from_slice(&data);
        let sum = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let inner = director::ipv4_packet(DIRECTOR_ADDR, VIP, 1, &icmp);
        let outer = director::ipv4_packet(DIRECTOR_ADDR, real_addr, 4, &inner);
        let to = SockaddrIn::from(SocketAddrV4::new(real_addr, 0));
        sendto(tx.as_raw_fd(), &outer, &to, MsgFlags::empty()).expect("send IPIP packet");

        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = recv(rx.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
                continue; // timeout: look at the deadline again
            };
            let p = &buf[..n];
            if n < 20 {
                continue;
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            if p[9] != 1 || src != VIP || n < ihl + 8 {
                continue;
            }
            let icmp = &p[ihl..];
            if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[8..] == data[..] {
                return true;
            }
        }
        false
    })
    .join()
    .expect("IPIP echo thread")
}
