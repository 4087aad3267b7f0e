//! The typed configuration: what a valid file becomes, with its defaults
//! and limits. `validate` builds it from the file, `rules` judges its
//! services and real servers; everything else only reads it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::dest::Forward;
use crate::sched::{Params, SchedFlags};

/// Scheduler names accepted in `services.scheduler`, as ipvsadm `-s` spells
/// them: those of [`crate::sched::REGISTRY`].
pub const SCHEDULERS: &[&str] = &crate::sched::NAMES;

/// `services.scheduler` when the key is absent (ipvsadm's default too).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `control.socket` when the key is absent; also `xdpvsadm --socket`'s default.
pub const DEFAULT_SOCKET: &str = "/run/xdpvs/xdpvs.sock";

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub dataplane: Dataplane,
    pub connections: Connections,
    pub control: Control,
    pub log: Log,
    pub daemon: Daemon,
    pub metrics: Metrics,
    /// Virtual services, in file order. May be empty: services can be added
    /// later with `xdpvsadm`.
    pub services: Vec<ServiceConfig>,
}

/// `[dataplane]`: where packets come from and how the workers run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataplane {
    /// Interfaces to attach to; one AF_XDP socket per RX queue. Never empty.
    pub interfaces: Vec<String>,
    /// Cores for the pinned busy-poll workers; empty = no pinning. No duplicates.
    pub cores: Vec<usize>,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Which ports finish partial TCP/UDP checksums; see [`CompleteChecksums`].
    pub complete_checksums: CompleteChecksums,
    /// Frames per RX/TX batch, 1..=[`Dataplane::MAX_BATCH_SIZE`].
    pub batch_size: u32,
    /// MTU of the director's ports, 576..=9000 and at most
    /// [`Tuning::max_mtu`]: an IPIP packet that would exceed it is answered
    /// with ICMP "fragmentation needed".
    pub mtu: u16,
    /// Outer source address of IPIP packets; always `Some` when a real server
    /// uses [`Forward::Tun`].
    pub tunnel_source: Option<Ipv4Addr>,
    /// Socket, ring and polling sizes; see [`Tuning`].
    pub tuning: Tuning,
}

/// How each worker's AF_XDP socket and loop are sized and how it waits.
/// Every field is a `[dataplane]` key of the same name, documented with how
/// to choose it in `config/xdpvs.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// UMEM frames per socket (power of two): fill ring + RX/TX in flight.
    pub umem_frames: u32,
    /// Bytes per UMEM frame: 2048 (MTU up to ~1700) or 4096.
    pub frame_size: u32,
    pub rx_ring_size: u32,
    pub tx_ring_size: u32,
    pub fill_ring_size: u32,
    pub comp_ring_size: u32,
    /// `SO_BUSY_POLL` microseconds; 0 leaves busy polling to the kernel's
    /// interrupts (off).
    pub busy_poll_usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets the driver handles per busy poll.
    pub busy_poll_budget: u32,
    /// `SO_PREFER_BUSY_POLL`: keep interrupts masked while we poll.
    pub prefer_busy_poll: bool,
    pub idle: Idle,
}

impl Tuning {
    pub const MIN_RING: u32 = 64;
    pub const MAX_RING: u32 = 1 << 16;
    pub const MAX_UMEM_FRAMES: u32 = 1 << 18;
    /// Bytes of one buffer of the hand-over between workers (the size of
    /// `worker::HANDOFF_BYTES`; the daemon's tests hold the two equal): a
    /// frame that must change workers is copied into one.
    pub const HANDOFF_BYTES: u32 = 2048;

    /// UMEM frames a socket needs: a full fill ring for the kernel to
    /// receive into, and beyond it a TX ring's worth, for frames in flight
    /// on TX and for the free frames that hand-overs and cross-port
    /// transmission copy into (the fill ring takes every free frame it has
    /// room for, so only what lies beyond it is ever free).
    pub fn frames_needed(&self) -> u32 {
        self.fill_ring_size + self.tx_ring_size
    }

    /// The largest MTU whose frames (with an Ethernet header and a VLAN
    /// tag) fit a UMEM frame after its headroom, and a hand-over buffer.
    pub fn max_mtu(&self) -> u32 {
        let room = (self.frame_size - crate::frame::RX_HEADROOM as u32).min(Self::HANDOFF_BYTES);
        room - crate::wire::ethernet::VLAN_HEADER_LEN as u32
    }

    /// Why frames of `mtu` do not fit (see [`Tuning::max_mtu`]), or `None`.
    pub fn mtu_problem(&self, mtu: u32) -> Option<String> {
        let max = self.max_mtu();
        if mtu <= max {
            return None;
        }
        let frame_room = self.frame_size - crate::frame::RX_HEADROOM as u32;
        Some(if frame_room <= Self::HANDOFF_BYTES {
            format!(
                "an MTU of at most {max} (a {}-byte frame_size less {} bytes of headroom \
                 and {} of Ethernet header and VLAN tag)",
                self.frame_size,
                crate::frame::RX_HEADROOM,
                crate::wire::ethernet::VLAN_HEADER_LEN
            )
        } else {
            format!(
                "an MTU of at most {max} (the buffers that hand frames between workers hold \
                 {} bytes, {} of them Ethernet header and VLAN tag)",
                Self::HANDOFF_BYTES,
                crate::wire::ethernet::VLAN_HEADER_LEN
            )
        })
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            umem_frames: 4096,
            frame_size: 2048,
            rx_ring_size: 2048,
            tx_ring_size: 2048,
            fill_ring_size: 2048,
            comp_ring_size: 2048,
            busy_poll_usecs: 0,
            busy_poll_budget: 64,
            prefer_busy_poll: false,
            idle: Idle::Busy,
        }
    }
}

/// `dataplane.idle`: what a worker does when a poll finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Idle {
    /// Spin: lowest latency, the core is always 100 % busy (DPDK style).
    #[default]
    Busy,
    /// Spin, but give the core to other runnable threads each empty round.
    Yield,
    /// Block in poll(2) after a short spin: for shared or small machines.
    Wait,
}

impl Dataplane {
    pub const DEFAULT_BATCH_SIZE: u32 = 64;
    /// The largest batch the packet pipeline takes at once: a larger
    /// `batch_size` is refused, not cut down in silence.
    pub const MAX_BATCH_SIZE: u32 = crate::frame::MAX_BATCH as u32;
    pub const DEFAULT_MTU: u16 = 1500;
    /// The minimum IPv4 datagram every host must accept (RFC 791).
    pub const MIN_MTU: u16 = 576;
    pub const MAX_MTU: u16 = 9000;
}

/// `dataplane.xdp_mode`: how the XDP program that redirects to AF_XDP is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XdpMode {
    /// Driver mode (`XDP_FLAGS_DRV_MODE`); fails if the driver lacks XDP.
    Native,
    /// SKB mode (`XDP_FLAGS_SKB_MODE`); works everywhere, slower.
    Generic,
    /// Native if the driver supports it, otherwise generic.
    #[default]
    Auto,
}

/// `dataplane.zero_copy`: whether AF_XDP sockets bind with `XDP_ZEROCOPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ZeroCopy {
    /// Require zero-copy; fail if the driver cannot.
    On,
    /// Copy mode (`XDP_COPY`).
    Off,
    /// Zero-copy if the driver supports it, otherwise copy mode.
    #[default]
    Auto,
}

/// `dataplane.complete_checksums`: whether TCP/UDP checksums that a
/// sender left to its device (`CHECKSUM_PARTIAL`, only the pseudo-header
/// sum in the field) are finished before forwarding
/// ([`crate::wire::partial`]). Decided per interface at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompleteChecksums {
    /// On for interfaces whose driver is virtual ([`VIRTUAL_DRIVERS`]:
    /// veth, virtio-net, tun), whose senders hand partial checksums on;
    /// off for physical NICs, where the sender's NIC filled them in.
    #[default]
    Auto,
    /// On every interface.
    On,
    /// On none.
    Off,
}

/// Drivers (as `ethtool -i` names them) whose frames may carry partial
/// checksums: what `complete_checksums = "auto"` turns the completion on for.
pub const VIRTUAL_DRIVERS: &[&str] = &["veth", "virtio_net", "tun"];

impl CompleteChecksums {
    /// Whether an interface with driver `driver` (`None`: unknown) completes
    /// partial checksums. An unknown driver is treated as virtual: finishing
    /// costs a pseudo-header sum per frame, forwarding a partial frame costs
    /// the connection.
    pub fn applies_to(self, driver: Option<&str>) -> bool {
        match self {
            CompleteChecksums::On => true,
            CompleteChecksums::Off => false,
            CompleteChecksums::Auto => driver.is_none_or(|d| VIRTUAL_DRIVERS.contains(&d)),
        }
    }
}

/// `[connections]`: the connection table and its timeouts (ipvsadm `--set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// Capacity of the connection table, all workers together, 1..=2^26.
    pub max_entries: u32,
    /// Seconds an ESTABLISHED TCP connection may stay idle (`--set tcp`).
    pub tcp_timeout: u32,
    /// Seconds a TCP connection stays after FIN (`--set tcpfin`).
    pub tcpfin_timeout: u32,
    /// Seconds a UDP flow may stay idle (`--set udp`).
    pub udp_timeout: u32,
    /// Virtual ports whose NAT connections get the FTP helper, as IPVS's
    /// `ip_vs_ftp` module parameter `ports` (default `[21]`; empty: off).
    pub ftp_ports: Vec<u16>,
    /// Flood defences: `unreplied_share`, `defense_threshold`,
    /// `drop_entry`, `secure_tcp`, `secure_tcp_timeout`.
    pub defense: crate::conn::Defense,
    /// IPVS's `expire_nodest_conn` (default off): a packet of a connection
    /// whose real server is gone or out of service (failed its health
    /// checks) ends the connection at once, and is scheduled afresh as a new
    /// flow would be; a client's SYN on the 5-tuple of a connection to a
    /// quiescent (weight 0) server is rescheduled too. Off: such packets are
    /// dropped and the connection waits for its server (or its timeout).
    pub expire_nodest_conn: bool,
    /// IPVS's `expire_quiescent_template` (default off): a persistence
    /// template whose real server is quiescent (weight 0, e.g. inhibited by
    /// a failed health check) is expired when a new connection of its
    /// client would use it, so the client is scheduled afresh.
    pub expire_quiescent_template: bool,
}

impl Connections {
    pub const DEFAULT_MAX_ENTRIES: u32 = 1 << 20;
    pub const MAX_MAX_ENTRIES: u32 = 1 << 26;
    pub const DEFAULT_TCP_TIMEOUT: u32 = 900;
    pub const DEFAULT_TCPFIN_TIMEOUT: u32 = 120;
    pub const DEFAULT_UDP_TIMEOUT: u32 = 300;
    pub const DEFAULT_FTP_PORT: u16 = 21;
    /// Largest timeout in seconds: 2^31 / 1000, so that the value in
    /// milliseconds fits an `i32` (Linux IPVS: `INT_MAX / HZ` with HZ = 1000).
    pub const MAX_TIMEOUT: u32 = (1 << 31) / 1000;
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            tcp_timeout: Self::DEFAULT_TCP_TIMEOUT,
            tcpfin_timeout: Self::DEFAULT_TCPFIN_TIMEOUT,
            udp_timeout: Self::DEFAULT_UDP_TIMEOUT,
            ftp_ports: vec![Self::DEFAULT_FTP_PORT],
            defense: crate::conn::Defense::default(),
            expire_nodest_conn: false,
            expire_quiescent_template: false,
        }
    }
}

/// `[control]`: the control socket that `xdpvsadm` talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub socket: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

/// `[log]`: what the daemon writes to stderr (`crate::log`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Log {
    /// Lines above this level are not written; `XDPVS_LOG` overrides it.
    pub level: crate::log::Level,
}

/// `[daemon]`: whom the daemon runs as once it has started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Daemon {
    /// The user to switch to after start-up; `None`: stay who it is.
    pub user: Option<String>,
    /// The group to switch to; `None`: the user's primary group.
    pub group: Option<String>,
}

/// `[metrics]`: the Prometheus endpoint (`crate::ctrl::metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Where `/metrics` is served over HTTP; `None` (the default): not at
    /// all.
    pub listen: Option<std::net::SocketAddr>,
}

/// Transport protocol of a virtual service (ipvsadm `-t` / `-u`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// As ipvsadm prints it in `-L`: `TCP`, `UDP`.
impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// One `[[services]]` table: a virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub proto: Protocol,
    /// Virtual address; port 0 = all ports (persistent services only).
    pub vip: SocketAddr,
    /// One of [`SCHEDULERS`].
    pub scheduler: String,
    /// Seconds; 0 = not persistent (ipvsadm `-p`).
    pub persistence_timeout: u32,
    /// Client addresses equal under this mask share a persistent real server
    /// (ipvsadm `-M`); contiguous. IPv4 services only.
    pub persistence_netmask: Ipv4Addr,
    /// ipvsadm `-b`.
    pub scheduler_flags: SchedFlags,
    /// Size of the Maglev lookup table (`mh`); a prime.
    pub mh_table_size: u32,
    /// Maglev seed (`mh`): set, the table is built in canonical order
    /// under seed-derived keys ([`Params::mh_seed`]).
    pub mh_seed: Option<u64>,
    /// Health-check defaults of the service's real servers.
    pub health: ServiceHealth,
    pub reals: Vec<RealConfig>,
    /// keepalived's `sorry_server`: in service while the service has no
    /// quorum (with the default quorum of 1: while no real server is up),
    /// and out again when it has. Its thresholds are 0.
    pub sorry_server: Option<RealConfig>,
    /// keepalived's `sorry_server_inhibit`: while not needed the sorry
    /// server stays listed with weight 0 rather than being taken out.
    pub sorry_server_inhibit: bool,
    /// keepalived's `quorum`: the sum of the weights of the real servers
    /// that are up that the service needs (default 1).
    pub quorum: u32,
    /// keepalived's `hysteresis`: quorum is gained at `quorum + hysteresis`
    /// and lost below `quorum - hysteresis` (default 0).
    pub hysteresis: u32,
    /// Command run when the service gains quorum (keepalived `quorum_up`):
    /// its words, split as keepalived splits them, run without a shell.
    pub quorum_up: Option<CommandLine>,
    /// Command run when the service loses quorum (`quorum_down`).
    pub quorum_down: Option<CommandLine>,
}

impl RealConfig {
    pub const DEFAULT_WEIGHT: u32 = 1;

    /// A real server with no connection limits.
    pub fn new(addr: SocketAddr, forward: Forward, weight: u32) -> RealConfig {
        RealConfig {
            addr,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        }
    }

    /// ipvsadm `-w` accepts 0..=65535.
    pub const MAX_WEIGHT: u32 = 65535;
}

impl ServiceConfig {
    /// Largest `persistence_timeout`: ipvsadm's limit, 31 days.
    pub const MAX_PERSISTENCE_TIMEOUT: u32 = 31 * 86400;
    /// `mh_table_size` when the key is absent: [`Params::DEFAULT_MH_TABLE_SIZE`].
    pub const DEFAULT_MH_TABLE_SIZE: u32 = Params::DEFAULT_MH_TABLE_SIZE;
    /// Smallest `mh_table_size`: [`Params::MIN_MH_TABLE_SIZE`].
    pub const MIN_MH_TABLE_SIZE: u32 = Params::MIN_MH_TABLE_SIZE;
    /// Largest `mh_table_size`: [`Params::MAX_MH_TABLE_SIZE`].
    pub const MAX_MH_TABLE_SIZE: u32 = Params::MAX_MH_TABLE_SIZE;
    /// keepalived's default `quorum`.
    pub const DEFAULT_QUORUM: u32 = 1;

    /// A service with every optional setting at its default.
    pub fn new(proto: Protocol, vip: SocketAddr, scheduler: &str) -> ServiceConfig {
        ServiceConfig {
            proto,
            vip,
            scheduler: scheduler.to_owned(),
            persistence_timeout: 0,
            persistence_netmask: Ipv4Addr::BROADCAST,
            scheduler_flags: SchedFlags::default(),
            mh_table_size: Self::DEFAULT_MH_TABLE_SIZE,
            mh_seed: None,
            health: ServiceHealth::default(),
            reals: Vec::new(),
            sorry_server: None,
            sorry_server_inhibit: false,
            quorum: Self::DEFAULT_QUORUM,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
        }
    }
}

/// One `[[services.reals]]` table: a real server of the enclosing service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealConfig {
    /// Same address family as the VIP; same port as the VIP for DR and TUN
    /// unless the service port is 0; port 0 only in port-0 services (then the
    /// client's destination port is kept).
    pub addr: SocketAddr,
    pub forward: Forward,
    /// 0..=65535; 0 = quiescent (no new connections).
    pub weight: u32,
    /// Stop sending new connections above this many (ipvsadm `-x`); 0 = no limit.
    pub upper_threshold: u32,
    /// Resume below this many (ipvsadm `-y`); at most `upper_threshold`.
    pub lower_threshold: u32,
    /// Health checks and what to do on a state change.
    pub health: RealHealth,
}

// ---- health checks (issue 14) ----------------------------------------------

/// A service's health-check settings: the defaults of its real servers'
/// checks (keepalived's `virtual_server` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    /// `delay_loop`: the default interval of the service's checks.
    pub delay_loop: Duration,
    /// `alpha`: the default of the checks' `alpha`.
    pub alpha: bool,
    /// `virtualhost`: the default Host header / SNI of HTTP(S) checks.
    pub virtualhost: Option<String>,
    /// `inhibit_on_failure`: the default of the real servers' (a failed
    /// real server keeps its place at weight 0 instead of being removed).
    pub inhibit_on_failure: bool,
}

impl ServiceHealth {
    /// keepalived's `delay_loop` default.
    pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
    /// The longest interval or timeout a check may have: one day.
    pub const MAX_SECONDS: u32 = 86_400;
}

impl Default for ServiceHealth {
    fn default() -> Self {
        ServiceHealth {
            delay_loop: Self::DEFAULT_DELAY_LOOP,
            alpha: false,
            virtualhost: None,
            inhibit_on_failure: false,
        }
    }
}

/// A real server's health-check settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RealHealth {
    /// Weight 0 and keep, rather than remove, while the checks fail (the
    /// service's `inhibit_on_failure` unless the real server sets its own).
    pub inhibit_on_failure: bool,
    /// Run when the real server goes up.
    pub notify_up: Option<CommandLine>,
    /// Run when it goes down.
    pub notify_down: Option<CommandLine>,
    /// Zero or more checks; all must pass for the real server to be up.
    pub checks: Vec<CheckConfig>,
}

/// A command line split into words as keepalived does (quotes group words,
/// no shell): `argv[0]` is the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// As written in the file (for messages).
    pub text: String,
    /// Never empty.
    pub argv: Vec<String>,
}

impl CommandLine {
    /// Splits `text` into words (POSIX shell quoting, no expansion);
    /// `None` if a quote is unbalanced or there are no words.
    pub fn parse(text: &str) -> Option<CommandLine> {
        let argv = shlex::split(text).filter(|words| !words.is_empty())?;
        Some(CommandLine {
            text: text.to_owned(),
            argv,
        })
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a check's probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Straight to `connect_ip:connect_port` (the real server).
    #[default]
    Direct,
    /// To the VIP, forwarded to this one real server as a client's packet
    /// would be (DR: MAC rewrite; TUN: encapsulated). NAT reals: direct.
    Forwarding,
}

/// One `[[services.reals.checks]]` table, with every default resolved
/// (the service's `delay_loop`, `alpha`, `virtualhost`; the real server's
/// address and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    /// Time between the starts of two checks.
    pub interval: Duration,
    /// Bounds one attempt (connect and exchange; a script has its own `timeout`).
    pub connect_timeout: Duration,
    /// Extra attempts before a failure counts (keepalived `retry`).
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// Consecutive passes to go down → up; at least 1.
    pub rise: u32,
    /// Consecutive failures to go up → down; at least 1.
    pub fall: u32,
    /// Start failed until a check passes.
    pub alpha: bool,
    /// Source address of the probe.
    pub bindto: Option<IpAddr>,
    /// Source port of the probe (with or without `bindto`).
    pub bind_port: Option<u16>,
    /// An address, or a host name resolved at each check.
    pub connect_ip: String,
    pub connect_port: u16,
    pub via: Via,
}

impl CheckConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_RETRY: u32 = 1;
    pub const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
    pub const MAX_RETRY: u32 = 100;
    pub const MAX_RISE_FALL: u32 = 1000;

    /// A check of `kind` against `real` with every other setting at its
    /// default (interval: keepalived's `delay_loop` default).
    pub fn new(kind: CheckKind, real: SocketAddr) -> CheckConfig {
        CheckConfig {
            kind,
            interval: ServiceHealth::DEFAULT_DELAY_LOOP,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            retry: Self::DEFAULT_RETRY,
            delay_before_retry: Self::DEFAULT_DELAY_BEFORE_RETRY,
            rise: 1,
            fall: 1,
            alpha: false,
            bindto: None,
            bind_port: None,
            connect_ip: real.ip().to_string(),
            connect_port: real.port(),
            via: Via::Direct,
        }
    }
}

/// What a check does, with the settings of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect (keepalived `TCP_CHECK`).
    Tcp,
    /// `HTTP_GET`.
    Http(HttpCheck),
    /// `SSL_GET`: HTTP over TLS.
    Https(HttpCheck),
    /// `MISC_CHECK`: a program's exit code.
    Script(ScriptCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
}

impl CheckKind {
    /// The name in the file (`kind = "..."`).
    pub fn config_name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(_) => "http",
            CheckKind::Https(_) => "https",
            CheckKind::Script(_) => "script",
            CheckKind::Udp(_) => "udp",
            CheckKind::Dns(_) => "dns",
        }
    }
}

/// An HTTP(S) check's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// At least one; every URL must pass.
    pub urls: Vec<UrlCheck>,
    /// Host header (and SNI); default the connect address.
    pub virtualhost: Option<String>,
    /// https: send SNI (virtualhost, else connect_ip when it is a name).
    pub sni: bool,
    /// https: verify the chain and the host name.
    pub verify_certificate: bool,
    /// https: trust anchors (PEM) instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
}

/// One URL of an HTTP(S) check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// Starts with `/`.
    pub path: String,
    /// Accepted status codes as inclusive ranges; default 200-299.
    pub status: Vec<(u16, u16)>,
    /// MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// A regular expression the body must match (checked when read).
    pub regex: Option<String>,
}

/// A script check's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCheck {
    pub command: CommandLine,
    /// Killed (SIGKILL to its process group) when it runs longer.
    pub timeout: Duration,
    /// misc_dynamic: exit 0 = up, 1 = down, 2..=255 = up with weight code − 2.
    pub dynamic: bool,
    /// Run as this user (and its primary group).
    pub user: Option<String>,
}

/// A UDP check's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpCheck {
    pub payload: Vec<u8>,
    /// Pass only if a reply arrives (else: pass unless ICMP unreachable).
    pub require_reply: bool,
}

/// A DNS check's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub query_name: String,
    /// The record type's number (A = 1, AAAA = 28, ...).
    pub query_type: u16,
    /// The expected response code (NOERROR = 0, NXDOMAIN = 3, ...).
    pub rcode: u16,
}

/// Record types `query_type` accepts, by name.
pub const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("CAA", 257),
    ("ANY", 255),
];

/// Response codes `rcode` accepts, by name (RFC 1035, 2136).
pub const DNS_RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];
