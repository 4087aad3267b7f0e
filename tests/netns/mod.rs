//! Two network namespaces joined by a two-queue veth pair, removed again
//! when the guard drops (also on panic).
//!
//!     ns `a`: interface `ia`, 198.18.0.1/24, MAC 02:00:00:00:00:01
//!     ns `b`: interface `ib`, 198.18.0.2/24, MAC 02:00:00:00:00:02
//!
//! Names carry the process id and a per-test tag. Shared by the AF_XDP
//! tests in `tests/xsk.rs` and `src/xsk/tests.rs`.

#![allow(dead_code)]

use std::fs::File;
use std::process::Command;

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const ADDR_A: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 1);
pub const ADDR_B: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 2);

pub struct VethPair {
    pub a: String,
    pub b: String,
    pub ia: String,
    pub ib: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2, scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl VethPair {
    /// Builds the pair; `tag` (one or two letters) tells tests apart.
    pub fn new(tag: &str) -> VethPair {
        let pid = std::process::id();
        let v = VethPair {
            a: format!("xdpvs{pid}{tag}a"),
            b: format!("xdpvs{pid}{tag}b"),
            ia: format!("xa{pid}{tag}"),
            ib: format!("xb{pid}{tag}"),
        };
        // The guard exists before the first namespace, so a failure half
        // way still removes what was made.
        ip(&["netns", "add", &v.a]);
        ip(&["netns", "add", &v.b]);
        ip(&[
            "-n",
            &v.a,
            "link",
            "add",
            &v.ia,
            "address",
            "02:00:00:00:00:01",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            &v.ib,
            "address",
            "02:00:00:00:00:02",
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "netns",
            &v.b,
        ]);
        for (ns, dev, addr) in [
            (&v.a, &v.ia, "198.18.0.1/24"),
            (&v.b, &v.ib, "198.18.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        v
    }

    /// Moves the calling thread into namespace `ns`; sockets it opens
    /// afterwards belong there.
    pub fn enter(ns: &str) {
        let f = File::open(format!("/run/netns/{ns}")).expect("namespace file");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    /// Runs `cmd` inside namespace `ns` and says whether it succeeded.
    pub fn exec(ns: &str, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end and with it the peer.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
