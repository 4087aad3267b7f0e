//! The namespace test bed for end-to-end tests (TESTBED.md, reference
//! topology): a client, a router, a one-armed director and real servers
//! running Debian's apache2, each in its own network namespace, wired with
//! veth pairs to a bridge in the router namespace.
//!
//! ```text
//! client ──veth── router ──veth── bridge ─┬─ director   198.18.2.2 (no xdpvs yet)
//! 198.18.0.10     198.18.0.1 / 198.18.2.1  ├─ rs1        198.18.2.11
//!                 198.18.1.1/32 via .2.2   ├─ rs2        198.18.2.12
//!                                          └─ rs3        198.18.2.13
//! ```
//!
//! The bed is everything around the director: the test starts `xdpvs`
//! itself, inside the director namespace (`Testbed::spawn`), on
//! `Testbed::director_iface`. Until it does, the VIP is routed to the
//! director and dropped there (the director does not forward).
//!
//! ```ignore
//! mod testbed;
//! use testbed::{Host, Mode, Options, Testbed};
//!
//! let bed = Testbed::new(Options { mode: Mode::Dr, ..Options::default() });
//! let config = bed.tempdir().join("xdpvs.toml"); // interfaces = [bed.director_iface()]
//! let daemon = bed.spawn(Host::Director, &[env!("CARGO_BIN_EXE_xdpvs"), "--config", config.to_str().unwrap()]);
//! let (status, body) = bed.curl(&format!("http://{}/", bed.vip())).unwrap();
//! assert_eq!((status, body), (200, b"rs1\n".to_vec()));
//! // Drop: SIGTERM to everything in the bed's namespaces, then delete them.
//! ```
//!
//! Invariants the tests rely on:
//! - Nothing is created outside the bed's namespaces: every veth is created
//!   from inside the router namespace with its peer moved straight into the
//!   other namespace, so the root namespace never holds a test interface.
//! - Every name (namespaces, interfaces, the temp dir) starts with
//!   `prefix()`, `xdpvs` + 5 digits of the pid + a 2-digit counter, claimed
//!   atomically by creating the first namespace (a taken prefix is skipped).
//! - Clean-up happens on every exit path: `Drop` (success, failure, panic),
//!   and a guardian process, outside the test's process group, for the
//!   paths that skip `Drop` (Ctrl-C, SIGKILL, abort): it waits for EOF on a
//!   pipe that only this process holds and then kills whatever runs in the
//!   bed's namespaces and deletes them.
//! - The one-armed bed (`Testbed::new`) turns offloads off on every veth
//!   end (tx/rx checksum, TSO/GSO, GRO), for tests that need exact frame
//!   sizes: TSO/GSO/GRO would hand the director frames larger than the
//!   MTU, and with rx checksum off no receiver can take a checksum the
//!   director rewrote as verified. With tx checksum offload a veth hands on
//!   CHECKSUM_PARTIAL packets whose TCP/UDP checksum holds only the
//!   pseudo-header sum; the director finishes those
//!   (`dataplane.complete_checksums`), and the two-armed bed
//!   (`Testbed::two_armed`, used by tests/offloads.rs) keeps the kernel's
//!   default offloads to prove it.
//! - TUN: the kernel has no IPIP, so each real server's LAN interface runs
//!   the test equipment `tests/bpf/ipip_decap.bpf.c` (XDP: strip the outer
//!   header). The LAN (director, bridge, real servers) then has MTU
//!   `TUN_LAN_MTU` = 1520, so a full 1500-byte client packet still fits
//!   once encapsulated; the client's link stays at 1500.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How the real servers are configured, as LVS documents each forwarding
/// mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// VIP on `lo`, no ARP for it, replies straight to the router.
    Dr,
    /// As `Dr`, plus the IPIP decapsulation shim on the LAN interface.
    Tun,
    /// No VIP; the default route points at the director, which must
    /// rewrite the replies.
    Nat,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub mode: Mode,
    /// Number of real servers, 1..=9 (the interface names have room for one
    /// digit).
    pub reals: usize,
    /// RX and TX queues on both ends of the director's LAN veth. The director
    /// receives on queue q what the router side sends on its TX queue q.
    pub director_queues: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Dr,
            reals: 3,
            director_queues: 1,
        }
    }
}

/// How the bed is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// TESTBED.md's reference topology: a router, and a one-armed director
    /// on the real servers' LAN; every veth with its offloads off.
    OneArmed,
    /// The kernel IPVS selftest's shape (`Testbed::two_armed`), with the
    /// kernel's default veth offloads.
    TwoArmed,
}

/// A host of the bed; `Real(i)` is 0-based (its body says `rs{i+1}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Client,
    Router,
    Director,
    Real(usize),
}

pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// The router's address on the client link (the client's gateway).
pub const ROUTER_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The router's address on the LAN bridge (gateway of the director, and of
/// the real servers in DR and TUN).
pub const ROUTER_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const DIRECTOR_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
/// Two-armed bed: the director's address on the client's LAN (the
/// client's route to the VIP).
pub const DIRECTOR_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const LAN_MTU: u32 = 1500;
/// LAN MTU in TUN mode: room for the 20-byte outer header.
pub const TUN_LAN_MTU: u32 = 1520;
/// Size of `/big.bin` on every real server.
pub const BIG_LEN: usize = 1 << 20;
/// The HTTP port every real server's apache listens on (all addresses).
pub const HTTP_PORT: u16 = 80;

/// The MAC of the interface holding `addr`: `02:00` + the four address
/// bytes (locally administered, the scheme of tests/common), so captures
/// and neighbour tables read at a glance. The router's client-side port and
/// LAN bridge get theirs from 198.18.0.1 and 198.18.2.1.
pub fn mac_of(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0, o[0], o[1], o[2], o[3]]
}

fn mac_string(addr: Ipv4Addr) -> String {
    let m = mac_of(addr);
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The body of `/big.bin`: the same deterministic bytes on every real
/// server, so a download can be checked byte for byte whoever served it.
pub fn big_bin() -> Vec<u8> {
    // A multiplicative hash of the offset: no period a misplaced segment
    // could hide in (unlike a repeating counter).
    (0..BIG_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// The body of `/` on real server `i` (0-based).
pub fn real_body(i: usize) -> String {
    format!("rs{}\n", i + 1)
}

const APACHE: &str = "/usr/sbin/apache2";
const VSFTPD: &str = "/usr/sbin/vsftpd";
/// vsftpd's passive ports on the real servers.
pub const FTP_PASV_PORTS: (u16, u16) = (50000, 50999);
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
const APACHE_USER: &str = "www-data";
const SHIM_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bpf/ipip_decap.bpf.c");
/// Bound on every wait in `new` (apache answering).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on SIGTERM → exit for the bed's processes before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One built bed; dropping it stops every process in its namespaces and
/// deletes them and the temp dir.
pub struct Testbed {
    prefix: String,
    opts: Options,
    shape: Shape,
    /// Namespaces this bed created, in creation order; only these are deleted.
    created: Vec<String>,
    tempdir: PathBuf,
    apaches: Vec<Child>,
    /// The guardian's stdin: a line on it means "cleaned up, exit"; EOF
    /// (this process died without `Drop`) means "clean up".
    guardian: Option<(Child, ChildStdin)>,
}

impl Testbed {
    /// Builds the bed: namespaces, links, addresses, routes, sysctls,
    /// offloads, the TUN shim, and one apache per real server answering on
    /// its own address. Panics, naming the cause, if a prerequisite is
    /// missing or a step fails; what was built so far is removed.
    pub fn new(opts: Options) -> Testbed {
        Testbed::build(opts, Shape::OneArmed)
    }

    /// The kernel IPVS selftest's shape
    /// (tools/testing/selftests/net/netfilter/ipvs.sh), with every veth at
    /// the kernel's default offloads (tx checksum offload on: local senders
    /// hand on partial checksums):
    ///
    /// ```text
    ///             client LAN 198.18.0.0/24              server LAN 198.18.2.0/24
    /// client ─┬─ (bridge) ─┬─ director: .0.1 | .2.2, VIP on lo ─┬─ (bridge) ─┬─ rsN .2.1N
    /// .0.10   │            │   ip_forward=1, xdpvs on both ports │            │
    ///  route  │            └──────── rsN's client-side port .0.1N (DR/TUN) ──┘
    ///  VIP via .0.1
    /// ```
    ///
    /// The switch namespace (`Host::Router`) holds both bridges and no
    /// address. Each real server has a port on the server LAN (its
    /// `real_addr`, where the director forwards to) and, in DR and TUN, one
    /// on the client's LAN (198.18.0.11 + i) that its replies leave by, with
    /// the VIP on `lo`, ARP for it suppressed and reverse-path filtering
    /// off (as the selftest does). In NAT there is no client-side port and
    /// the default route is the director. In TUN the server LAN has MTU
    /// `TUN_LAN_MTU` and the decapsulation shim, as in the one-armed bed.
    pub fn two_armed(opts: Options) -> Testbed {
        assert!(
            in_path("socat"),
            "testbed: `socat` missing (package socat; scripts/setup.sh installs it)"
        );
        Testbed::build(opts, Shape::TwoArmed)
    }

    fn build(opts: Options, shape: Shape) -> Testbed {
        assert!(
            (1..=9).contains(&opts.reals),
            "testbed: reals must be 1..=9, got {}",
            opts.reals
        );
        assert!(
            opts.director_queues >= 1,
            "testbed: director_queues must be at least 1"
        );
        check_prerequisites(opts.mode);

        let mut bed = Testbed {
            prefix: String::new(),
            opts,
            shape,
            created: Vec::new(),
            tempdir: PathBuf::new(),
            apaches: Vec::new(),
            guardian: None,
        };
        bed.claim_prefix();
        bed.start_guardian();
        for host in bed.hosts().into_iter().skip(1) {
            let ns = bed.ns(host);
            run_checked(
                Command::new("ip").args(["netns", "add", &ns]),
                "ip netns add",
            );
            bed.created.push(ns);
        }
        bed.make_tempdir();
        match shape {
            Shape::OneArmed => bed.configure_network(),
            Shape::TwoArmed => bed.configure_two_armed(),
        }
        if opts.mode == Mode::Tun {
            bed.attach_shim();
        }
        bed.start_apaches();
        bed
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn options(&self) -> Options {
        self.opts
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Every port of the director: its LAN port, and in the two-armed bed
    /// its client-side port after it.
    pub fn director_ifaces(&self) -> Vec<String> {
        let mut v = vec![self.director_iface()];
        if self.shape == Shape::TwoArmed {
            v.push(format!("{}e", self.ns(Host::Director)));
        }
        v
    }

    /// Two-armed bed: real server `i`'s address on the client's LAN (DR,
    /// TUN), which its replies leave from.
    pub fn real_client_side_addr(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.opts.reals, "testbed: no real server {i}");
        Ipv4Addr::new(198, 18, 0, 11 + i as u8)
    }

    pub fn ns(&self, host: Host) -> String {
        match host {
            Host::Client => format!("{}c", self.prefix),
            Host::Router => format!("{}r", self.prefix),
            Host::Director => format!("{}d", self.prefix),
            Host::Real(i) => {
                assert!(i < self.opts.reals, "testbed: no real server {i}");
                format!("{}s{}", self.prefix, i + 1)
            }
        }
    }

    /// The host's interface towards the rest of the bed: the client's link,
    /// the router's LAN bridge, the director's or a real server's LAN veth.
    pub fn iface(&self, host: Host) -> String {
        match host {
            Host::Router => format!("{}lan", self.prefix),
            // Each namespace holds one end, named like the namespace.
            other => self.ns(other),
        }
    }

    pub fn director_iface(&self) -> String {
        self.iface(Host::Director)
    }

    pub fn vip(&self) -> Ipv4Addr {
        VIP
    }

    pub fn real_addr(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.opts.reals, "testbed: no real server {i}");
        Ipv4Addr::new(198, 18, 2, 11 + i as u8)
    }

    /// The host's LAN (or, for the client, only) address.
    pub fn addr(&self, host: Host) -> Ipv4Addr {
        match host {
            Host::Client => CLIENT_ADDR,
            Host::Router => ROUTER_LAN_ADDR,
            Host::Director => DIRECTOR_ADDR,
            Host::Real(i) => self.real_addr(i),
        }
    }

    /// The MAC of `iface(host)` (`mac_of(addr(host))`).
    pub fn mac(&self, host: Host) -> [u8; 6] {
        mac_of(self.addr(host))
    }

    pub fn lan_mtu(&self) -> u32 {
        match self.opts.mode {
            Mode::Tun => TUN_LAN_MTU,
            Mode::Dr | Mode::Nat => LAN_MTU,
        }
    }

    /// Runs `args` in the host's namespace (`ip netns exec`) and waits.
    pub fn exec(&self, host: Host, args: &[&str]) -> Output {
        self.command(host, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("testbed: cannot run ip netns exec {args:?}: {e}"))
    }

    /// Starts `args` in the host's namespace. stdin is null; stdout and
    /// stderr are piped, so read them (or take and drop them) if the program
    /// writes much. On `Drop` the bed stops every process in its namespaces:
    /// SIGTERM, then SIGKILL after `STOP_TIMEOUT`.
    pub fn spawn(&self, host: Host, args: &[&str]) -> Child {
        self.command(host, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("testbed: cannot spawn ip netns exec {args:?}: {e}"))
    }

    pub fn tempdir(&self) -> &Path {
        &self.tempdir
    }

    /// `curl` from the client: (HTTP status, body). Connecting is bounded
    /// to 3 s (one SYN retransmission), the whole transfer to 30 s. Err
    /// carries curl's exit status and message.
    pub fn curl(&self, url: &str) -> Result<(u16, Vec<u8>), String> {
        self.curl_from(Host::Client, url)
    }

    /// As `curl`, from any host (in NAT mode only the router and the
    /// director reach a real server's own address: its replies go to the
    /// director, which does not forward).
    pub fn curl_from(&self, host: Host, url: &str) -> Result<(u16, Vec<u8>), String> {
        let out = self.exec(
            host,
            &[
                "curl",
                "-sS",
                "--connect-timeout",
                "3",
                "--max-time",
                "30",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                url,
            ],
        );
        if !out.status.success() {
            return Err(format!(
                "curl {url} from {host:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // The body is followed by "\n" and the status code (-w).
        let stdout = out.stdout;
        let nl = stdout
            .iter()
            .rposition(|&b| b == b'\n')
            .ok_or_else(|| format!("curl {url}: no status code in the output"))?;
        let code = std::str::from_utf8(&stdout[nl + 1..])
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .ok_or_else(|| format!("curl {url}: bad status code {:?}", &stdout[nl + 1..]))?;
        Ok((code, stdout[..nl].to_vec()))
    }

    // ---- construction -------------------------------------------------------

    fn command(&self, host: Host, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)]).args(args);
        cmd
    }

    /// The router first: its namespace is the claim on the prefix, and it
    /// creates every link.
    fn hosts(&self) -> Vec<Host> {
        let mut hosts = vec![Host::Router, Host::Client, Host::Director];
        hosts.extend((0..self.opts.reals).map(Host::Real));
        hosts
    }

    /// Takes the first free `xdpvs{pid:05}{counter:02}`: `ip netns add`
    /// fails if the name exists, so creating the router namespace is the
    /// claim (another process whose pid matches modulo 100000, or a run
    /// killed with its guardian, cannot collide).
    fn claim_prefix(&mut self) {
        let pid = std::process::id() % 100_000;
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 100;
            self.prefix = format!("xdpvs{pid:05}{n:02}");
            let ns = self.ns(Host::Router);
            let out = Command::new("ip")
                .args(["netns", "add", &ns])
                .output()
                .expect("testbed: cannot run `ip` (iproute2)");
            if out.status.success() {
                self.created.push(ns);
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("exists") {
                panic!("testbed: ip netns add {ns} failed (root needed): {err}");
            }
        }
        panic!(
            "testbed: no free name prefix xdpvs{pid:05}NN: stale namespaces? see `ip netns list`"
        );
    }

    fn start_guardian(&mut self) {
        let names: Vec<String> = self.hosts().into_iter().map(|h| self.ns(h)).collect();
        let tempdir = temp_root().join(&self.prefix);
        let script = format!(
            "if read -r _; then exit 0; fi\n\
             for ns in {names}; do\n\
               pids=$(ip netns pids \"$ns\" 2>/dev/null) && [ -n \"$pids\" ] && kill -KILL $pids\n\
             done\n\
             sleep 0.2\n\
             for ns in {names}; do ip netns del \"$ns\" 2>/dev/null; done\n\
             rm -rf '{tempdir}'\n",
            names = names.join(" "),
            tempdir = tempdir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the test's process group: Ctrl-C must not stop it.
            .process_group(0)
            .spawn()
            .expect("testbed: cannot start the clean-up guardian (sh)");
        let stdin = child.stdin.take().expect("piped stdin");
        self.guardian = Some((child, stdin));
    }

    fn make_tempdir(&mut self) {
        let dir = temp_root().join(&self.prefix);
        // Left by a run that died with its guardian; the prefix is ours now.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("testbed: cannot create {}: {e}", dir.display()));
        // apache's workers run as www-data and must reach their docroot.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("testbed: chmod {}: {e}", dir.display()));
        self.tempdir = dir;
    }

    fn configure_network(&self) {
        let p = &self.prefix;
        let mtu = self.lan_mtu();
        let q = self.opts.director_queues;
        let offloads = "tx off rx off tso off gso off gro off";

        // Router: creates every veth pair with the peer end already in its
        // namespace, so the root namespace never sees them.
        let mut s = String::from("ip link set lo up\necho 1 > /proc/sys/net/ipv4/ip_forward\n");
        let client_side = format!("{p}rc");
        let bridge = self.iface(Host::Router);
        let _ = writeln!(
            s,
            "ip link add {client_side} type veth peer name {c} netns {c}",
            c = self.ns(Host::Client)
        );
        let _ = writeln!(
            s,
            "ip link add {bridge} address {} mtu {mtu} type bridge stp_state 0 forward_delay 0",
            mac_string(ROUTER_LAN_ADDR)
        );
        let mut ports = vec![(
            format!("{p}pd"),
            self.ns(Host::Director),
            format!(" numrxqueues {q} numtxqueues {q}"),
        )];
        for i in 0..self.opts.reals {
            ports.push((
                format!("{p}p{}", i + 1),
                self.ns(Host::Real(i)),
                String::new(),
            ));
        }
        for (port, peer, queues) in &ports {
            let _ = writeln!(
                s,
                "ip link add {port} mtu {mtu}{queues} type veth peer name {peer} mtu {mtu}{queues} netns {peer}\n\
                 ethtool -K {port} {offloads} >/dev/null\n\
                 ip link set {port} master {bridge} up"
            );
        }
        let _ = writeln!(
            s,
            "ethtool -K {client_side} {offloads} >/dev/null\n\
             ip link set dev {client_side} address {}\n\
             ip addr add {ROUTER_CLIENT_ADDR}/24 dev {client_side}\n\
             ip link set {client_side} up\n\
             ip addr add {ROUTER_LAN_ADDR}/24 dev {bridge}\n\
             ip link set {bridge} up\n\
             ip route add {VIP}/32 via {DIRECTOR_ADDR} dev {bridge}",
            mac_string(ROUTER_CLIENT_ADDR)
        );
        self.run_scripts(vec![(Host::Router, s)]);

        let mut scripts = Vec::new();
        let host_script = |host: Host, addr: Ipv4Addr, gw: Ipv4Addr, extra: &str| {
            let dev = self.iface(host);
            let mac = mac_string(addr);
            format!(
                "ip link set lo up\n\
                 ethtool -K {dev} {offloads} >/dev/null\n\
                 ip link set dev {dev} address {mac}\n\
                 ip addr add {addr}/24 dev {dev}\n\
                 ip link set {dev} up\n\
                 ip route add default via {gw} dev {dev}\n\
                 {extra}"
            )
        };
        scripts.push((
            Host::Client,
            host_script(Host::Client, CLIENT_ADDR, ROUTER_CLIENT_ADDR, ""),
        ));
        scripts.push((
            Host::Director,
            host_script(Host::Director, DIRECTOR_ADDR, ROUTER_LAN_ADDR, ""),
        ));
        for i in 0..self.opts.reals {
            let host = Host::Real(i);
            let dev = self.iface(host);
            let conf = "/proc/sys/net/ipv4/conf";
            let (gw, extra) = match self.opts.mode {
                Mode::Nat => (DIRECTOR_ADDR, String::new()),
                Mode::Dr | Mode::Tun => {
                    // The VIP is local but must not be answered for in ARP
                    // (arp_ignore=1: only for addresses on the asking
                    // interface) nor used as ARP source (arp_announce=2).
                    let mut e = format!(
                        "ip addr add {VIP}/32 dev lo\n\
                         for c in all {dev}; do echo 1 > {conf}/$c/arp_ignore; echo 2 > {conf}/$c/arp_announce; done\n"
                    );
                    if self.opts.mode == Mode::Tun {
                        // The decapsulated packet comes from the client but
                        // arrives on the LAN interface.
                        let _ = writeln!(
                            e,
                            "for c in all default {dev}; do echo 0 > {conf}/$c/rp_filter; done"
                        );
                    }
                    (ROUTER_LAN_ADDR, e)
                }
            };
            scripts.push((host, host_script(host, self.real_addr(i), gw, &extra)));
        }
        self.run_scripts(scripts);
    }

    /// The two-armed bed (see [`Testbed::two_armed`]). No `ethtool -K`:
    /// every veth keeps the kernel's default offloads.
    fn configure_two_armed(&self) {
        let p = &self.prefix;
        let lan_mtu = self.lan_mtu();
        let q = self.opts.director_queues;
        let nat = self.opts.mode == Mode::Nat;
        let lan = self.iface(Host::Router);
        let cl = format!("{p}cln");
        let director = self.ns(Host::Director);
        let [d_lan, d_cl] = <[String; 2]>::try_from(self.director_ifaces()).unwrap();

        // The switch: two bridges, and every veth created from here with
        // its peer already in its host's namespace.
        let mut s = String::from("ip link set lo up\n");
        let _ = writeln!(
            s,
            "ip link add {lan} mtu {lan_mtu} type bridge stp_state 0 forward_delay 0\n\
             ip link add {cl} type bridge stp_state 0 forward_delay 0"
        );
        // (switch port, bridge, MTU, peer name, peer namespace, queues)
        let mut ports = vec![
            (
                format!("{p}pc"),
                &cl,
                LAN_MTU,
                self.ns(Host::Client),
                self.ns(Host::Client),
                String::new(),
            ),
            (
                format!("{p}pe"),
                &cl,
                LAN_MTU,
                d_cl.clone(),
                director.clone(),
                format!(" numrxqueues {q} numtxqueues {q}"),
            ),
            (
                format!("{p}pd"),
                &lan,
                lan_mtu,
                d_lan.clone(),
                director.clone(),
                format!(" numrxqueues {q} numtxqueues {q}"),
            ),
        ];
        for i in 0..self.opts.reals {
            let ns = self.ns(Host::Real(i));
            ports.push((
                format!("{p}p{}", i + 1),
                &lan,
                lan_mtu,
                ns.clone(),
                ns.clone(),
                String::new(),
            ));
            if !nat {
                ports.push((
                    format!("{p}q{}", i + 1),
                    &cl,
                    LAN_MTU,
                    format!("{ns}c"),
                    ns,
                    String::new(),
                ));
            }
        }
        for (port, bridge, mtu, peer, peer_ns, queues) in &ports {
            let _ = writeln!(
                s,
                "ip link add {port} mtu {mtu}{queues} type veth peer name {peer} mtu {mtu}{queues} netns {peer_ns}\n\
                 ip link set {port} master {bridge} up"
            );
        }
        let _ = writeln!(s, "ip link set {lan} up\nip link set {cl} up");
        self.run_scripts(vec![(Host::Router, s)]);

        let port = |dev: &str, addr: Ipv4Addr| {
            format!(
                "ip link set dev {dev} address {mac}\n\
                 ip addr add {addr}/24 dev {dev}\n\
                 ip link set {dev} up\n",
                mac = mac_string(addr)
            )
        };
        let conf = "/proc/sys/net/ipv4/conf";
        let mut scripts = vec![
            (
                Host::Client,
                format!(
                    "ip link set lo up\n{}ip route add {VIP}/32 via {DIRECTOR_CLIENT_ADDR}\n",
                    port(&self.iface(Host::Client), CLIENT_ADDR)
                ),
            ),
            (
                Host::Director,
                format!(
                    "ip link set lo up\n{}{}ip addr add {VIP}/32 dev lo\n\
                     echo 1 > /proc/sys/net/ipv4/ip_forward\n",
                    port(&d_lan, DIRECTOR_ADDR),
                    port(&d_cl, DIRECTOR_CLIENT_ADDR)
                ),
            ),
        ];
        for i in 0..self.opts.reals {
            let host = Host::Real(i);
            let dev = self.iface(host);
            let mut e = format!("ip link set lo up\n{}", port(&dev, self.real_addr(i)));
            if nat {
                let _ = writeln!(e, "ip route add default via {DIRECTOR_ADDR} dev {dev}");
            } else {
                let cdev = format!("{}c", self.ns(host));
                e.push_str(&port(&cdev, self.real_client_side_addr(i)));
                let _ = writeln!(
                    e,
                    "ip addr add {VIP}/32 dev lo\n\
                     for c in all {dev} {cdev}; do echo 1 > {conf}/$c/arp_ignore; echo 2 > {conf}/$c/arp_announce; done\n\
                     for c in all default {dev} {cdev}; do echo 0 > {conf}/$c/rp_filter; done"
                );
            }
            scripts.push((host, e));
        }
        self.run_scripts(scripts);
    }

    /// Runs one `sh -e` script per host, all at once, and panics with the
    /// failing host's output.
    fn run_scripts(&self, scripts: Vec<(Host, String)>) {
        if let Err(failures) = self.try_scripts(scripts) {
            panic!("testbed: setup failed:\n{failures}");
        }
    }

    fn try_scripts(&self, scripts: Vec<(Host, String)>) -> Result<(), String> {
        let children: Vec<(Host, Child)> = scripts
            .into_iter()
            .map(|(host, script)| {
                let child = self
                    .command(host, &["sh", "-ec", &script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("testbed: cannot run sh in {host:?}: {e}"));
                (host, child)
            })
            .collect();
        let mut failures = String::new();
        for (host, child) in children {
            let out = child.wait_with_output().expect("testbed: wait for sh");
            if !out.status.success() {
                let _ = writeln!(
                    failures,
                    "{host:?} ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    fn attach_shim(&self) {
        let obj = self.tempdir.join("ipip_decap.bpf.o");
        let include = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        let out = Command::new("clang")
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-I",
                &include,
                "-c",
                SHIM_SOURCE,
                "-o",
            ])
            .arg(&obj)
            .output()
            .expect("testbed: cannot run clang (package clang)");
        assert!(
            out.status.success(),
            "testbed: compiling {SHIM_SOURCE} failed (clang, libbpf-dev, linux-libc-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let obj = obj.to_str().expect("utf-8 temp path").to_owned();
        let scripts = (0..self.opts.reals)
            .map(|i| {
                let dev = self.iface(Host::Real(i));
                // Native first; generic XDP where the driver lacks it.
                (
                    Host::Real(i),
                    format!(
                        "ip link set dev {dev} xdpdrv obj {obj} sec xdp 2>/dev/null || \
                         ip link set dev {dev} xdpgeneric obj {obj} sec xdp"
                    ),
                )
            })
            .collect();
        self.run_scripts(scripts);
    }

    fn start_apaches(&mut self) {
        let big = self.tempdir.join("big.bin");
        std::fs::write(&big, big_bin()).expect("testbed: write big.bin");
        for i in 0..self.opts.reals {
            let dir = self.tempdir.join(format!("rs{}", i + 1));
            let docroot = dir.join("htdocs");
            let run = dir.join("run");
            for d in [&docroot, &run] {
                std::fs::create_dir_all(d).expect("testbed: create apache dirs");
            }
            std::fs::write(docroot.join("index.html"), real_body(i)).expect("write index");
            std::fs::hard_link(&big, docroot.join("big.bin")).expect("link big.bin");
            let conf = dir.join("apache2.conf");
            std::fs::write(&conf, apache_config(&dir, i)).expect("testbed: write apache2.conf");
            let child = self.spawn_apache(i);
            self.apaches.push(child);
        }
        self.wait_for_servers("apache", "http", "/", &["stderr.log", "error.log"]);
    }

    /// Starts real server `i`'s apache on its configuration.
    fn spawn_apache(&self, i: usize) -> Child {
        let dir = self.tempdir.join(format!("rs{}", i + 1));
        let conf = dir.join("apache2.conf");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .expect("open stderr.log");
        self.command(
            Host::Real(i),
            &[APACHE, "-f", conf.to_str().unwrap(), "-DFOREGROUND"],
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("testbed: cannot start {APACHE}: {e}"))
    }

    /// Stops real server `i`'s apache (SIGTERM, then SIGKILL), bounded:
    /// from here its address refuses connections to port 80.
    pub fn stop_apache(&mut self, i: usize) {
        let child = &mut self.apaches[i];
        for signal in ["-TERM", "-KILL"] {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Its workers go with it; wait until nothing listens on :80.
        let url = format!("http://{}/", self.real_addr(i));
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.curl_from(Host::Real(i), &url).is_ok() {
            assert!(
                Instant::now() < deadline,
                "testbed: rs{} still answers",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts real server `i`'s apache again and waits (bounded) until it
    /// answers from its own namespace.
    pub fn start_apache(&mut self, i: usize) {
        self.apaches[i] = self.spawn_apache(i);
        let url = format!("http://{}/", self.real_addr(i));
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.curl_from(Host::Real(i), &url).is_err() {
            assert!(
                Instant::now() < deadline,
                "testbed: rs{} does not answer",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every real server answers `{scheme}://its-address{path}`
    /// from inside its own namespace, all at once, each bounded by
    /// `READY_TIMEOUT`; panics with the servers' `logs` (files of
    /// `tempdir()/rsN`) if one does not.
    fn wait_for_servers(&self, what: &str, scheme: &str, path: &str, logs: &[&str]) {
        let tries = READY_TIMEOUT.as_millis() / 20;
        let scripts = (0..self.opts.reals)
            .map(|i| {
                (
                    Host::Real(i),
                    format!(
                        "i=0\n\
                         while [ $i -lt {tries} ]; do\n\
                           curl -s -o /dev/null -m 1 {scheme}://{addr}{path} && exit 0\n\
                           i=$((i+1)); sleep 0.02\n\
                         done\n\
                         echo '{what} on {addr} not answering after {secs} s' >&2; exit 1",
                        addr = self.real_addr(i),
                        secs = READY_TIMEOUT.as_secs(),
                    ),
                )
            })
            .collect();
        if let Err(msg) = self.try_scripts(scripts) {
            let mut text = String::new();
            for i in 0..self.opts.reals {
                let dir = self.tempdir.join(format!("rs{}", i + 1));
                for f in logs {
                    let log = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                    let _ = writeln!(text, "rs{} {f}: {log}", i + 1);
                }
            }
            panic!("testbed: {what} did not come up:\n{msg}{text}");
        }
    }

    /// Starts vsftpd on every real server (package vsftpd), listening on
    /// port 21 of all its addresses, with a throw-away configuration in
    /// `tempdir()/rsN/ftp`: anonymous login without password, `/big.bin`
    /// (the same `BIG_LEN` bytes as apache's), `/whoami.txt` (`rsN\n`) and
    /// an upload directory `/up` writable by anonymous; passive ports
    /// `FTP_PASV_PORTS`, active mode from port 20 (`connect_from_port_20`).
    ///
    /// No `pasv_address`: vsftpd names the address the control connection
    /// arrived at. In DR and TUN that is the VIP (the real server holds
    /// it), which is right for the client; in NAT it is the real server's
    /// own address, which the director's FTP helper rewrites to the VIP.
    pub fn start_vsftpd(&mut self) {
        assert!(
            Path::new(VSFTPD).exists(),
            "testbed: {VSFTPD} missing (package vsftpd; scripts/setup.sh installs it)"
        );
        for i in 0..self.opts.reals {
            let dir = self.tempdir.join(format!("rs{}", i + 1));
            let root = dir.join("ftp");
            let up = root.join("up");
            let empty = dir.join("ftp-empty");
            for d in [&root, &up, &empty] {
                std::fs::create_dir_all(d).expect("testbed: create vsftpd dirs");
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                    .expect("testbed: chmod vsftpd dirs");
            }
            // Anonymous uploads are written as the `ftp` user.
            run_checked(
                Command::new("chown").args(["ftp:", up.to_str().unwrap()]),
                "chown up",
            );
            std::fs::write(root.join("whoami.txt"), real_body(i)).expect("write whoami");
            std::fs::hard_link(self.tempdir.join("big.bin"), root.join("big.bin"))
                .expect("link big.bin");
            let conf = dir.join("vsftpd.conf");
            std::fs::write(&conf, vsftpd_config(&root, &empty, &dir.join("vsftpd.log")))
                .expect("testbed: write vsftpd.conf");
            let log = std::fs::File::create(dir.join("vsftpd.stderr")).expect("create log");
            let child = self
                .command(Host::Real(i), &[VSFTPD, conf.to_str().unwrap()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("testbed: cannot start {VSFTPD}: {e}"));
            self.apaches.push(child);
        }
        self.wait_for_servers("vsftpd", "ftp", "/whoami.txt", &["vsftpd.stderr"]);
    }

    /// The anonymous FTP upload directory of real server `i` (0-based).
    pub fn ftp_upload_dir(&self, i: usize) -> PathBuf {
        self.tempdir
            .join(format!("rs{}", i + 1))
            .join("ftp")
            .join("up")
    }

    // ---- teardown -----------------------------------------------------------

    fn pids(&self) -> Vec<String> {
        let mut pids = Vec::new();
        for ns in &self.created {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                pids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .map(str::to_owned),
                );
            }
        }
        pids
    }

    /// Signals every process in the bed's namespaces (all started by this
    /// bed or its test) until none is left, bounded.
    fn stop_processes(&mut self) {
        for (signal, timeout) in [("-TERM", STOP_TIMEOUT), ("-KILL", Duration::from_secs(2))] {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            // The shell's kill: procps is not installed everywhere.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill {signal} {}", pids.join(" "))])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                for child in &mut self.apaches {
                    let _ = child.try_wait();
                }
                if self.pids().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for child in &mut self.apaches {
            let _ = child.try_wait();
        }
        let left = self.pids();
        if !left.is_empty() {
            eprintln!(
                "testbed: processes survive SIGKILL in {}: {left:?}",
                self.prefix
            );
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop_processes();
        // Deleting a namespace destroys its veth ends, and with them the
        // peers in the other namespaces and the bridge ports.
        let mut batch = String::new();
        for ns in self.created.iter().rev() {
            let _ = writeln!(batch, "netns del {ns}");
        }
        if !batch.is_empty() {
            let result = Command::new("ip")
                .args(["-force", "-batch", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    child
                        .stdin
                        .take()
                        .expect("piped")
                        .write_all(batch.as_bytes())?;
                    child.wait_with_output()
                });
            match result {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "testbed: deleting namespaces of {}: {}",
                    self.prefix,
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("testbed: cannot run ip netns del: {e}"),
            }
        }
        if !self.tempdir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.tempdir);
        }
        if let Some((mut child, mut stdin)) = self.guardian.take() {
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

fn temp_root() -> PathBuf {
    std::env::temp_dir()
}

fn vsftpd_config(root: &Path, empty: &Path, log: &Path) -> String {
    let (lo, hi) = FTP_PASV_PORTS;
    format!(
        "# Throw-away config of the xdpvs test bed.\n\
         listen=YES\nlisten_ipv6=NO\nbackground=NO\n\
         anonymous_enable=YES\nno_anon_password=YES\nlocal_enable=NO\n\
         anon_root={root}\nwrite_enable=YES\nanon_upload_enable=YES\n\
         anon_other_write_enable=YES\nanon_umask=022\n\
         pasv_enable=YES\npasv_min_port={lo}\npasv_max_port={hi}\n\
         port_enable=YES\nconnect_from_port_20=YES\n\
         secure_chroot_dir={empty}\n\
         seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
         xferlog_enable=YES\nvsftpd_log_file={log}\ndual_log_enable=NO\n\
         idle_session_timeout=60\ndata_connection_timeout=30\n",
        root = root.display(),
        empty = empty.display(),
        log = log.display(),
    )
}

fn apache_config(dir: &Path, i: usize) -> String {
    let d = dir.display();
    format!(
        "# Throw-away config of the xdpvs test bed (real server rs{n}).\n\
         ServerRoot \"{d}\"\n\
         ServerName rs{n}\n\
         Listen 0.0.0.0:{HTTP_PORT}\n\
         PidFile \"{d}/apache2.pid\"\n\
         ErrorLog \"{d}/error.log\"\n\
         LogLevel warn\n\
         DefaultRuntimeDir \"{d}/run\"\n\
         Mutex file:{d}/run default\n\
         LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so\n\
         LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so\n\
         LoadModule dir_module {APACHE_MODULES}/mod_dir.so\n\
         User {APACHE_USER}\n\
         Group {APACHE_USER}\n\
         StartServers 1\n\
         ServerLimit 4\n\
         ThreadLimit 32\n\
         ThreadsPerChild 32\n\
         MinSpareThreads 8\n\
         MaxSpareThreads 64\n\
         MaxRequestWorkers 128\n\
         DocumentRoot \"{d}/htdocs\"\n\
         DirectoryIndex index.html\n\
         <Directory \"{d}/htdocs\">\n\
         \x20   Require all granted\n\
         </Directory>\n",
        n = i + 1,
    )
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("testbed: cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "testbed: {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails with the missing piece named, and where it comes from.
fn check_prerequisites(mode: Mode) {
    let mut missing = Vec::new();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        missing.push("root (network namespaces need CAP_NET_ADMIN; run the tests as root)".into());
    }
    for (program, package) in [
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
        ("curl", "curl"),
        ("sh", "dash"),
    ] {
        if !in_path(program) {
            missing.push(format!("`{program}` (package {package})"));
        }
    }
    if !Path::new(APACHE).is_file() {
        missing.push(format!("{APACHE} (package apache2)"));
    }
    for module in ["mod_mpm_event.so", "mod_authz_core.so", "mod_dir.so"] {
        if !Path::new(APACHE_MODULES).join(module).is_file() {
            missing.push(format!("{APACHE_MODULES}/{module} (package apache2)"));
        }
    }
    let has_user = std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|p| p.lines().any(|l| l.starts_with(&format!("{APACHE_USER}:"))));
    if !has_user {
        missing.push(format!("user {APACHE_USER} (package base-passwd)"));
    }
    if mode == Mode::Tun {
        if !in_path("clang") {
            missing.push("`clang` (package clang), for the TUN shim".into());
        }
        if !Path::new("/usr/include/bpf/bpf_helpers.h").is_file() {
            missing.push("/usr/include/bpf/bpf_helpers.h (package libbpf-dev)".into());
        }
        let asm = format!(
            "/usr/include/{}-linux-gnu/asm/types.h",
            std::env::consts::ARCH
        );
        if !Path::new(&asm).is_file() {
            missing.push(format!("{asm} (package linux-libc-dev)"));
        }
    }
    assert!(
        missing.is_empty(),
        "testbed: prerequisites missing (scripts/setup.sh installs the packages): {}",
        missing.join(", ")
    );
}
