//! The director daemon: start-up, the control thread, reload and shutdown.
//!
//! Start-up checks everything before anything runs, so a bad
//! configuration never leaves a half-started director: the file, every
//! interface (it must exist, and frames of its MTU must fit a UMEM frame
//! and a hand-over buffer), every core (it must exist), the services
//! (each with at least one real server). Then, per interface, the XDP
//! steering program is attached; per RX queue number a worker thread is
//! started, pinned to its core, and opens its AF_XDP sockets there (queue
//! q of every interface) (so its UMEM and
//! connection table are first touched on that core's memory node); the
//! control thread registers each socket in the program's map. Any failure
//! stops what was started, detaches the programs, and reports.
//!
//! The control thread (the caller's) then owns the [`ServiceTable`]: it
//! reloads the file on SIGHUP (what changed in the file since it was last
//! loaded is applied live, live edits it does not touch are kept, see
//! [`ServiceTable::apply_file_change`]), keeps the real servers' next
//! hops resolved from the kernel's routing and neighbour tables, updates
//! the XDP program's maps when services change, and publishes each change
//! as a new [`Snapshot`](crate::service::Snapshot) that workers pick up
//! between batches. SIGTERM or SIGINT stops the workers, detaches the XDP
//! programs and removes the control socket.
//!
//! Health checks: once the workers run, a [`health::Monitor`] checks every
//! real server with checks ([`health::plan`]); on every turn of its loop
//! (at most 20 ms apart) the control thread takes the verdicts without
//! waiting, applies each one that changes something to the table
//! ([`ServiceTable::set_health`]: out of scheduling, inhibited at weight 0,
//! a dynamic weight) and publishes it like any edit, logs one line per
//! change (`health: TCP 198.18.1.1:80 real 198.18.2.11:80 up -> down:
//! <check>: <reason>`), starts the real server's `notify_up`/`notify_down`,
//! then moves the services' quorums ([`ServiceTable::update_quorum`]: the
//! sorry server in or out, a line, `quorum_up`/`quorum_down`). Commands
//! run in the background and are reaped without blocking ([`commands`]).
//! A reload hands the checker the new targets (an unchanged check keeps
//! its state, and so does its server's state here) and drops the state of
//! servers no longer checked.
//!
//! Next hops: DR and TUN frames go to the MAC the kernel's neighbour table
//! has for the real server (or for the gateway its route names), resolved
//! again once a second for every real server (128 per turn of the control
//! loop, so a large table spreads its refresh over several turns), and at
//! once for a real server an
//! edit adds (an edit resolves only addresses never asked about, so its
//! cost does not grow with the table); a missing entry triggers
//! resolution, and until it is there the real server's packets are counted
//! as `no_neighbour`, not sent to a stale MAC. NAT replies go back to the
//! MAC the client's packets came from (the router in front of us), which
//! the connection remembers: the path back is the path in, with no lookup.
//!
//! A dead worker is a dead daemon. Its queues would fall back to the
//! kernel and the frames other workers hand over to it would pile up, in a
//! director that still looks alive; so the control thread checks its
//! workers every round (20 ms at most) and, when one has ended, stops the
//! others, detaches the XDP programs (their BPF links close; they would
//! also close with the process), removes the control socket and returns
//! [`DaemonError::WorkerPanicked`]: `xdpvs` exits non-zero with the line
//! `xdpvs: worker N panicked: CAUSE`, for a supervisor (systemd's
//! `Restart=`) to restart it. The same holds during start-up.
//!
//! Fault injection (for the tests of the above, harmless otherwise): with
//! `XDPVS_FAULT_WORKER_PANIC=W[:N]` in its environment, worker W panics
//! once it has received N frames (default 1). A value that does not parse
//! is refused at start.
//!
//! Supervision and privileges: under a service manager the daemon speaks
//! its readiness protocol ([`notify`]: `READY=1` when it logs `running:`,
//! `RELOADING=1`/`READY=1` around a SIGHUP reload, `WATCHDOG=1` pings
//! while every worker runs, `STOPPING=1`), and once started it keeps only
//! the capabilities it still needs, in the control thread only, optionally
//! as `daemon.user` ([`privilege`]). `dist/xdpvs.service` is the unit.
//!
//! Route sources: the same route lookup names the source address the
//! kernel would send from toward each real server (RTA_PREFSRC), which is
//! the outer source of its TUN packets unless `dataplane.tunnel_source`
//! overrides it; a TUN server whose route names none is logged once and
//! its packets are counted as `no_source`, and a change of source is
//! logged (`real server R: tunnel source S`). Both follow route and address
//! changes within the once-a-second refresh.
//!
//! Metrics: with `[metrics] listen`, `/metrics` is served over HTTP by a
//! thread of its own ([`crate::ctrl::http`]); the control thread renders
//! the page ([`crate::ctrl::metrics`]) when that thread asks, on its next
//! turn (20 ms at most), from what it holds: the service table, the
//! workers' published statistics, the XDP programs' counts, and its own
//! (reloads, control requests). The listening address is bound before
//! anything is attached, like the control socket.
//!
//! The director's own addresses (every interface's IPv4 addresses, read
//! at start and once a second) are given to the XDP programs, so that the
//! replies NAT real servers send to connections the director opened itself
//! (health checks, an admin's curl) stay with the kernel.

pub mod cli;
pub mod commands;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{CompleteChecksums, Config, ConfigError, Dataplane};
use crate::ctrl::control::{ConnSource, Control};
use crate::ctrl::http::MetricsServer;
use crate::ctrl::metrics::{self, DaemonInfo, InterfaceInfo, ProgramCounts, Scrape, SocketInfo};
use crate::ctrl::proto::{CONNS_PER_LINE, ConnView, Response};
use crate::ctrl::server::{Answer, ConnStream, ControlServer, StreamPoll};
use crate::health::{self, Monitor};
use crate::log::{self, Level};
use crate::netlink::{Interface, Netlink, NetlinkError, Resolution, Resolver};
use crate::pipeline::Pipeline;
use crate::service::{Health, HealthKey, Port, ServiceError, ServiceTable, SteerLimits};
use crate::stats::{Counter, Kind, WorkerStats};
use crate::worker::{Clock, ConnEntry, ConnListing, Shared, Worker, WorkerOptions};
use crate::xsk::steer::Steering;
use crate::xsk::{Xsk, XskConfig, XskError};

pub mod notify;
pub mod privilege;

use notify::{Notifier, NotifyError};
use privilege::{Identity, PrivilegeError};

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the health checker: {0}")]
    Health(std::io::Error),
    #[error("{file}: {error}")]
    Services { file: String, error: ServiceError },
    #[error("{file}: service {proto} {vip} has no real servers (services[{index}].reals)")]
    NoReals {
        file: String,
        index: usize,
        proto: crate::config::Protocol,
        vip: std::net::SocketAddr,
    },
    #[error("{file}: dataplane.interfaces: no interface named {name:?} in this network namespace")]
    NoInterface { file: String, name: String },
    #[error(
        "{file}: dataplane.interfaces: {name} has MTU {mtu}, whose frames do not fit: expected {expected}; lower the interface's MTU or change dataplane.frame_size"
    )]
    InterfaceMtu {
        file: String,
        name: String,
        mtu: u32,
        expected: String,
    },
    #[error("{file}: dataplane.cores: core {core} does not exist (this machine has cores {have})")]
    NoCore {
        file: String,
        core: usize,
        have: String,
    },
    #[error("netlink: {0}")]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("control socket {path}: {error}")]
    Socket {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: metrics.listen: cannot listen on {addr}: {error}")]
    Metrics {
        file: String,
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("a worker stopped or hung before its sockets were ready ({0} workers started)")]
    WorkerLost(usize),
    #[error("worker {0}: cannot start its thread: {1}")]
    Spawn(usize, std::io::Error),
    #[error("worker {worker} panicked: {cause}")]
    WorkerPanicked { worker: usize, cause: String },
    #[error("worker {0} stopped unexpectedly")]
    WorkerStopped(usize),
    #[error("{FAULT_PANIC_ENV}: expected WORKER or WORKER:FRAMES (fault injection), got {0:?}")]
    BadFault(String),
    #[error("XDPVS_LOG: expected one of error, warning, notice, info, debug, got {0:?}")]
    BadLogLevel(String),
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("worker {0}: cannot drop its capabilities: {1}")]
    WorkerPrivilege(usize, PrivilegeError),
}

/// The fault-injection variable of the module docs.
pub const FAULT_PANIC_ENV: &str = "XDPVS_FAULT_WORKER_PANIC";

/// `W[:N]` of [`FAULT_PANIC_ENV`]: worker W panics after N frames.
fn parse_fault(value: &str) -> Option<(usize, u64)> {
    let (w, n) = match value.split_once(':') {
        Some((w, n)) => (w, n.parse().ok().filter(|&n| n > 0)?),
        None => (value, 1),
    };
    Some((w.parse().ok()?, n))
}

/// The level in force: `XDPVS_LOG` if set, else `[log] level`.
fn log_level(cfg: &Config) -> Result<Level, DaemonError> {
    Ok(log::env_level()
        .map_err(DaemonError::BadLogLevel)?
        .unwrap_or(cfg.log.level))
}

/// The panic a finished thread's `join` gave, as text.
fn panic_cause(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Where each worker runs: queue `queue` of every interface that has it.
#[derive(Debug, Clone)]
struct WorkerPlan {
    queue: u32,
    /// (port, interface name).
    socks: Vec<(u8, String)>,
    core: Option<usize>,
}

/// What `xdpvs --check` checks: the file, and the rules the file format
/// cannot express (schedulers this build has, a tunnel source for TUN, a
/// real server for every service). Returns the number of services and
/// real servers.
pub fn check(path: &Path) -> Result<(usize, usize), DaemonError> {
    let file = path.display().to_string();
    let cfg = Config::from_file(path)?;
    check_services(&file, &cfg)?;
    let ports = vec![
        Port {
            mac: [0; 6],
            mtu: cfg.dataplane.mtu,
            complete_checksums: false,
        };
        cfg.dataplane.interfaces.len()
    ];
    ServiceTable::from_config(&cfg, ports, 1)
        .map_err(|error| DaemonError::Services { file, error })?;
    let reals = cfg.services.iter().map(|s| s.reals.len()).sum();
    Ok((cfg.services.len(), reals))
}

/// A service in the file must have a real server: one without would
/// accept clients and drop them all (add empty services with xdpvsadm).
fn check_services(file: &str, cfg: &Config) -> Result<(), DaemonError> {
    match cfg
        .services
        .iter()
        .enumerate()
        .find(|(_, s)| s.reals.is_empty())
    {
        Some((index, s)) => Err(DaemonError::NoReals {
            file: file.to_owned(),
            index,
            proto: s.proto,
            vip: s.vip,
        }),
        None => Ok(()),
    }
}

/// The checks of the module docs that need the machine, not just the file.
fn check_machine(
    file: &str,
    cfg: &Config,
    nl: &mut Netlink,
) -> Result<Vec<Interface>, DaemonError> {
    check_services(file, cfg)?;
    let mut ifaces = Vec::new();
    for name in &cfg.dataplane.interfaces {
        match nl.interface(name) {
            // Frames as large as the interface's MTU may arrive whatever
            // dataplane.mtu says: they must fit a frame.
            Ok(i) => match cfg.dataplane.tuning.mtu_problem(i.mtu) {
                Some(expected) => {
                    return Err(DaemonError::InterfaceMtu {
                        file: file.to_owned(),
                        name: name.clone(),
                        mtu: i.mtu,
                        expected,
                    });
                }
                None => ifaces.push(i),
            },
            Err(NetlinkError::NoSuchInterface(_)) => {
                return Err(DaemonError::NoInterface {
                    file: file.to_owned(),
                    name: name.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let have: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    for &core in &cfg.dataplane.cores {
        if !have.contains(&core) {
            return Err(DaemonError::NoCore {
                file: file.to_owned(),
                core,
                have: format!("{have:?}"),
            });
        }
    }
    Ok(ifaces)
}

/// One worker per RX queue number: worker q serves queue q of every
/// interface that has one, so a two-armed director's frames leave by the
/// other interface from the same worker (one copy, no hand-over). Cores
/// are assigned in order and reused round-robin when there are fewer
/// cores than workers.
fn plan(dp: &Dataplane, ifaces: &[Interface]) -> Vec<WorkerPlan> {
    let queues = ifaces.iter().map(|i| i.rx_queues.max(1)).max().unwrap_or(1);
    (0..queues)
        .map(|queue| WorkerPlan {
            queue,
            socks: ifaces
                .iter()
                .enumerate()
                .filter(|(_, i)| i.rx_queues.max(1) > queue)
                .map(|(port, i)| (port as u8, i.name.clone()))
                .collect(),
            core: (!dp.cores.is_empty()).then(|| dp.cores[queue as usize % dp.cores.len()]),
        })
        .collect()
}

/// Whether port `name` finishes partial checksums under `mode`, decided by
/// its driver at start-up; with the line [`Director::start`] logs for it.
fn checksum_decision(name: &str, mode: CompleteChecksums) -> (bool, String) {
    let driver = crate::xsk::driver::driver(name);
    let on = mode.applies_to(driver.as_ref().ok().map(String::as_str));
    let what = if on {
        "completing partial checksums"
    } else {
        "forwarding checksums as received"
    };
    let why = match mode {
        CompleteChecksums::Auto => "",
        CompleteChecksums::On => " (complete_checksums = \"on\")",
        CompleteChecksums::Off => " (complete_checksums = \"off\")",
    };
    let line = match &driver {
        Ok(d) => format!("{name}: driver {d}, {what}{why}"),
        Err(e) => format!("{name}: driver unknown ({e}), {what}{why}"),
    };
    (on, line)
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Real server `real` of service `proto` `vip` in `cfg`.
fn real_config(
    cfg: &Config,
    proto: crate::config::Protocol,
    vip: std::net::SocketAddr,
    real: std::net::SocketAddr,
) -> Option<&crate::config::RealConfig> {
    cfg.services
        .iter()
        .find(|s| s.proto == proto && s.vip == vip)?
        .reals
        .iter()
        .find(|r| r.addr == real)
}

/// A health state as the log line says it.
fn state(h: Health) -> String {
    match h {
        Health {
            up: true,
            weight: Some(w),
            ..
        } => format!("up (weight {w})"),
        Health { up: true, .. } => "up".to_owned(),
        Health { inhibit: true, .. } => "down (inhibited, weight 0)".to_owned(),
        Health { .. } => "down".to_owned(),
    }
}

/// The running director, owned by the control thread.
struct Director {
    path: PathBuf,
    cfg: Config,
    /// The service table and what `xdpvsadm` asks of it.
    control: Control,
    server: Option<ControlServer>,
    plane: Plane,
    /// The health checker, once some real server has checks.
    health: Option<Monitor>,
    /// notify_up/notify_down and quorum_up/quorum_down still running.
    commands: commands::Commands,
    /// (worker id, its thread).
    threads: Vec<(usize, JoinHandle<()>)>,
    /// Fault injection: (worker, frames), from [`FAULT_PANIC_ENV`].
    fault: Option<(usize, u64)>,
    /// The service manager's readiness protocol.
    notify: Notifier,
    /// `daemon.user`/`daemon.group`, resolved.
    identity: Option<Identity>,
    metrics: MetricsState,
}

/// What `/metrics` shows beside the table and the workers' blocks.
struct MetricsState {
    server: Option<MetricsServer>,
    /// Per interface, in port order: attached in native mode.
    native: Vec<bool>,
    sockets: Vec<SocketInfo>,
    started: (std::time::SystemTime, Instant),
    reloads: u64,
    reload_failures: u64,
}

/// What the control thread keeps in step with the service table: the
/// workers' snapshot, the XDP maps, the next hops.
struct Plane {
    shared: Arc<Shared>,
    steering: Vec<Steering>,
    ifaces: Vec<Interface>,
    /// The kernel's routes and neighbours ([`Netlink`]; a failing one in
    /// the tests).
    nl: Box<dyn Resolver>,
    /// Next hops already reported as unresolved, so each is logged once.
    unresolved: Vec<IpAddr>,
    /// Real servers whose next hop the kernel is still resolving.
    pending: usize,
    /// The sorted real server addresses of the periodic refresh's cycle,
    /// where it is in them, and when its next cycle may start
    /// ([`Plane::refresh_step`]).
    cycle: Vec<IpAddr>,
    cycle_pos: usize,
    next_cycle: Instant,
    /// Real server addresses whose next hop was asked for at least once;
    /// an edit resolves only addresses not in it.
    asked: std::collections::HashSet<IpAddr>,
    /// TUN real servers already reported as having no route source.
    no_source: Vec<Ipv4Addr>,
    /// The director's own addresses (both families) as last given to the
    /// XDP programs (`None`: not yet).
    local_addrs: Option<Vec<IpAddr>>,
    /// Per interface: the start-up line saying whether it finishes partial
    /// checksums (`dataplane.complete_checksums`).
    checksum_lines: Vec<String>,
    /// The workers' clock, which also dates superseded steering rules.
    clock: Arc<Clock>,
}

/// Real server addresses the periodic next-hop refresh resolves per turn
/// of the control loop (a route lookup each, a few µs): every one is
/// refreshed once a second up to several thousand real servers, and more
/// slowly beyond, without holding the control thread for long.
const REFRESH_BATCH: usize = 128;

/// How long start-up waits for the kernel to resolve real servers' next
/// hops it did not know (ARP takes one round trip; a silent host three
/// 1-second probes, which is not worth waiting for).
const INITIAL_RESOLVE: Duration = Duration::from_secs(2);

/// A started worker reports its socket (or why it has none) on this.
type Ready = Result<(usize, u8, i32, Option<String>), XskError>;

/// Runs the daemon with the configuration at `path` until SIGTERM/SIGINT.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let file = path.display().to_string();
    let cfg = Config::from_file(path)?;
    log::set_level(log_level(&cfg)?);
    let fault = match std::env::var(FAULT_PANIC_ENV) {
        Ok(v) => Some(parse_fault(&v).ok_or(DaemonError::BadFault(v))?),
        Err(_) => None,
    };
    let notify = Notifier::from_env()?;
    let identity = Identity::resolve(
        &file,
        cfg.daemon.user.as_deref(),
        cfg.daemon.group.as_deref(),
    )?;
    let mut nl = Netlink::new()?;
    let ifaces = check_machine(&file, &cfg, &mut nl)?;
    let plans = plan(&cfg.dataplane, &ifaces);
    let checksums: Vec<(bool, String)> = ifaces
        .iter()
        .map(|i| checksum_decision(&i.name, cfg.dataplane.complete_checksums))
        .collect();
    let ports: Vec<Port> = ifaces
        .iter()
        .zip(&checksums)
        .map(|(i, (complete, _))| Port {
            mac: i.mac,
            mtu: cfg
                .dataplane
                .mtu
                .min(u16::try_from(i.mtu).unwrap_or(u16::MAX)),
            complete_checksums: *complete,
        })
        .collect();
    let table = ServiceTable::from_config(&cfg, ports, plans.len()).map_err(|error| {
        DaemonError::Services {
            file: file.clone(),
            error,
        }
    })?;

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(DaemonError::Signals)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(DaemonError::Signals)?;

    // Bound before anything is attached: a second daemon on the same
    // socket is refused here, before it could disturb the first one's
    // interfaces.
    let server = ControlServer::bind(&cfg.control.socket).map_err(|error| DaemonError::Socket {
        path: cfg.control.socket.clone(),
        error,
    })?;
    log::info(format_args!(
        "control socket {}",
        cfg.control.socket.display()
    ));
    let metrics_server = match cfg.metrics.listen {
        Some(addr) => {
            // Its thread holds no capability (the workers' rule).
            let init =
                || privilege::drop_worker().map_err(|e| std::io::Error::other(e.to_string()));
            let m = MetricsServer::bind(addr, init).map_err(|error| DaemonError::Metrics {
                file: file.clone(),
                addr,
                error,
            })?;
            log::info(format_args!("metrics on http://{}/metrics", m.local_addr()));
            Some(m)
        }
        None => None,
    };
    let ports_of: Vec<Vec<u8>> = plans
        .iter()
        .map(|p| p.socks.iter().map(|(port, _)| *port).collect())
        .collect();
    let shared = Arc::new(Shared::new(Arc::new(table.snapshot()), &ports_of));
    let control = Control::new(table, cfg.connections.max_entries, Instant::now());
    let mut d = Director {
        path: path.to_owned(),
        cfg,
        control,
        server: Some(server),
        health: None,
        commands: commands::Commands::default(),
        plane: Plane {
            shared,
            steering: Vec::new(),
            ifaces,
            nl: Box::new(nl),
            unresolved: Vec::new(),
            pending: 0,
            asked: std::collections::HashSet::new(),
            cycle: Vec::new(),
            cycle_pos: 0,
            next_cycle: Instant::now(),
            no_source: Vec::new(),
            local_addrs: None,
            checksum_lines: checksums.into_iter().map(|(_, line)| line).collect(),
            clock: Arc::new(Clock::default()),
        },
        threads: Vec::new(),
        fault,
        notify,
        identity,
        metrics: MetricsState {
            server: metrics_server,
            native: Vec::new(),
            sockets: Vec::new(),
            started: (std::time::SystemTime::now(), Instant::now()),
            reloads: 0,
            reload_failures: 0,
        },
    };
    // Checks start once the workers run, so that their first verdicts
    // find a data path to apply to.
    let started = d.start(&plans).and_then(|()| d.start_health());
    if let Err(e) = started {
        d.shutdown(false);
        return Err(e);
    }
    let running = format!(
        "running: {} workers, {} services; SIGHUP reloads {}",
        plans.len(),
        d.cfg.services.len(),
        d.path.display()
    );
    log::notice(&running);
    d.notify.ready(&running);
    let outcome = d.control_loop(&stop, &hup);
    let why = match &outcome {
        Ok(()) => "stopping".to_owned(),
        Err(e) => e.to_string(),
    };
    d.notify.stopping(&why);
    d.shutdown(true);
    outcome
}

impl Director {
    /// Attaches the programs, starts the workers, publishes the first
    /// snapshot with resolved next hops.
    fn start(&mut self, plans: &[WorkerPlan]) -> Result<(), DaemonError> {
        // Ask for the next hops first: the kernel resolves them while the
        // rest starts.
        self.plane.refresh_next_hops(&mut self.control);
        for (k, iface) in self.plane.ifaces.iter().enumerate() {
            let (s, info) = Steering::attach(&iface.name, self.cfg.dataplane.xdp_mode)?;
            log::info(format_args!(
                "{}: ifindex {}, MAC {}, MTU {}, {} RX queues; XDP {} mode{}",
                iface.name,
                iface.index,
                mac_string(iface.mac),
                iface.mtu,
                iface.rx_queues,
                if info.native { "native" } else { "generic" },
                if info.replaced_stale {
                    " (replaced a stale xdpvs program)"
                } else {
                    ""
                }
            ));
            if let Some(line) = self.plane.checksum_lines.get(k) {
                log::info(line);
            }
            self.metrics.native.push(info.native);
            self.plane.steering.push(s);
        }
        self.plane.refresh_local_addrs();
        // The table may hold no more than the maps do: refused here, and
        // from now on every edit that would not fit is refused whole.
        if let Some(limits) = self.plane.steer_limits()? {
            self.control.set_steer_limits(limits);
            self.control
                .fits(self.control.table())
                .map_err(|error| DaemonError::Services {
                    file: self.path.display().to_string(),
                    error,
                })?;
        }
        self.plane.update_steering(&mut self.control)?;

        let (tx, rx) = mpsc::channel::<Ready>();
        let (dropped_tx, dropped_rx) = mpsc::channel::<(usize, Result<(), PrivilegeError>)>();
        let mut gos = Vec::new();
        let clock = Arc::clone(&self.plane.clock);
        let per_worker = (self.cfg.connections.max_entries / plans.len() as u32).max(1);
        let opts = WorkerOptions {
            batch: self.cfg.dataplane.batch_size as usize,
            idle: self.cfg.dataplane.tuning.idle,
        };
        for (id, p) in plans.iter().enumerate() {
            let xcfgs: Vec<(u8, XskConfig)> = p
                .socks
                .iter()
                .map(|(port, ifname)| {
                    (
                        *port,
                        XskConfig::from_dataplane(&self.cfg.dataplane, ifname, p.queue),
                    )
                })
                .collect();
            let shared = Arc::clone(&self.plane.shared);
            let tx = tx.clone();
            let clock = Arc::clone(&clock);
            let core = p.core;
            let fault = self.fault.and_then(|(w, n)| (w == id).then_some(n));
            let (go_tx, go) = mpsc::channel::<()>();
            gos.push(go_tx);
            let dropped = dropped_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("xdpvs-w{id}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    let mut socks = Vec::new();
                    for (port, xcfg) in &xcfgs {
                        let xsk = match Xsk::open(xcfg, *port) {
                            Ok(x) => x,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        };
                        let mode = (!xsk.zero_copy()).then(|| match xsk.copy_reason() {
                            Some(e) => format!("copy mode (zero-copy refused: {e})"),
                            None => "copy mode".to_owned(),
                        });
                        let _ = tx.send(Ok((id, *port, xsk.as_raw_fd(), mode)));
                        socks.push((*port, xsk));
                    }
                    // Sockets open: wait for the control thread's drop
                    // of privileges, then drop this thread's own (they
                    // are per thread). No go: start-up failed.
                    if go.recv().is_err() {
                        return;
                    }
                    let done = privilege::drop_worker();
                    let failed = done.is_err();
                    let _ = dropped.send((id, done));
                    if failed {
                        return;
                    }
                    let snap = shared.snapshot.load_full();
                    let pipeline = Pipeline::new(per_worker, snap, clock.now());
                    let mut w = Worker::new(id, socks, pipeline, shared, opts);
                    if let Some(n) = fault {
                        w.panic_after(n);
                    }
                    w.run(&clock);
                })
                .map_err(|e| DaemonError::Spawn(id, e))?;
            self.threads.push((id, spawned));
        }
        drop(tx);
        drop(dropped_tx);
        for _ in plans.iter().flat_map(|p| &p.socks) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let (id, port, fd, copy) = loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(ready) => break ready?,
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                        if let Some(dead) = self.dead_worker() {
                            // A worker that could not open its socket said
                            // why before it ended.
                            return Err(match rx.try_recv() {
                                Ok(Err(e)) => e.into(),
                                _ => dead,
                            });
                        }
                    }
                    Err(_) => return Err(DaemonError::WorkerLost(self.threads.len())),
                }
            };
            let p = &plans[id];
            self.plane.steering[usize::from(port)].register_socket(p.queue, fd)?;
            self.metrics.sockets.push(SocketInfo {
                worker: id,
                interface: self.plane.ifaces[usize::from(port)].name.clone(),
                queue: p.queue,
                zero_copy: copy.is_none(),
            });
            log::info(format_args!(
                "worker {id}: {} queue {} on {}, AF_XDP {}, {} connections",
                self.plane.ifaces[usize::from(port)].name,
                p.queue,
                p.core
                    .map_or("any core".to_owned(), |c| format!("core {c}")),
                copy.as_deref().unwrap_or("zero-copy mode"),
                per_worker
            ));
        }
        self.plane.publish(&self.control);
        self.drop_privileges(gos, &dropped_rx)?;
        // Give the kernel a moment to resolve what it did not know yet, so
        // that "running" means the first packets find their next hops.
        let deadline = Instant::now() + INITIAL_RESOLVE;
        while self.plane.pending > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if self.plane.refresh_next_hops(&mut self.control) {
                self.plane.publish(&self.control);
            }
        }
        Ok(())
    }

    /// Everything is attached and open: the control thread keeps what it
    /// still needs (switching to `daemon.user` first), then each worker
    /// drops all of its own; returns once all have (see [`privilege`]).
    fn drop_privileges(
        &mut self,
        gos: Vec<mpsc::Sender<()>>,
        dropped: &mpsc::Receiver<(usize, Result<(), PrivilegeError>)>,
    ) -> Result<(), DaemonError> {
        if let Some(id) = &self.identity {
            // The socket stays 0600, now the daemon's user's.
            std::os::unix::fs::chown(
                &self.cfg.control.socket,
                Some(id.uid.as_raw()),
                Some(id.gid.as_raw()),
            )
            .map_err(|error| DaemonError::Socket {
                path: self.cfg.control.socket.clone(),
                error,
            })?;
        }
        let steering = &self.plane.steering;
        // Forwarding-path checks need a packet socket (health::via), now
        // and for the checker thread started after this.
        let raw = self.cfg.services.iter().any(|s| {
            s.reals.iter().any(|r| {
                r.health
                    .checks
                    .iter()
                    .any(|c| c.via == crate::config::Via::Forwarding)
            })
        });
        let done = privilege::drop_control(self.identity.as_ref(), raw, || {
            steering
                .iter()
                .try_for_each(|s| s.stats().map(drop).map_err(|e| e.to_string()))
        })?;
        if let Some(id) = &self.identity
            && let Err(error) = std::fs::File::open(&self.path)
        {
            return Err(PrivilegeError::Unreadable {
                file: self.path.display().to_string(),
                user: id.user.clone(),
                error,
            }
            .into());
        }
        let workers = gos.len();
        for go in gos {
            // A worker that already ended is found below.
            let _ = go.send(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..workers {
            loop {
                match dropped.recv_timeout(Duration::from_millis(50)) {
                    Ok((_, Ok(()))) => break,
                    Ok((w, Err(e))) => return Err(DaemonError::WorkerPrivilege(w, e)),
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                        if let Some(dead) = self.dead_worker() {
                            return Err(dead);
                        }
                    }
                    Err(_) => return Err(DaemonError::WorkerLost(self.threads.len())),
                }
            }
        }
        log::info(done);
        Ok(())
    }

    /// Runs until a signal stops the daemon (`Ok`) or a worker has ended
    /// (the error says which and why).
    fn control_loop(&mut self, stop: &AtomicBool, hup: &AtomicBool) -> Result<(), DaemonError> {
        let mut last_resolve = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(dead) = self.dead_worker() {
                return Err(dead);
            }
            // Every worker runs: the manager may hear so.
            self.notify.watchdog(Instant::now());
            if hup.swap(false, Ordering::Relaxed) {
                self.notify.reloading();
                let status = match self.reload() {
                    Ok(line) => {
                        self.metrics.reloads += 1;
                        line
                    }
                    Err(line) => {
                        self.metrics.reload_failures += 1;
                        line
                    }
                };
                self.notify.ready(&status);
            }
            self.serve(Duration::from_millis(20));
            self.apply_health();
            log::flush();
            if let Some(m) = self.metrics.server.take() {
                m.answer(|| self.scrape());
                self.metrics.server = Some(m);
            }
            self.control.tick(Instant::now());
            self.plane.apply_changes(&mut self.control);
            // Next hops a batch per turn, so that a table of thousands of
            // real servers never holds the control thread for long.
            let mut publish = self.plane.refresh_step(&mut self.control, Instant::now());
            if last_resolve.elapsed() >= Duration::from_secs(1) {
                last_resolve = Instant::now();
                self.plane.refresh_local_addrs();
                publish |= self.plane.history_expired();
            }
            if publish {
                self.plane.publish(&self.control);
            }
        }
        log::notice("stopping");
        Ok(())
    }

    /// A worker whose thread has ended, joined, as the error it means:
    /// workers run until [`Shared::stop`], so before that an ended thread
    /// panicked (or returned early, which is a bug all the same).
    fn dead_worker(&mut self) -> Option<DaemonError> {
        let i = self.threads.iter().position(|(_, t)| t.is_finished())?;
        let (worker, t) = self.threads.remove(i);
        Some(match t.join() {
            Err(payload) => DaemonError::WorkerPanicked {
                worker,
                cause: panic_cause(&*payload),
            },
            Ok(()) => DaemonError::WorkerStopped(worker),
        })
    }

    /// Waits up to `wait` for `xdpvsadm` requests and answers them.
    fn serve(&mut self, wait: Duration) {
        let Some(server) = self.server.as_mut() else {
            std::thread::sleep(wait);
            return;
        };
        // A listing in progress is paced by the workers' slices
        // (`WorkerListing`), not by the socket: no wait for it.
        let wait = if server.streaming() {
            Duration::ZERO
        } else {
            wait
        };
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: wait.subsec_nanos().into(),
        };
        let mut fds = [rustix::event::PollFd::new(
            &*server,
            rustix::event::PollFlags::IN,
        )];
        // EINTR (a signal) just ends the wait early.
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        let (control, plane) = (&mut self.control, &mut self.plane);
        server.poll(&mut |req| {
            let name = crate::ctrl::control::request_name(&req);
            let answer = control.answer(req, &mut WorkerConns(&plane.shared));
            match &answer {
                Answer::Now(Response::Ok(_)) => log::debug(format_args!("control: {name}: ok")),
                Answer::Now(Response::Err { message, .. }) => {
                    log::debug(format_args!("control: {name}: refused: {message}"))
                }
                Answer::Stream(_) => log::debug(format_args!("control: {name}: listing")),
            }
            // In effect before xdpvsadm hears so, as with ipvsadm.
            plane.apply_changes(control);
            answer
        });
    }

    /// Everything `/metrics` shows, now.
    fn scrape(&mut self) -> String {
        let interfaces = self
            .plane
            .steering
            .iter()
            .zip(&self.metrics.native)
            .map(|(s, &native)| InterfaceInfo {
                name: s.ifname().to_owned(),
                native,
                program: s.stats().ok().map(|st| ProgramCounts {
                    redirected: st.redirected,
                    passed: st.passed,
                    redirect_failed: st.redirect_failed,
                }),
            })
            .collect();
        let shared = &self.plane.shared;
        let (requests, request_errors) = self.control.requests();
        let (wall, mono) = self.metrics.started;
        metrics::render(&Scrape {
            services: self.control.metrics_views(),
            retired: self.control.retired(),
            workers: (0..shared.workers()).map(|w| shared.stats(w)).collect(),
            interfaces,
            sockets: self.metrics.sockets.clone(),
            daemon: DaemonInfo {
                start_time: wall
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                uptime: mono.elapsed().as_secs_f64(),
                reloads: self.metrics.reloads,
                reload_failures: self.metrics.reload_failures,
                requests,
                request_errors,
            },
        })
    }

    /// SIGHUP: what changed in the file since it was last loaded, applied
    /// live; live edits (`xdpvsadm`, `--set`) the change does not touch
    /// are kept, and each one it overrides is logged
    /// ([`ServiceTable::apply_file_change`]). A bad file changes nothing
    /// and says why. Returns the line it logged last (the service
    /// manager's status): `Ok` when the file was applied, `Err` when it was
    /// refused.
    fn reload(&mut self) -> Result<String, String> {
        let file = self.path.display().to_string();
        let refused = |why: String| {
            let line = format!("reload refused, nothing changed: {why}");
            log::warning(&line);
            Err(line)
        };
        let cfg = match Config::from_file(&self.path) {
            Ok(c) => c,
            Err(e) => return refused(e.to_string()),
        };
        if let Err(e) = check_services(&file, &cfg) {
            return refused(e.to_string());
        }
        // The file's change since it was last loaded, not the whole file:
        // live edits it does not touch stay (`crate::service::reload`).
        let overrides = match self.control.apply_file_change(&self.cfg, &cfg) {
            Ok(o) => o,
            Err(e) => return refused(format!("{file}: {e}")),
        };
        for line in &overrides {
            log::notice(format_args!("reload: {line}"));
        }
        if cfg.dataplane != self.cfg.dataplane
            || cfg.control != self.cfg.control
            || cfg.daemon != self.cfg.daemon
        {
            log::warning(
                "reload: [dataplane], [control] and [daemon] changes take effect at the next start",
            );
        }
        let n = cfg.services.len();
        self.cfg.services = cfg.services;
        self.cfg.connections = cfg.connections;
        self.reload_health();
        // Published before it is reported: from the log line on, every
        // new connection is scheduled by the new table.
        self.plane.apply_changes(&mut self.control);
        let line = format!("reloaded {file}: {n} services");
        log::notice(&line);
        Ok(line)
    }

    /// Starts the health checker if some real server has checks.
    fn start_health(&mut self) -> Result<(), DaemonError> {
        let targets = health::plan(&self.cfg);
        if targets.is_empty() {
            return Ok(());
        }
        let n = targets.len();
        self.health = Some(Monitor::start(targets).map_err(DaemonError::Health)?);
        log::info(format_args!("health: checking {n} real servers"));
        Ok(())
    }

    /// After a reload: the checker gets the new targets (an unchanged
    /// check keeps its state, and so does its server here); the health
    /// state of servers no longer checked is dropped, the others take the
    /// file's `inhibit_on_failure`.
    fn reload_health(&mut self) {
        let targets = health::plan(&self.cfg);
        let cfg = &self.cfg;
        self.control
            .table_mut()
            .retain_health(|&(proto, vip, real)| {
                real_config(cfg, proto, vip, real)
                    .filter(|r| !r.health.checks.is_empty())
                    .map(|r| r.health.inhibit_on_failure)
            });
        match &self.health {
            Some(m) => m.update(targets),
            None if targets.is_empty() => {}
            None => {
                if let Err(e) = self.start_health() {
                    log::error(&e);
                }
            }
        }
    }

    /// Applies the checker's verdicts: each change of a real server's
    /// state is one log line and, up or down, its notify command; then
    /// each service whose quorum moved logs a line and runs its command.
    /// Never blocks: the verdicts are taken as they are, the commands run
    /// in the background ([`commands`]).
    fn apply_health(&mut self) {
        if let Some(m) = &self.health {
            for v in m.verdicts() {
                let real = real_config(&self.cfg, v.proto, v.vip, v.real);
                let h = Health {
                    up: v.up,
                    weight: v.weight.filter(|_| v.up),
                    inhibit: real.is_some_and(|r| r.health.inhibit_on_failure),
                };
                let key: HealthKey = (v.proto, v.vip, v.real);
                let Some(old) = self.control.set_health(key, h) else {
                    continue;
                };
                log::notice(format_args!(
                    "health: {} {} real {} {} -> {}: {}: {}",
                    v.proto,
                    v.vip,
                    v.real,
                    state(old),
                    state(h),
                    v.check,
                    v.reason
                ));
                let notify = match (old.up, h.up) {
                    (false, true) => real.and_then(|r| r.health.notify_up.as_ref()),
                    (true, false) => real.and_then(|r| r.health.notify_down.as_ref()),
                    _ => None,
                };
                if let Some(c) = notify {
                    let why = format!("health: {} {} real {}", v.proto, v.vip, v.real);
                    self.commands.spawn(&why, &c.argv);
                }
            }
        }
        for q in self.control.update_quorum() {
            let (from, to) = if q.up { ("down", "up") } else { ("up", "down") };
            let sorry = self
                .cfg
                .services
                .iter()
                .find(|s| s.proto == q.proto && s.vip == q.vip)
                .and_then(|s| s.sorry_server.as_ref())
                .map_or(String::new(), |r| {
                    let inout = if q.up { "out" } else { "in" };
                    format!("; sorry server {} {inout}", r.addr)
                });
            log::notice(format_args!(
                "health: {} {} quorum {from} -> {to}: live weight {}, quorum {}, hysteresis {}{sorry}",
                q.proto, q.vip, q.sum, q.quorum, q.hysteresis
            ));
            if let Some(c) = &q.command {
                let why = format!("health: {} {} quorum_{to}", q.proto, q.vip);
                self.commands.spawn(&why, &c.argv);
            }
        }
        self.commands.reap();
    }

    /// Stops and joins the workers, detaches the programs, and reports the
    /// counters if `report`.
    fn shutdown(&mut self, report: bool) {
        self.plane.shared.stop.store(true, Ordering::Relaxed);
        for (_, t) in self.threads.drain(..) {
            let _ = t.join();
        }
        // The steering program's own counts, read before it is detached.
        for s in self.plane.steering.iter().filter(|_| report) {
            if let Ok(st) = s.stats() {
                log::info(format_args!(
                    "{}: XDP program redirected {} passed {} redirect_failed {}",
                    s.ifname(),
                    st.redirected,
                    st.passed,
                    st.redirect_failed
                ));
            }
        }
        self.plane.steering.clear();
        // Removes the socket file.
        self.server = None;
        self.metrics.server = None;
        for w in (0..self.plane.shared.workers()).filter(|_| report) {
            log::info(format_args!(
                "worker {w}: {}",
                summary(&self.plane.shared.stats(w))
            ));
        }
        log::flush_all();
    }
}

impl Plane {
    /// After an edit of the services (xdpvsadm, reload): next hops for new
    /// real servers, the XDP maps, and a snapshot for the workers, in that
    /// order, so that a packet the program steers to a worker finds its
    /// service there.
    fn apply_changes(&mut self, control: &mut Control) {
        if !control.changed() {
            return;
        }
        // Only real server addresses never asked about yet: the others
        // are refreshed once a second, so an edit costs no lookup per
        // real server of the table.
        self.resolve_new_next_hops(control);
        if let Err(e) = self.update_steering(control) {
            log::limited("xdp-maps", Level::Warning, format_args!("XDP maps: {e}"));
        }
        self.publish(control);
    }

    /// Resolves every real server's next hop; true if any changed. When
    /// the kernel's answer fails (an error, or none within
    /// `netlink::RECV_TIMEOUT`), every next hop stays as it was, the failure
    /// is logged rate-limited, and the next call (a second later, or the
    /// next edit) asks again.
    fn refresh_next_hops(&mut self, control: &mut Control) -> bool {
        // Every address is asked about here: none is new after it.
        control.take_new_addrs();
        let addrs = control.table().dest_addrs();
        self.asked = addrs.iter().copied().collect();
        let (changed, pending) = self.resolve(control, &addrs);
        self.pending = pending;
        changed
    }

    /// One step of the periodic refresh: the next [`REFRESH_BATCH`] real
    /// server addresses (in address order) are resolved again; a cycle
    /// over all of them starts at most once a second. True if a next hop
    /// changed.
    fn refresh_step(&mut self, control: &mut Control, now: Instant) -> bool {
        if self.cycle_pos == 0 {
            if now < self.next_cycle {
                return false;
            }
            self.next_cycle = now + Duration::from_secs(1);
            // The addresses as the cycle starts; one added during it was
            // resolved by its edit, one deleted is asked about once more.
            self.cycle = control.table().dest_addrs();
            self.cycle.sort_unstable();
        }
        let addrs = std::mem::take(&mut self.cycle);
        let from = self.cycle_pos.min(addrs.len());
        let to = (from + REFRESH_BATCH).min(addrs.len());
        self.asked.extend(addrs[from..to].iter().copied());
        let (changed, _) = self.resolve(control, &addrs[from..to]);
        self.cycle_pos = if to >= addrs.len() { 0 } else { to };
        self.cycle = addrs;
        changed
    }

    /// Resolves the next hops of real server addresses not asked about
    /// before (new real servers); true if any changed. Only the addresses
    /// the edits since the last call added are looked at, unless that is
    /// not known (a restore, a reload).
    fn resolve_new_next_hops(&mut self, control: &mut Control) -> bool {
        let candidates: Vec<IpAddr> = match control.take_new_addrs() {
            Some(added) => added
                .into_iter()
                .filter(|&a| control.table().has_dest_addr(a))
                .collect(),
            None => control.table().dest_addrs(),
        };
        let mut addrs: Vec<IpAddr> = Vec::new();
        for a in candidates {
            // `insert` also drops an address added twice.
            if self.asked.insert(a) {
                addrs.push(a);
            }
        }
        self.resolve(control, &addrs).0
    }

    /// Resolves `addrs` (IPv4 by ARP, IPv6 by neighbour discovery):
    /// whether any next hop changed, and how many the kernel is still
    /// resolving.
    fn resolve(&mut self, control: &mut Control, addrs: &[IpAddr]) -> (bool, usize) {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for a in addrs {
            match a {
                IpAddr::V4(a) => v4.push(*a),
                IpAddr::V6(a) => v6.push(*a),
            }
        }
        let mut changed = false;
        let mut pending = 0;
        if !v4.is_empty() {
            match self.nl.resolve_all(&v4) {
                Ok(res) => {
                    for (addr, r) in v4.iter().zip(res) {
                        let tun = control.table().is_tun_addr(IpAddr::V4(*addr));
                        if let Resolution::Resolved { src, .. } | Resolution::Pending { src, .. } =
                            r
                        {
                            changed |= self.note_source(control, *addr, src, tun);
                        }
                        let (c, p) = self.apply_resolution(control, IpAddr::V4(*addr), r);
                        changed |= c;
                        pending += p;
                    }
                }
                Err(e) => log::limited("next-hops", Level::Warning, format_args!("next hops: {e}")),
            }
        }
        if !v6.is_empty() {
            match self.nl.resolve_all6(&v6) {
                Ok(res) => {
                    for (addr, r) in v6.iter().zip(res) {
                        let ip = IpAddr::V6(*addr);
                        if let Resolution::Resolved { src, .. } | Resolution::Pending { src, .. } =
                            r
                        {
                            changed |= control.set_source6(ip, src);
                        }
                        let (c, p) = self.apply_resolution(control, ip, r);
                        changed |= c;
                        pending += p;
                    }
                }
                Err(e) => {
                    log::limited("next-hops6", Level::Warning, format_args!("next hops: {e}"))
                }
            }
        }
        (changed, pending)
    }

    /// What `r` says of real server `ip`'s next hop, applied: whether it
    /// changed, and 1 if the kernel is still resolving it.
    fn apply_resolution<A: crate::netlink::Family>(
        &mut self,
        control: &mut Control,
        ip: IpAddr,
        r: Resolution<A>,
    ) -> (bool, usize) {
        let port = |ifindex: u32| self.ifaces.iter().position(|i| i.index == ifindex);
        let how = if ip.is_ipv4() {
            "ARP"
        } else {
            "neighbour discovery"
        };
        match r {
            Resolution::Resolved {
                ifindex,
                mac,
                next_hop,
                ..
            } => match port(ifindex) {
                Some(p) => {
                    self.unresolved.retain(|a| *a != ip);
                    (control.set_next_hop(ip, p as u8, mac), 0)
                }
                None => {
                    let c = control.clear_next_hop(ip);
                    self.note_unresolved(ip, format_args!(
                        "real server {ip} is reached via {next_hop} on ifindex {ifindex}, not one of dataplane.interfaces"
                    ));
                    (c, 0)
                }
            },
            // Keep the last MAC while the kernel re-resolves.
            Resolution::Pending { .. } => (false, 1),
            Resolution::Unreachable => {
                let c = control.clear_next_hop(ip);
                self.note_unresolved(ip, format_args!(
                    "real server {ip}: no route or no {how} answer; its packets are counted as no_neighbour"
                ));
                (c, 0)
            }
        }
    }

    /// Records the source of the route to real server `addr` (the outer
    /// source of its TUN packets without `dataplane.tunnel_source`); says
    /// once when a TUN server's route gives none, and whenever a TUN
    /// server's source changes (`tun`: `addr` is a TUN server's). True if
    /// it changed.
    fn note_source(
        &mut self,
        control: &mut Control,
        addr: Ipv4Addr,
        src: Option<Ipv4Addr>,
        tun: bool,
    ) -> bool {
        let ip = IpAddr::V4(addr);
        let before = control.table().source(ip);
        let changed = control.set_source(ip, src);
        if control.table().tunnel_source().is_some() || !tun {
            return changed;
        }
        match src {
            Some(s) if before != Some(s) => {
                self.no_source.retain(|a| *a != addr);
                log::info(format_args!(
                    "real server {addr}: tunnel source {s} (the route's source address)"
                ));
            }
            None if !self.no_source.contains(&addr) => {
                self.no_source.push(addr);
                log::warning(format_args!(
                    "real server {addr}: the route to it names no source address (its interface has no IPv4 address) and dataplane.tunnel_source is not set; its TUN packets are dropped and counted as no_source"
                ));
            }
            _ => {}
        }
        changed
    }

    fn note_unresolved(&mut self, ip: IpAddr, msg: std::fmt::Arguments<'_>) {
        if !self.unresolved.contains(&ip) {
            self.unresolved.push(ip);
            log::warning(msg);
        }
    }

    /// Reads the director's own IPv4 addresses and, when they changed,
    /// gives them to the XDP programs: replies from NAT real servers to
    /// these addresses belong to the director's own connections (health
    /// checks) and stay with the kernel. Called at start and once a second.
    fn refresh_local_addrs(&mut self) {
        let addrs = match self.nl.local_addrs() {
            Ok(a) => a,
            Err(e) => {
                log::limited(
                    "local-addrs",
                    Level::Warning,
                    format_args!("local addresses: {e}"),
                );
                return;
            }
        };
        if self.local_addrs.as_ref() == Some(&addrs) {
            return;
        }
        // A failure (more addresses than the map holds) is said once per
        // change of the set, not every second.
        for s in &mut self.steering {
            if let Err(e) = s.set_local_addrs(&addrs) {
                log::limited("xdp-local", Level::Warning, format_args!("XDP maps: {e}"));
            }
        }
        self.local_addrs = Some(addrs);
    }

    /// What every interface's steering maps hold (the smallest of each);
    /// `None` without interfaces.
    fn steer_limits(&self) -> Result<Option<SteerLimits>, XskError> {
        let mut out: Option<SteerLimits> = None;
        for s in &self.steering {
            let l = s.limits()?;
            out = Some(match out {
                None => l,
                Some(o) => o.min(l),
            });
        }
        Ok(out)
    }

    fn update_steering(&mut self, control: &mut Control) -> Result<(), XskError> {
        let rules = control.steer_rules();
        for s in &mut self.steering {
            s.set_rules(rules)?;
        }
        Ok(())
    }

    /// Whether the current snapshot keeps an old steering rule that no
    /// connection can need any more (a new snapshot drops it).
    fn history_expired(&self) -> bool {
        let now = self.clock.now();
        let snap = self.shared.snapshot.load();
        snap.steer_history.iter().any(|h| !h.live(now))
    }

    fn publish(&self, control: &Control) {
        let prev = self.shared.snapshot.load();
        let next = control.table().next_snapshot_at(&prev, self.clock.now());
        self.shared.snapshot.store(Arc::new(next));
    }
}

/// How long a worker may leave a slice of a `-c` listing unanswered
/// before it is left out of the listing.
const SLICE_LIMIT: Duration = Duration::from_secs(2);

/// How long one [`ConnStream::poll`] of the workers' listing may wait for
/// slices on the control thread.
const LISTING_POLL: Duration = Duration::from_millis(1);

fn conn_view(e: ConnEntry) -> ConnView {
    ConnView {
        proto: e.proto,
        client: e.client,
        virt: e.virt,
        dest: e.dest,
        state: e.state.to_owned(),
        expires: e.expires,
    }
}

/// `xdpvsadm -c`: the workers' tables.
struct WorkerConns<'a>(&'a Arc<Shared>);

/// A `-c` listing of the workers' tables, a slice per worker at a time
/// (`crate::worker::dump`), handed to the control socket a line at a
/// time: at most [`CONNS_PER_LINE`] entries plus one slice per worker are
/// held at once, whatever the table's size.
/// One listing runs at a time: a second client's waits for the first.
struct WorkerListing {
    shared: Arc<Shared>,
    listing: Option<ConnListing>,
    buf: Vec<ConnView>,
    done: bool,
}

impl ConnStream for WorkerListing {
    fn poll(&mut self) -> StreamPoll {
        let until = Instant::now() + LISTING_POLL;
        while !self.done && self.buf.len() < CONNS_PER_LINE {
            let now = Instant::now();
            if self.listing.is_none() {
                self.listing = ConnListing::start(&self.shared, SLICE_LIMIT);
            }
            let Some(listing) = self.listing.as_mut() else {
                return StreamPoll::Pending; // another client's runs
            };
            let (entries, done) = listing.poll(now);
            self.buf.extend(entries.into_iter().map(conn_view));
            self.done = done;
            if done && listing.skipped() > 0 {
                log::warning(format_args!(
                    "-L -c: {} workers did not answer within {SLICE_LIMIT:?}; the listing lacks (part of) their connections",
                    listing.skipped()
                ));
            }
            if done {
                self.listing = None; // the next one may start
            }
            if now >= until {
                break;
            }
            if !done {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        if self.buf.is_empty() {
            return if self.done {
                StreamPoll::End
            } else {
                StreamPoll::Pending
            };
        }
        let rest = self.buf.split_off(self.buf.len().min(CONNS_PER_LINE));
        StreamPoll::Part(std::mem::replace(&mut self.buf, rest))
    }
}

impl ConnSource for WorkerConns<'_> {
    fn conns(&mut self) -> Vec<ConnView> {
        ConnListing::collect(self.0, SLICE_LIMIT)
            .unwrap_or_default()
            .into_iter()
            .map(conn_view)
            .collect()
    }

    fn stream(&mut self) -> Box<dyn ConnStream> {
        Box::new(WorkerListing {
            listing: ConnListing::start(self.0, SLICE_LIMIT),
            shared: Arc::clone(self.0),
            buf: Vec::new(),
            done: false,
        })
    }

    fn counters(&mut self) -> Vec<WorkerStats> {
        (0..self.0.workers()).map(|w| self.0.stats(w)).collect()
    }
}

/// One line of a worker's statistics, for the log: `rx` and `tx` first,
/// then every other counter that is not zero as `name=value` (every
/// counter of [`WorkerStats::entries`] can appear).
pub fn summary(s: &WorkerStats) -> String {
    let mut line = format!("rx {} tx {}", s.get(Counter::Rx), s.get(Counter::Tx));
    for e in s.entries() {
        if e.value > 0 && !matches!(e.kind, Kind::Counter(Counter::Rx | Counter::Tx)) {
            line.push_str(&format!(" {}={}", e.name, e.value));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn the_configuration_knows_the_data_paths_sizes() {
        assert_eq!(
            crate::config::Tuning::HANDOFF_BYTES as usize,
            crate::worker::HANDOFF_BYTES
        );
        assert_eq!(crate::xsk::RX_HEADROOM, crate::frame::RX_HEADROOM);
    }

    /// How a [`Flaky`] resolver fails.
    type Fault = fn() -> NetlinkError;

    /// A resolver that answers `mac` for everything, or fails as told;
    /// the test keeps handles on both and on the count of its calls.
    #[derive(Clone, Default)]
    struct Flaky {
        mac: Rc<Cell<[u8; 6]>>,
        fail: Rc<Cell<Option<Fault>>>,
        calls: Rc<Cell<usize>>,
    }

    impl Flaky {
        /// Every destination resolved to `mac` from `src`, or the fault.
        fn answer<A: crate::netlink::Family>(
            &self,
            dsts: &[A],
            src: Option<A>,
        ) -> Result<Vec<Resolution<A>>, NetlinkError> {
            self.calls.set(self.calls.get() + 1);
            if let Some(f) = self.fail.get() {
                return Err(f());
            }
            Ok(dsts
                .iter()
                .map(|&d| Resolution::Resolved {
                    ifindex: 7,
                    next_hop: d,
                    mac: self.mac.get(),
                    src,
                })
                .collect())
        }
    }

    impl Resolver for Flaky {
        fn resolve_all(&mut self, dsts: &[Ipv4Addr]) -> Result<Vec<Resolution>, NetlinkError> {
            self.answer(dsts, Some(Ipv4Addr::new(198, 18, 2, 2)))
        }

        fn resolve_all6(
            &mut self,
            dsts: &[std::net::Ipv6Addr],
        ) -> Result<Vec<Resolution<std::net::Ipv6Addr>>, NetlinkError> {
            self.answer(dsts, None)
        }

        fn local_addrs(&mut self) -> Result<Vec<IpAddr>, NetlinkError> {
            match self.fail.get() {
                Some(f) => Err(f()),
                None => Ok(vec![Ipv4Addr::new(198, 18, 2, 2).into()]),
            }
        }
    }

    /// Issue 13, item 2: netlink errors and timeouts during the next-hop
    /// refresh keep the next hops the workers have, and the refresh asks
    /// again each time until the kernel answers.
    #[test]
    fn a_failing_resolver_keeps_the_next_hops_and_is_asked_again() {
        use crate::config::{Forward, Protocol, RealConfig, ServiceConfig};
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let vip: std::net::SocketAddr = "198.18.1.1:80".parse().unwrap();
        let real: std::net::SocketAddr = "198.18.2.11:80".parse().unwrap();
        let mut t = ServiceTable::new(
            vec![Port {
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                complete_checksums: false,
            }],
            None,
            crate::conn::Timeouts::default(),
        );
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "rr"))
            .unwrap();
        let r = RealConfig::new(real, Forward::Dr, 1);
        t.add_dest(Protocol::Tcp, vip, &r).unwrap();
        let shared = Arc::new(Shared::new(Arc::new(t.snapshot()), &[vec![0]]));
        let mut control = Control::new(t, 4096, Instant::now());
        let flaky = Flaky::default();
        flaky.mac.set(a);
        let mut plane = Plane {
            shared,
            steering: Vec::new(),
            ifaces: vec![Interface {
                name: "d0".into(),
                index: 7,
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                rx_queues: 1,
                tx_queues: 1,
                up: true,
            }],
            nl: Box::new(flaky.clone()),
            unresolved: Vec::new(),
            pending: 0,
            no_source: Vec::new(),
            local_addrs: None,
            asked: std::collections::HashSet::new(),
            cycle: Vec::new(),
            cycle_pos: 0,
            next_cycle: Instant::now(),
            checksum_lines: Vec::new(),
            clock: Arc::new(Clock::default()),
        };
        let ip = real.ip();
        assert!(plane.refresh_next_hops(&mut control), "first resolution");
        plane.refresh_local_addrs();
        assert!(!control.set_next_hop(ip, 0, a), "resolved to a");
        let faults: [Fault; 3] = [
            || NetlinkError::Timeout {
                request: "neighbour dump",
                after: Duration::from_secs(2),
            },
            || NetlinkError::Io(std::io::Error::from_raw_os_error(libc::ENOBUFS)),
            || NetlinkError::Kernel {
                request: "route lookup",
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            },
        ];
        // While the kernel fails, the MAC it would give has changed to b.
        flaky.mac.set(b);
        for f in faults {
            flaky.fail.set(Some(f));
            let before = flaky.calls.get();
            for _ in 0..3 {
                assert!(!plane.refresh_next_hops(&mut control), "nothing changed");
                plane.refresh_local_addrs();
            }
            assert_eq!(flaky.calls.get(), before + 3, "asked again each time");
            assert!(!control.set_next_hop(ip, 0, a), "still a");
            assert_eq!(
                plane.local_addrs,
                Some(vec![Ipv4Addr::new(198, 18, 2, 2).into()]),
                "the addresses as last read"
            );
        }
        // The kernel answers again: the change is taken at once.
        flaky.fail.set(None);
        assert!(plane.refresh_next_hops(&mut control), "recovered");
        assert!(!control.set_next_hop(ip, 0, b), "now b");
    }

    #[test]
    fn fault_injection_values() {
        assert_eq!(parse_fault("0"), Some((0, 1)));
        assert_eq!(parse_fault("2:500"), Some((2, 500)));
        for bad in ["", "x", "1:", "1:0", ":3", "1:2:3", "-1"] {
            assert_eq!(parse_fault(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_panic_cause_is_its_message() {
        let caught = std::thread::spawn(|| panic!("worker {} broke", 3))
            .join()
            .unwrap_err();
        assert_eq!(panic_cause(&*caught), "worker 3 broke");
        let caught = std::thread::spawn(|| std::panic::panic_any(7u8))
            .join()
            .unwrap_err();
        assert_eq!(panic_cause(&*caught), "a panic without a message");
    }
}
