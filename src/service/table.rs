//! The control side's editable service table, and how it becomes a
//! [`Snapshot`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::snapshot::{Port, Service, Snapshot, ip_proto};
use super::steer::{EXPECT_TIMEOUT, HISTORY_CAP, KEEP_MARGIN, SteerRule, Superseded};
use crate::config::{Config, Protocol, RealConfig, ServiceConfig};
use crate::conn::Timeouts;
use crate::dest::{Dest, DestCounters, DestRef, Forward, Stats};
use crate::frame::Tick;
use crate::sched::{Dests, Params, Sched, SchedError};

/// What the XDP steering program redirects to the workers, the keys of its
/// maps: `(IP protocol, address, port)` of the virtual services (port 0:
/// all ports) and of the NAT real servers, per address family; see
/// [`ServiceTable::steer_rules`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteerRules {
    pub vips: Vec<(u8, Ipv4Addr, u16)>,
    pub nat_reals: Vec<(u8, Ipv4Addr, u16)>,
    pub vips6: Vec<(u8, Ipv6Addr, u16)>,
    pub nat_reals6: Vec<(u8, Ipv6Addr, u16)>,
}

/// How many entries each of the XDP steering program's maps holds: the
/// most [`SteerRules`] it can carry. The daemon reads them from the loaded
/// program (`xsk::steer::Steering::limits`); `bpf/xdpvs_steer.bpf.c`
/// sizes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteerLimits {
    /// (proto, VIP, port) keys.
    pub vips: u32,
    /// (proto, NAT real server, port) keys.
    pub nat_reals: u32,
    /// Distinct VIP addresses.
    pub vip_addrs: u32,
    /// Distinct NAT real server addresses.
    pub nat_real_addrs: u32,
    /// The same four for IPv6.
    pub vips6: u32,
    pub nat_reals6: u32,
    pub vip_addrs6: u32,
    pub nat_real_addrs6: u32,
}

impl SteerLimits {
    /// Every map of `self` and `o`, the smaller of each.
    pub fn min(self, o: SteerLimits) -> SteerLimits {
        SteerLimits {
            vips: self.vips.min(o.vips),
            nat_reals: self.nat_reals.min(o.nat_reals),
            vip_addrs: self.vip_addrs.min(o.vip_addrs),
            nat_real_addrs: self.nat_real_addrs.min(o.nat_real_addrs),
            vips6: self.vips6.min(o.vips6),
            nat_reals6: self.nat_reals6.min(o.nat_reals6),
            vip_addrs6: self.vip_addrs6.min(o.vip_addrs6),
            nat_real_addrs6: self.nat_real_addrs6.min(o.nat_real_addrs6),
        }
    }
}

/// How many distinct addresses `keys` hold.
fn distinct<A: Ord + Copy>(keys: &[(u8, A, u16)]) -> usize {
    let mut a: Vec<A> = keys.iter().map(|k| k.1).collect();
    a.sort_unstable();
    a.dedup();
    a.len()
}

impl SteerRules {
    /// Whether the rules fit in maps of `limits`: the first map they
    /// overflow, as the error an edit is refused with.
    pub fn check(&self, limits: &SteerLimits) -> Result<(), ServiceError> {
        let l = limits;
        let maps = [
            ("vips", "virtual services", self.vips.len(), l.vips),
            (
                "vip_addrs",
                "virtual addresses",
                distinct(&self.vips),
                l.vip_addrs,
            ),
            (
                "nat_reals",
                "NAT real servers",
                self.nat_reals.len(),
                l.nat_reals,
            ),
            (
                "nat_real_addrs",
                "NAT real server addresses",
                distinct(&self.nat_reals),
                l.nat_real_addrs,
            ),
            ("vips6", "IPv6 virtual services", self.vips6.len(), l.vips6),
            (
                "vip_addrs6",
                "IPv6 virtual addresses",
                distinct(&self.vips6),
                l.vip_addrs6,
            ),
            (
                "nat_reals6",
                "IPv6 NAT real servers",
                self.nat_reals6.len(),
                l.nat_reals6,
            ),
            (
                "nat_real_addrs6",
                "IPv6 NAT real server addresses",
                distinct(&self.nat_reals6),
                l.nat_real_addrs6,
            ),
        ];
        for (map, what, need, max) in maps {
            if need > max as usize {
                return Err(ServiceError::SteeringFull {
                    map,
                    what,
                    need,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Whether one more edit (a service, a real server, or a change of
    /// either, each adding at most two keys to a map, see
    /// [`ServiceTable::steer_rules`]) surely fits in maps of `limits`.
    pub fn room_for_an_edit(&self, limits: &SteerLimits) -> bool {
        let n = |v: usize, max: u32| v + 2 <= max as usize;
        let l = limits;
        n(self.vips.len(), l.vips.min(l.vip_addrs))
            && n(self.nat_reals.len(), l.nat_reals.min(l.nat_real_addrs))
            && n(self.vips6.len(), l.vips6.min(l.vip_addrs6))
            && n(self.nat_reals6.len(), l.nat_reals6.min(l.nat_real_addrs6))
    }

    /// The key of a virtual service (or a VIP's every port, `port` 0).
    fn add_vip(&mut self, proto: u8, addr: IpAddr, port: u16) {
        match addr {
            IpAddr::V4(a) => self.vips.push((proto, a, port)),
            IpAddr::V6(a) => self.vips6.push((proto, a, port)),
        }
    }

    /// The key of a NAT real server's replies (or of its every port).
    fn add_nat_real(&mut self, proto: u8, addr: IpAddr, port: u16) {
        match addr {
            IpAddr::V4(a) => self.nat_reals.push((proto, a, port)),
            IpAddr::V6(a) => self.nat_reals6.push((proto, a, port)),
        }
    }
}

/// Why an edit was refused. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("service {proto} {vip} already exists")]
    ServiceExists { proto: Protocol, vip: SocketAddr },
    #[error("no such service {proto} {vip}")]
    NoService { proto: Protocol, vip: SocketAddr },
    #[error("destination {dest} already exists in service {proto} {vip}")]
    DestExists {
        proto: Protocol,
        vip: SocketAddr,
        dest: SocketAddr,
    },
    #[error("no such destination {dest} in service {proto} {vip}")]
    NoDest {
        proto: Protocol,
        vip: SocketAddr,
        dest: SocketAddr,
    },
    #[error(transparent)]
    Scheduler(#[from] SchedError),
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    #[error("too many real servers (at most {max})", max = DestRef::MAX_SLOTS)]
    TooManyDests,
    #[error("too many {what} for the XDP steering program: {need}, its {map} map holds {max}")]
    SteeringFull {
        map: &'static str,
        what: &'static str,
        need: usize,
        max: u32,
    },
}

fn params(cfg: &ServiceConfig) -> Params {
    Params {
        flags: cfg.scheduler_flags,
        mh_table_size: cfg.mh_table_size,
        mh_seed: cfg.mh_seed,
    }
}

/// Service `proto` `vip` of `snap` exactly (no port-0 fallback).
fn same_service(snap: &Snapshot, proto: Protocol, vip: SocketAddr) -> Option<&Service> {
    let IpAddr::V4(a) = vip.ip() else {
        return None;
    };
    let i = snap.v4.get(&(ip_proto(proto), a, vip.port()))?;
    Some(&snap.services[*i as usize])
}

/// A service as the control side lists it. Its `cfg.reals` is empty; the
/// real servers are in `dests`.
pub struct ServiceInfo<'a> {
    pub cfg: &'a ServiceConfig,
    pub stats: &'a Arc<Stats>,
    pub dests: Vec<DestInfo<'a>>,
}

/// The counter sets of a service and of all its real servers
/// ([`ServiceTable::counter_sets`]).
pub struct CounterSets<'a> {
    pub stats: &'a Arc<Stats>,
    pub dests: Vec<&'a Arc<DestCounters>>,
}

/// A real server as the control side lists it.
pub struct DestInfo<'a> {
    pub cfg: &'a RealConfig,
    /// The weight in effect: the configured one, misc_dynamic's, or 0
    /// while inhibited (see [`ServiceTable::set_health`]).
    pub weight: u32,
    pub counters: &'a Arc<DestCounters>,
}

/// A real server of a service, as health checks name it: (protocol,
/// VIP, real server).
pub type HealthKey = (Protocol, SocketAddr, SocketAddr);

/// What the health checks last said of a real server, and how a failure
/// is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// All its checks pass.
    pub up: bool,
    /// misc_dynamic's weight while up, in place of the configured one.
    pub weight: Option<u32>,
    /// `inhibit_on_failure`: while down it stays with weight 0 (listed,
    /// its connections flowing) rather than being taken out of service.
    pub inhibit: bool,
}

impl Health {
    /// What takes effect: `inhibit` only while down.
    fn applied(self) -> (bool, Option<u32>, bool) {
        (self.up, self.weight, !self.up && self.inhibit)
    }

    /// A real server no check has spoken of.
    pub const UP: Health = Health {
        up: true,
        weight: None,
        inhibit: false,
    };
}

/// A service gained or lost its quorum ([`ServiceTable::update_quorum`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    pub proto: Protocol,
    pub vip: SocketAddr,
    /// Gained (true) or lost.
    pub up: bool,
    /// The sum of the weights of its real servers that are up.
    pub sum: u64,
    pub quorum: u32,
    pub hysteresis: u32,
    /// `quorum_up` or `quorum_down`, to run.
    pub command: Option<crate::config::CommandLine>,
}

/// How a real server takes part, health and quorum applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Effective {
    weight: u32,
    /// Listed (`-L`) and in its scheduler's order.
    listed: bool,
    /// Its connections flow ([`Dest::in_service`]).
    in_service: bool,
}

#[derive(Clone)]
struct SvcEntry {
    cfg: ServiceConfig,
    /// Slots, newest first (IPVS adds destinations at the list head).
    dests: Vec<u32>,
    /// Changes with every edit of the service or its real servers; a
    /// snapshot reuses the previous one's scheduler while it is the same.
    version: u64,
    stats: Arc<Stats>,
    /// Has quorum (keepalived's `quorum_state_up`): the sum of the weights
    /// of its real servers that are up is high enough.
    quorum_up: bool,
}

#[derive(Clone)]
struct DestEntry {
    cfg: RealConfig,
    /// The service's sorry server (`sorry_server`), not one of its reals.
    sorry: bool,
    /// See [`Dest::last_weight`].
    last_weight: u32,
    r: DestRef,
    counters: Arc<DestCounters>,
}

/// How many real servers of the table have one address, and how many of
/// them are forwarded by tunnel: what [`ServiceTable::dest_addrs`] and
/// [`ServiceTable::is_tun_addr`] answer from without a pass over the
/// servers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AddrUse {
    dests: u32,
    tun: u32,
}

/// The table's maps by address: every snapshot looks each real server up
/// in several of them, so they hash as the snapshot's own maps do (the keys
/// are the operator's addresses, not a sender's).
type AddrMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default, Clone)]
struct Slot {
    generation: u32,
    dest: Option<DestEntry>,
}

/// Services and real servers as the operator configured them.
///
/// A clone shares the counters of the services and servers it copies, so
/// a batch of edits can be tried on a clone and the clone kept only if
/// every edit succeeds.
#[derive(Clone)]
pub struct ServiceTable {
    ports: Vec<Port>,
    tunnel_source: Option<Ipv4Addr>,
    timeouts: Timeouts,
    services: Vec<SvcEntry>,
    /// Where each service is in `services`, so that an edit finds its
    /// service without a pass over them.
    index: AddrMap<(Protocol, SocketAddr), usize>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Next hop of each real server address: director port and MAC.
    next_hops: AddrMap<IpAddr, (u8, [u8; 6])>,
    /// The real servers at each address; kept with every insertion,
    /// release and edit of a slot.
    addrs: AddrMap<IpAddr, AddrUse>,
    /// Source address of the kernel's route to each real server address:
    /// the outer source of its TUN packets unless `tunnel_source` is set.
    sources: AddrMap<IpAddr, Ipv4Addr>,
    /// The same for IPv6 real servers (their route's IPv6 source).
    sources6: AddrMap<IpAddr, std::net::Ipv6Addr>,
    /// The last version handed to a service.
    versions: u64,
    /// Changes with every edit that can change [`ServiceTable::steer_rules`]:
    /// a service's address or settings, a NAT real server, the FTP ports.
    steer_epoch: u64,
    /// `versions` when [`ServiceTable::update_quorum`] last looked.
    quorum_seen: u64,
    /// Workers that count traffic.
    workers: usize,
    /// `connections.ftp_ports`.
    ftp_ports: Vec<u16>,
    /// `connections`' flood defences.
    defense: crate::conn::Defense,
    /// `connections.expire_nodest_conn`, `expire_quiescent_template`.
    expire_nodest_conn: bool,
    expire_quiescent_template: bool,
    /// What the health checks said last, per (service, real server). Kept
    /// apart from the servers, so that it outlives an `xdpvsadm -d`/`-a`
    /// and a reload; [`ServiceTable::retain_health`] prunes it.
    health: AddrMap<HealthKey, Health>,
    /// IPv6 services are taken ([`ServiceTable::allow_ipv6_services`]).
    ipv6: bool,
}

impl ServiceTable {
    pub fn new(ports: Vec<Port>, tunnel_source: Option<Ipv4Addr>, timeouts: Timeouts) -> Self {
        ServiceTable {
            ports,
            tunnel_source,
            timeouts,
            services: Vec::new(),
            index: AddrMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            next_hops: AddrMap::default(),
            addrs: AddrMap::default(),
            sources: AddrMap::default(),
            sources6: AddrMap::default(),
            versions: 0,
            steer_epoch: 0,
            quorum_seen: 0,
            workers: 1,
            ftp_ports: vec![crate::config::Connections::DEFAULT_FTP_PORT],
            defense: crate::conn::Defense::default(),
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            ipv6: false,
            health: AddrMap::default(),
        }
    }

    /// Sets IPVS's `expire_nodest_conn` and `expire_quiescent_template`
    /// (from the next snapshot; see `config::Connections`).
    pub fn set_expiry(&mut self, nodest_conn: bool, quiescent_template: bool) {
        self.expire_nodest_conn = nodest_conn;
        self.expire_quiescent_template = quiescent_template;
    }

    /// Sets the connection tables' flood defences (from the next snapshot).
    pub fn set_defense(&mut self, d: crate::conn::Defense) {
        self.defense = d;
    }

    pub fn defense(&self) -> &crate::conn::Defense {
        &self.defense
    }

    /// Sets the virtual ports whose NAT connections get the FTP helper
    /// (default: 21).
    pub fn set_ftp_ports(&mut self, ports: Vec<u16>) {
        self.steer_epoch += 1;
        self.ftp_ports = ports;
    }

    /// The table a configuration file describes, on the given ports.
    /// The table a configuration file describes, on the given ports, for
    /// `workers` workers.
    pub fn from_config(
        cfg: &Config,
        ports: Vec<Port>,
        workers: usize,
    ) -> Result<Self, ServiceError> {
        let c = &cfg.connections;
        let mut timeouts = Timeouts::default();
        timeouts.set(c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout);
        let mut t = ServiceTable::new(ports, cfg.dataplane.tunnel_source, timeouts);
        t.set_workers(workers);
        t.set_ftp_ports(c.ftp_ports.clone());
        t.set_defense(c.defense);
        t.set_expiry(c.expire_nodest_conn, c.expire_quiescent_template);
        for s in &cfg.services {
            t.add_service(s)?;
            for r in &s.reals {
                t.add_dest(s.proto, s.vip, r)?;
            }
            t.set_sorry(s.proto, s.vip, s.sorry_server.as_ref())?;
            t.init_quorum(s.proto, s.vip)?;
        }
        Ok(t)
    }

    /// How many workers count traffic (one statistics line each). Set it
    /// before adding services.
    pub fn set_workers(&mut self, workers: usize) {
        assert!(
            self.services.is_empty(),
            "set the workers before adding services"
        );
        self.workers = workers.max(1);
    }

    fn next_version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    fn find(&self, proto: Protocol, vip: SocketAddr) -> Result<usize, ServiceError> {
        self.index
            .get(&(proto, vip))
            .copied()
            .ok_or(ServiceError::NoService { proto, vip })
    }

    /// Lets this table take IPv6 services, which it refuses by default
    /// (`not_implemented`): the pipeline forwards them (issue 16), but the
    /// config and `xdpvsadm` side, the steering program and the next hops
    /// do not handle them yet, so only tests building a table directly
    /// call this.
    #[doc(hidden)]
    pub fn allow_ipv6_services(&mut self) {
        self.ipv6 = true;
    }

    fn check_service(&self, cfg: &ServiceConfig) -> Result<(), ServiceError> {
        if !cfg.vip.is_ipv4() && !self.ipv6 {
            return Err(ServiceError::NotImplemented("IPv6 virtual services"));
        }
        Sched::build(&cfg.scheduler, &Dests::new(&[], &[]), &params(cfg))?;
        Ok(())
    }

    /// `ipvsadm -A`. The service's `reals` and `sorry_server` are ignored:
    /// add them with [`ServiceTable::add_dest`], [`ServiceTable::set_sorry`].
    pub fn add_service(&mut self, cfg: &ServiceConfig) -> Result<(), ServiceError> {
        if self.find(cfg.proto, cfg.vip).is_ok() {
            return Err(ServiceError::ServiceExists {
                proto: cfg.proto,
                vip: cfg.vip,
            });
        }
        self.check_service(cfg)?;
        let version = self.next_version();
        self.steer_epoch += 1;
        self.index.insert((cfg.proto, cfg.vip), self.services.len());
        self.services.push(SvcEntry {
            cfg: ServiceConfig {
                reals: Vec::new(),
                // Set with its server by `set_sorry`.
                sorry_server: None,
                ..cfg.clone()
            },
            dests: Vec::new(),
            version,
            stats: Arc::new(Stats::new(self.workers)),
            quorum_up: true,
        });
        Ok(())
    }

    /// `ipvsadm -E`: scheduler and persistence of an existing service.
    pub fn edit_service(&mut self, cfg: &ServiceConfig) -> Result<(), ServiceError> {
        let i = self.find(cfg.proto, cfg.vip)?;
        self.check_service(cfg)?;
        self.services[i].version = self.next_version();
        self.steer_epoch += 1;
        let s = &mut self.services[i].cfg;
        s.scheduler.clone_from(&cfg.scheduler);
        s.persistence_timeout = cfg.persistence_timeout;
        s.persistence_netmask = cfg.persistence_netmask;
        s.scheduler_flags = cfg.scheduler_flags;
        s.mh_table_size = cfg.mh_table_size;
        s.mh_seed = cfg.mh_seed;
        Ok(())
    }

    /// `ipvsadm -D`: the service and its real servers.
    pub fn del_service(&mut self, proto: Protocol, vip: SocketAddr) -> Result<(), ServiceError> {
        let i = self.find(proto, vip)?;
        self.steer_epoch += 1;
        self.index.remove(&(proto, vip));
        for slot in self.services.remove(i).dests {
            self.release(slot);
        }
        // Those after it moved up one (the listing keeps the order they
        // were added in).
        for (j, s) in self.services.iter().enumerate().skip(i) {
            self.index.insert((s.cfg.proto, s.cfg.vip), j);
        }
        Ok(())
    }

    /// List position and slot of real server `addr` (not the sorry server).
    fn find_dest(&self, svc: usize, addr: SocketAddr) -> Option<(usize, u32)> {
        self.services[svc]
            .dests
            .iter()
            .enumerate()
            .find_map(|(pos, &slot)| {
                let d = self.slots[slot as usize].dest.as_ref()?;
                (d.cfg.addr == addr && !d.sorry).then_some((pos, slot))
            })
    }

    /// Whether service `proto` `vip` has real server `addr`, listed or
    /// not (one its health checks took out is still there for `-e`, `-d`).
    pub fn has_dest(&self, proto: Protocol, vip: SocketAddr, addr: SocketAddr) -> bool {
        self.locate(proto, vip, addr).is_ok()
    }

    /// Service index, list position and slot of an existing destination.
    fn locate(
        &self,
        proto: Protocol,
        vip: SocketAddr,
        dest: SocketAddr,
    ) -> Result<(usize, usize, u32), ServiceError> {
        let svc = self.find(proto, vip)?;
        let (pos, slot) =
            self.find_dest(svc, dest)
                .ok_or(ServiceError::NoDest { proto, vip, dest })?;
        Ok((svc, pos, slot))
    }

    /// `ipvsadm -a`.
    pub fn add_dest(
        &mut self,
        proto: Protocol,
        vip: SocketAddr,
        real: &RealConfig,
    ) -> Result<(), ServiceError> {
        let svc = self.find(proto, vip)?;
        if self.find_dest(svc, real.addr).is_some() {
            return Err(ServiceError::DestExists {
                proto,
                vip,
                dest: real.addr,
            });
        }
        self.insert_dest(svc, real, false)
    }

    /// Puts `real` in a free slot at the head of service `svc`'s list.
    fn insert_dest(
        &mut self,
        svc: usize,
        real: &RealConfig,
        sorry: bool,
    ) -> Result<(), ServiceError> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < DestRef::MAX_SLOTS as usize => {
                self.slots.push(Slot::default());
                self.slots.len() as u32 - 1
            }
            None => return Err(ServiceError::TooManyDests),
        };
        self.count_addr(real, 1);
        let s = &mut self.slots[slot as usize];
        // Never wraps: `release` retires a slot at its last generation.
        s.generation += 1;
        s.dest = Some(DestEntry {
            cfg: real.clone(),
            sorry,
            last_weight: real.weight,
            r: DestRef::new(slot, s.generation),
            counters: Arc::new(DestCounters::new(
                self.workers,
                Arc::clone(&self.services[svc].stats),
            )),
        });
        self.services[svc].dests.insert(0, slot);
        self.services[svc].version = self.next_version();
        Ok(())
    }

    /// `ipvsadm -e`: weight, forwarding method and thresholds. Existing
    /// connections keep the forwarding method they started with.
    ///
    /// With health checks: the new weight is the configured one. While the
    /// checks say the server is down it stays out (or at 0, inhibited)
    /// whatever weight this gives, and comes back with it. A weight that
    /// misc_dynamic set is replaced by this one until the next dynamic
    /// verdict: the latest word wins.
    pub fn edit_dest(
        &mut self,
        proto: Protocol,
        vip: SocketAddr,
        real: &RealConfig,
    ) -> Result<(), ServiceError> {
        let (svc, _, slot) = self.locate(proto, vip, real.addr)?;
        self.services[svc].version = self.next_version();
        if let Some(h) = self.health.get_mut(&(proto, vip, real.addr)) {
            h.weight = None;
        }
        if let Some(d) = self.slots[slot as usize].dest.as_mut() {
            // As `__ip_vs_update_dest`: keep the latest non-zero weight.
            if real.weight != 0 {
                d.last_weight = real.weight;
            }
            let old = std::mem::replace(&mut d.cfg, real.clone());
            self.count_addr(&old, -1);
            self.count_addr(real, 1);
        }
        Ok(())
    }

    /// `ipvsadm -d`. The server's connections end: their packets no longer
    /// find it.
    pub fn del_dest(
        &mut self,
        proto: Protocol,
        vip: SocketAddr,
        addr: SocketAddr,
    ) -> Result<(), ServiceError> {
        let (svc, pos, slot) = self.locate(proto, vip, addr)?;
        self.services[svc].dests.remove(pos);
        self.services[svc].version = self.next_version();
        self.release(slot);
        Ok(())
    }

    /// Empties `slot`; it is reused unless its generations are spent, so
    /// that no [`DestRef`] is ever issued twice (see [`crate::dest`]).
    fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let gone = s.dest.take();
        if s.generation < DestRef::MAX_GENERATION {
            self.free.push(slot);
        }
        if let Some(d) = gone {
            self.count_addr(&d.cfg, -1);
        }
    }

    /// Counts real server `real` in (`by` 1) or out (-1) of
    /// [`ServiceTable::addrs`] (and, if it is a NAT one, of the steering
    /// rules: see [`ServiceTable::steer_epoch`]).
    fn count_addr(&mut self, real: &RealConfig, by: i32) {
        if real.forward == Forward::Nat {
            // Only NAT real servers have steering keys.
            self.steer_epoch += 1;
        }
        let ip = real.addr.ip();
        let u = self.addrs.entry(ip).or_default();
        let tun = u32::from(real.forward == Forward::Tun);
        if by > 0 {
            u.dests += 1;
            u.tun += tun;
        } else {
            u.dests -= 1;
            u.tun -= tun;
        }
        if u.dests == 0 {
            self.addrs.remove(&ip);
        }
    }

    /// `ipvsadm -C`: every service and real server.
    pub fn clear(&mut self) {
        self.index.clear();
        self.steer_epoch += 1;
        while let Some(s) = self.services.pop() {
            for slot in s.dests {
                self.release(slot);
            }
        }
    }

    /// Services in the order they were added, each with its real servers
    /// in IPVS list order (newest first).
    ///
    /// Health applied: a real server its checks took out is not listed
    /// (keepalived removes it from IPVS), an inhibited one is listed with
    /// weight 0, and the sorry server is listed while in service (or, with
    /// `sorry_server_inhibit`, always, at weight 0 while not needed).
    pub fn services(&self) -> impl Iterator<Item = ServiceInfo<'_>> {
        self.services.iter().map(|s| self.info(s))
    }

    /// Service `proto` `vip`, as [`ServiceTable::services`] lists it.
    pub fn service(&self, proto: Protocol, vip: SocketAddr) -> Option<ServiceInfo<'_>> {
        Some(self.info(&self.services[self.find(proto, vip).ok()?]))
    }

    /// Service `s` as the listings see it: only its listed real servers,
    /// each with the weight in effect.
    fn info<'a>(&'a self, s: &'a SvcEntry) -> ServiceInfo<'a> {
        ServiceInfo {
            cfg: &s.cfg,
            stats: &s.stats,
            dests: s
                .dests
                .iter()
                .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
                .filter_map(|d| {
                    let e = self.effective(s, d, self.has_sorry(s));
                    e.listed.then_some(DestInfo {
                        cfg: &d.cfg,
                        weight: e.weight,
                        counters: &d.counters,
                    })
                })
                .collect(),
        }
    }

    /// The counter sets of service `proto` `vip`: its own and those of
    /// every real server it holds, listed or not (one its checks took out,
    /// the sorry server).
    pub fn counter_sets(&self, proto: Protocol, vip: SocketAddr) -> Option<CounterSets<'_>> {
        Some(self.counter_sets_of(&self.services[self.find(proto, vip).ok()?]))
    }

    /// [`ServiceTable::counter_sets`] of every service.
    pub fn all_counter_sets(&self) -> impl Iterator<Item = CounterSets<'_>> {
        self.services.iter().map(|s| self.counter_sets_of(s))
    }

    fn counter_sets_of<'a>(&'a self, s: &'a SvcEntry) -> CounterSets<'a> {
        CounterSets {
            stats: &s.stats,
            dests: s
                .dests
                .iter()
                .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
                .map(|d| &d.counters)
                .collect(),
        }
    }

    /// The counters of real server `addr` of service `proto` `vip`
    /// (listed or not; not the sorry server).
    pub fn dest_counters(
        &self,
        proto: Protocol,
        vip: SocketAddr,
        addr: SocketAddr,
    ) -> Option<&Arc<DestCounters>> {
        let (_, _, slot) = self.locate(proto, vip, addr).ok()?;
        self.slots[slot as usize].dest.as_ref().map(|d| &d.counters)
    }

    /// Whether service `s` has a sorry server.
    fn has_sorry(&self, s: &SvcEntry) -> bool {
        s.cfg.sorry_server.is_some()
    }

    /// How real server `d` of service `s` (`sorry`: which has a sorry
    /// server) takes part (see [`ServiceTable::set_health`]).
    fn effective(&self, s: &SvcEntry, d: &DestEntry, sorry: bool) -> Effective {
        let (configured, quorum) = (d.cfg.weight, s.quorum_up);
        if d.sorry {
            return match (quorum, s.cfg.sorry_server_inhibit) {
                (false, _) => Effective {
                    weight: configured,
                    listed: true,
                    in_service: true,
                },
                (true, inhibit) => Effective {
                    weight: 0,
                    listed: inhibit,
                    // Sessions that began while it was needed finish.
                    in_service: true,
                },
            };
        }
        let h = self.health_of(s.cfg.proto, s.cfg.vip, d.cfg.addr);
        match h {
            Health {
                up: false,
                inhibit: false,
                ..
            } => Effective {
                weight: configured,
                listed: false,
                in_service: false,
            },
            Health { up: false, .. } => Effective {
                weight: 0,
                listed: true,
                in_service: true,
            },
            Health { weight, .. } => {
                // Without quorum the sorry server takes the new
                // connections; the reals still up finish theirs.
                Effective {
                    weight: if sorry && !quorum {
                        0
                    } else {
                        weight.unwrap_or(configured)
                    },
                    listed: true,
                    in_service: true,
                }
            }
        }
    }

    /// What the checks said last of real server `real` of service `proto`
    /// `vip` ([`Health::UP`] if nothing).
    pub fn health_of(&self, proto: Protocol, vip: SocketAddr, real: SocketAddr) -> Health {
        self.health
            .get(&(proto, vip, real))
            .copied()
            .unwrap_or(Health::UP)
    }

    /// Records a health verdict for real server `key.2` of service
    /// `key.0` `key.1` and applies it from the next snapshot. Returns what
    /// it replaced when that differs (then log the change), else `None`.
    ///
    /// Down: the server leaves its scheduler's order and the listing, its
    /// connections wait ([`Dest::in_service`] false) — keepalived removes
    /// it from IPVS — but it is remembered, so it comes back with its
    /// configured weight, its counters and any connection still waiting.
    /// Down with `inhibit`: weight 0, listed, connections flowing. Up with
    /// a weight (misc_dynamic): that weight until the next verdict or
    /// `-e`. Healthy servers are untouched: their scheduler keeps its state
    /// but for the weights (`Sched::rebuild`). The record is kept for a
    /// server not (or no longer) in the table, for when it is added.
    pub fn set_health(&mut self, key: HealthKey, h: Health) -> Option<Health> {
        let old = self.health.insert(key, h).unwrap_or(Health::UP);
        if old.applied() == h.applied() {
            // `inhibit` matters only while down.
            return None;
        }
        if let Ok(i) = self.find(key.0, key.1) {
            self.services[i].version = self.next_version();
        }
        Some(old)
    }

    /// Keeps the health records `keep` returns a value for, with the
    /// `inhibit` it returns (a reload's checks and `inhibit_on_failure`);
    /// drops the others, whose servers are then up as far as checks go.
    pub fn retain_health(&mut self, mut keep: impl FnMut(&HealthKey) -> Option<bool>) {
        let mut changed = Vec::new();
        self.health.retain(|k, h| match keep(k) {
            Some(inhibit) => {
                if h.inhibit != inhibit {
                    h.inhibit = inhibit;
                    if !h.up {
                        changed.push(*k);
                    }
                }
                true
            }
            None => {
                if *h != Health::UP {
                    changed.push(*k);
                }
                false
            }
        });
        for k in changed {
            if let Ok(i) = self.find(k.0, k.1) {
                self.services[i].version = self.next_version();
            }
        }
    }

    /// Makes `sorry` the sorry server of service `proto` `vip` (`None`:
    /// none). An unchanged one keeps its slot, counters and connections.
    pub fn set_sorry(
        &mut self,
        proto: Protocol,
        vip: SocketAddr,
        sorry: Option<&RealConfig>,
    ) -> Result<(), ServiceError> {
        let i = self.find(proto, vip)?;
        let current = self.services[i]
            .dests
            .iter()
            .enumerate()
            .find_map(|(pos, &slot)| {
                let d = self.slots[slot as usize].dest.as_ref()?;
                d.sorry.then_some((pos, slot, &d.cfg))
            });
        match (current, sorry) {
            (None, None) => return Ok(()),
            (Some((_, _, cfg)), Some(new)) if cfg == new => return Ok(()),
            (Some((pos, slot, _)), _) => {
                self.services[i].dests.remove(pos);
                self.release(slot);
            }
            (None, Some(_)) => {}
        }
        if let Some(new) = sorry {
            self.insert_dest(i, new, true)?;
        }
        self.services[i].cfg.sorry_server = sorry.cloned();
        self.services[i].version = self.next_version();
        Ok(())
    }

    /// The sum of the weights of service `svc`'s real servers that are up
    /// (keepalived's `weigh_live_realservers`).
    fn live_weight(&self, svc: &SvcEntry) -> u64 {
        svc.dests
            .iter()
            .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
            .filter(|d| !d.sorry)
            .map(|d| {
                let h = self.health_of(svc.cfg.proto, svc.cfg.vip, d.cfg.addr);
                if h.up {
                    u64::from(h.weight.unwrap_or(d.cfg.weight))
                } else {
                    0
                }
            })
            .sum()
    }

    /// A service's quorum as it starts: held when its live weight reaches
    /// `quorum` (no command runs for it).
    fn init_quorum(&mut self, proto: Protocol, vip: SocketAddr) -> Result<(), ServiceError> {
        let i = self.find(proto, vip)?;
        let sum = self.live_weight(&self.services[i]);
        self.services[i].quorum_up = sum >= u64::from(self.services[i].cfg.quorum);
        Ok(())
    }

    /// Moves every service's quorum as keepalived does
    /// (`update_quorum_state`): gained when the live weight reaches
    /// `quorum + hysteresis`, lost when it is 0 or below `quorum -
    /// hysteresis`. Returns the changes, each with its command to run;
    /// a service with a sorry server changes its scheduling with it.
    pub fn update_quorum(&mut self) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        if self.quorum_seen == self.versions {
            // Nothing changed since: no weight, health or setting moved.
            return out;
        }
        for i in 0..self.services.len() {
            let s = &self.services[i];
            if s.version <= self.quorum_seen {
                // Neither its servers, their health nor its settings
                // moved since the last look: its quorum cannot have.
                continue;
            }
            let sum = self.live_weight(s);
            let (q, h) = (u64::from(s.cfg.quorum), u64::from(s.cfg.hysteresis));
            let up = if s.quorum_up {
                !(sum == 0 || sum < q.saturating_sub(h))
            } else {
                sum >= q + h
            };
            if up == s.quorum_up {
                continue;
            }
            out.push(QuorumChange {
                proto: s.cfg.proto,
                vip: s.cfg.vip,
                up,
                sum,
                quorum: s.cfg.quorum,
                hysteresis: s.cfg.hysteresis,
                command: if up {
                    s.cfg.quorum_up.clone()
                } else {
                    s.cfg.quorum_down.clone()
                },
            });
            let v = self.next_version();
            let s = &mut self.services[i];
            s.quorum_up = up;
            s.version = v;
        }
        self.quorum_seen = self.versions;
        out
    }

    /// Whether service `proto` `vip` has its quorum.
    pub fn has_quorum(&self, proto: Protocol, vip: SocketAddr) -> Option<bool> {
        self.find(proto, vip)
            .ok()
            .map(|i| self.services[i].quorum_up)
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// `dataplane.tunnel_source`: the outer source address of every IPIP
    /// packet, when configured (else each real server's route source).
    pub fn tunnel_source(&self) -> Option<Ipv4Addr> {
        self.tunnel_source
    }

    /// `ipvsadm --set`.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        self.timeouts.set(tcp, tcpfin, udp);
    }

    /// Records how to reach real server address `addr`: out of director
    /// port `port`, to MAC `mac` (its own on the LAN, or the router's).
    /// Returns whether that changed anything (then publish a snapshot).
    pub fn set_next_hop(&mut self, addr: IpAddr, port: u8, mac: [u8; 6]) -> bool {
        self.next_hops.insert(addr, (port, mac)) != Some((port, mac))
    }

    /// Forgets the next hop of `addr` (no route, or its neighbour failed):
    /// its packets are then counted as `no_neighbour` instead of going to a
    /// stale MAC. Returns whether there was one.
    pub fn clear_next_hop(&mut self, addr: IpAddr) -> bool {
        self.next_hops.remove(&addr).is_some()
    }

    /// Records the source address of the kernel's route to real server
    /// address `addr` (RTA_PREFSRC; `None`: the route gives none). Returns
    /// whether that changed anything (then publish a snapshot).
    pub fn set_source(&mut self, addr: IpAddr, src: Option<Ipv4Addr>) -> bool {
        match src {
            Some(s) => self.sources.insert(addr, s) != Some(s),
            None => self.sources.remove(&addr).is_some(),
        }
    }

    /// [`ServiceTable::set_source`] for an IPv6 real server's route.
    pub fn set_source6(&mut self, addr: IpAddr, src: Option<std::net::Ipv6Addr>) -> bool {
        match src {
            Some(s) => self.sources6.insert(addr, s) != Some(s),
            None => self.sources6.remove(&addr).is_some(),
        }
    }

    /// The source of the route to `addr`, as last recorded.
    pub fn source(&self, addr: IpAddr) -> Option<Ipv4Addr> {
        self.sources.get(&addr).copied()
    }

    /// Whether a real server at `addr` is forwarded by tunnel (its packets
    /// need an outer source address).
    pub fn is_tun_addr(&self, addr: IpAddr) -> bool {
        self.addrs.get(&addr).is_some_and(|u| u.tun > 0)
    }

    /// Whether some real server of the table has address `addr`.
    pub fn has_dest_addr(&self, addr: IpAddr) -> bool {
        self.addrs.contains_key(&addr)
    }

    /// The IPv4 addresses of every real server forwarded by tunnel (their
    /// packets need an outer source address): [`ServiceTable::is_tun_addr`]
    /// for all addresses at once.
    pub fn tun_addrs(&self) -> std::collections::HashSet<Ipv4Addr> {
        self.addrs
            .iter()
            .filter(|(_, u)| u.tun > 0)
            .filter_map(|(a, _)| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// Every real server address, once each, in no particular order: what
    /// the next-hop resolver must keep resolved.
    pub fn dest_addrs(&self) -> Vec<IpAddr> {
        self.addrs.keys().copied().collect()
    }

    /// Changes whenever [`ServiceTable::steer_rules`] may have: equal
    /// epochs of a table (and of its clones), equal rules.
    pub fn steer_epoch(&self) -> u64 {
        self.steer_epoch
    }

    /// What the XDP program must send to the workers: every virtual
    /// service as (IP protocol, VIP, port), and every NAT real server as
    /// (IP protocol, address, port), whose replies come back through us;
    /// each family in its own maps.
    pub fn steer_rules(&self) -> SteerRules {
        let mut keys = SteerRules::default();
        for svc in &self.services {
            let proto = ip_proto(svc.cfg.proto);
            keys.add_vip(proto, svc.cfg.vip.ip(), svc.cfg.vip.port());
            for &slot in &svc.dests {
                let Some(d) = &self.slots[slot as usize].dest else {
                    continue;
                };
                if d.cfg.forward == Forward::Nat {
                    keys.add_nat_real(proto, d.cfg.addr.ip(), d.cfg.addr.port());
                }
            }
        }
        // FTP: data connections use other ports of the VIP and of the
        // NAT real servers than the service's, so every TCP port of those
        // is the forwarder's: the VIP of a persistent port-21 service
        // (see `Snapshot::service_v4`) or of a NAT service with the
        // helper, and that service's NAT real servers.
        let tcp = ip_proto(Protocol::Tcp);
        for svc in &self.services {
            if svc.cfg.proto != Protocol::Tcp {
                continue;
            }
            let port = svc.cfg.vip.port();
            let helper = port == 0 || self.ftp_ports.contains(&port);
            let mut nat = false;
            for &slot in &svc.dests {
                if let Some(d) = &self.slots[slot as usize].dest
                    && d.cfg.forward == Forward::Nat
                    && helper
                {
                    keys.add_nat_real(tcp, d.cfg.addr.ip(), 0);
                    nat = true;
                }
            }
            if nat || (port == FTP_PORT && svc.cfg.persistence_timeout > 0) {
                keys.add_vip(tcp, svc.cfg.vip.ip(), 0);
            }
        }
        keys.vips.sort_unstable();
        keys.vips.dedup();
        keys.nat_reals.sort_unstable();
        keys.nat_reals.dedup();
        keys.vips6.sort_unstable();
        keys.vips6.dedup();
        keys.nat_reals6.sort_unstable();
        keys.nat_reals6.dedup();
        keys
    }

    /// Whether `cfg` describes a table these ports and workers can hold:
    /// every check [`ServiceTable::from_config`] makes, nothing changed.
    pub fn check_config(&self, cfg: &Config) -> Result<(), ServiceError> {
        ServiceTable::from_config(cfg, self.ports.clone(), self.workers).map(drop)
    }

    /// Makes the table what `cfg` describes: services and
    /// real servers that are in both keep their counters, connections and
    /// scheduler state (edited in place where their settings changed); the
    /// others are added or deleted. The new configuration is checked in
    /// full first, so an error leaves the table as it was.
    pub fn apply_config(&mut self, cfg: &Config) -> Result<(), ServiceError> {
        self.check_config(cfg)?;
        let c = &cfg.connections;
        self.timeouts
            .set(c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout);
        self.defense = c.defense;
        self.set_expiry(c.expire_nodest_conn, c.expire_quiescent_template);
        let gone: Vec<(Protocol, SocketAddr)> = self
            .services
            .iter()
            .filter(|old| {
                !cfg.services
                    .iter()
                    .any(|s| s.proto == old.cfg.proto && s.vip == old.cfg.vip)
            })
            .map(|old| (old.cfg.proto, old.cfg.vip))
            .collect();
        for (proto, vip) in gone {
            self.del_service(proto, vip)?;
        }
        for s in &cfg.services {
            let Ok(i) = self.find(s.proto, s.vip) else {
                self.add_service(s)?;
                for r in &s.reals {
                    self.add_dest(s.proto, s.vip, r)?;
                }
                self.set_sorry(s.proto, s.vip, s.sorry_server.as_ref())?;
                self.init_quorum(s.proto, s.vip)?;
                continue;
            };
            let old = &self.services[i].cfg;
            let same = old.scheduler == s.scheduler
                && old.persistence_timeout == s.persistence_timeout
                && old.persistence_netmask == s.persistence_netmask
                && old.scheduler_flags == s.scheduler_flags
                && old.mh_table_size == s.mh_table_size
                && old.mh_seed == s.mh_seed;
            if !same {
                self.edit_service(s)?;
            }
            let gone: Vec<SocketAddr> = self.services[i]
                .dests
                .iter()
                .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
                .filter(|d| !d.sorry)
                .map(|d| d.cfg.addr)
                .filter(|a| !s.reals.iter().any(|r| r.addr == *a))
                .collect();
            for addr in gone {
                self.del_dest(s.proto, s.vip, addr)?;
            }
            for r in &s.reals {
                match self.find_dest(i, r.addr) {
                    None => self.add_dest(s.proto, s.vip, r)?,
                    Some((_, slot)) => {
                        let unchanged = self.slots[slot as usize]
                            .dest
                            .as_ref()
                            .is_some_and(|d| d.cfg == *r);
                        if !unchanged {
                            self.edit_dest(s.proto, s.vip, r)?;
                        }
                    }
                }
            }
            self.set_sorry(s.proto, s.vip, s.sorry_server.as_ref())?;
            let q = &mut self.services[i].cfg;
            let quorum = (s.quorum, s.hysteresis, s.sorry_server_inhibit);
            if (q.quorum, q.hysteresis, q.sorry_server_inhibit) != quorum {
                (q.quorum, q.hysteresis, q.sorry_server_inhibit) = quorum;
                self.services[i].version = self.next_version();
            }
            let q = &mut self.services[i].cfg;
            q.quorum_up.clone_from(&s.quorum_up);
            q.quorum_down.clone_from(&s.quorum_down);
        }
        Ok(())
    }

    /// The immutable view the workers will read, its schedulers built
    /// afresh.
    pub fn snapshot(&self) -> Snapshot {
        self.build_snapshot(None, 0)
    }

    /// The view to replace `prev`: a service that keeps its scheduler
    /// keeps the scheduler's state (rr's position, lblc's and lblcr's locality tables),
    /// as IPVS does when servers or settings change. A changed steering
    /// rule is dated at tick 0 ([`ServiceTable::next_snapshot_at`]).
    pub fn next_snapshot(&self, prev: &Snapshot) -> Snapshot {
        self.build_snapshot(Some(prev), 0)
    }

    /// [`ServiceTable::next_snapshot`] at `now` (the workers' clock): when
    /// the steering rule changes, `prev`'s is kept in the new snapshot's
    /// history as superseded at `now`; old rules no connection can need
    /// any more are dropped (`service::steer`).
    pub fn next_snapshot_at(&self, prev: &Snapshot, now: Tick) -> Snapshot {
        self.build_snapshot(Some(prev), now)
    }

    fn build_snapshot(&self, prev: Option<&Snapshot>, now: Tick) -> Snapshot {
        // Health and quorum applied, per slot.
        let mut effective: Vec<Option<Effective>> = vec![None; self.slots.len()];
        for s in &self.services {
            let sorry = self.has_sorry(s);
            for &slot in &s.dests {
                if let Some(d) = &self.slots[slot as usize].dest {
                    effective[slot as usize] = Some(self.effective(s, d, sorry));
                }
            }
        }
        let dests: Box<[Option<Dest>]> = self
            .slots
            .iter()
            .zip(&effective)
            .map(|(s, e)| {
                let d = s.dest.as_ref()?;
                let e = e.unwrap_or(Effective {
                    weight: d.cfg.weight,
                    listed: true,
                    in_service: true,
                });
                let hop = self.next_hops.get(&d.cfg.addr.ip());
                Some(Dest {
                    r: d.r,
                    addr: d.cfg.addr.ip(),
                    port: d.cfg.addr.port(),
                    fwd: d.cfg.forward,
                    weight: e.weight,
                    in_service: e.in_service,
                    last_weight: d.last_weight,
                    upper_threshold: d.cfg.upper_threshold,
                    lower_threshold: d.cfg.lower_threshold,
                    mac: hop.map(|h| h.1),
                    tx_port: hop.map_or(0, |h| h.0),
                    src: self.sources.get(&d.cfg.addr.ip()).copied(),
                    src6: self.sources6.get(&d.cfg.addr.ip()).copied(),
                    counters: Arc::clone(&d.counters),
                })
            })
            .collect();
        let mut v4 = hashbrown::HashMap::with_hasher(Default::default());
        let mut v6 = hashbrown::HashMap::with_hasher(Default::default());
        let services: Box<[Service]> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                match s.cfg.vip.ip() {
                    IpAddr::V4(a) => {
                        v4.insert((ip_proto(s.cfg.proto), a, s.cfg.vip.port()), i as u32);
                    }
                    IpAddr::V6(a) => {
                        v6.insert((ip_proto(s.cfg.proto), a, s.cfg.vip.port()), i as u32);
                    }
                }
                let order: Box<[u32]> = s
                    .dests
                    .iter()
                    .copied()
                    .filter(|&slot| effective[slot as usize].is_some_and(|e| e.listed))
                    .collect();
                let (name, d) = (&s.cfg.scheduler, Dests::new(&order, &dests));
                let before = prev.and_then(|p| same_service(p, s.cfg.proto, s.cfg.vip));
                let sched = match before {
                    // Unchanged: the same scheduler, its state (rr's and
                    // wrr's position, mh's table) and all.
                    Some(b) if b.version == s.version => Arc::clone(&b.sched),
                    Some(b) => Arc::new(
                        Sched::rebuild(name, &d, &params(&s.cfg), &b.sched)
                            .expect("scheduler names are checked when a service is added"),
                    ),
                    None => Arc::new(
                        Sched::build(name, &d, &params(&s.cfg))
                            .expect("scheduler names are checked when a service is added"),
                    ),
                };
                Service {
                    proto: s.cfg.proto,
                    vip: s.cfg.vip.ip(),
                    port: s.cfg.vip.port(),
                    sched,
                    version: s.version,
                    dests: order,
                    persistence_timeout: s.cfg.persistence_timeout,
                    persistence_netmask: s.cfg.persistence_netmask,
                    persistence_prefix6: 128,
                    stats: Arc::clone(&s.stats),
                    has_nat: s.dests.iter().any(|&slot| {
                        dests[slot as usize]
                            .as_ref()
                            .is_some_and(|d| d.fwd == Forward::Nat)
                    }),
                }
            })
            .collect();
        let vips_v4: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState> =
            v4.keys().map(|k| k.1).collect();
        let nat_rips_v4: hashbrown::HashSet<Ipv4Addr, foldhash::fast::FixedState> = dests
            .iter()
            .flatten()
            .filter(|d| d.fwd == Forward::Nat)
            .filter_map(|d| match d.addr {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let vips_v6: hashbrown::HashSet<std::net::Ipv6Addr, foldhash::fast::FixedState> =
            v6.keys().map(|k| k.1).collect();
        let nat_rips_v6: hashbrown::HashSet<std::net::Ipv6Addr, foldhash::fast::FixedState> = dests
            .iter()
            .flatten()
            .filter(|d| d.fwd == Forward::Nat)
            .filter_map(|d| match d.addr {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            })
            .collect();
        let mut ftp_v4 = hashbrown::HashMap::with_hasher(Default::default());
        let mut ftp_v6 = hashbrown::HashMap::with_hasher(Default::default());
        let mut steer_mask = u32::MAX;
        let mut persistent = false;
        let mut ftp_nat = false;
        let mut nat = false;
        for (i, s) in services.iter().enumerate() {
            nat |= s.has_nat;
            let a = match s.vip {
                IpAddr::V4(a) => a,
                // IPv6 services get only their FTP lookup here; workers do
                // not steer IPv6 by client yet.
                IpAddr::V6(a) => {
                    if s.persistence_timeout > 0 && s.proto == Protocol::Tcp && s.port == FTP_PORT {
                        ftp_v6.insert(a, i as u32);
                    }
                    continue;
                }
            };
            if s.persistence_timeout > 0 {
                persistent = true;
                steer_mask &= s.persistence_netmask.to_bits();
                if s.proto == Protocol::Tcp && s.port == FTP_PORT {
                    ftp_v4.insert(a, i as u32);
                }
            }
            if s.proto == Protocol::Tcp
                && s.has_nat
                && (s.port == 0 || self.ftp_ports.contains(&s.port))
            {
                ftp_nat = true;
            }
        }
        let steer_by_client = persistent || ftp_nat;
        let mut steered = hashbrown::HashMap::with_hasher(Default::default());
        for (&k, &i) in &v4 {
            let s = &services[i as usize];
            steered.insert(k, s.has_nat || steer_by_client && s.persistence_timeout > 0);
        }
        let ftp_steered = ftp_v4
            .iter()
            .map(|(&a, &i)| {
                (
                    a,
                    steered[&(ip_proto(Protocol::Tcp), a, services[i as usize].port)],
                )
            })
            .collect();
        let handover = nat || persistent || ftp_nat;
        let steer_keep = services
            .iter()
            .map(|s| s.persistence_timeout)
            .chain(self.timeouts.tcp)
            .chain([self.timeouts.udp, EXPECT_TIMEOUT])
            .max()
            .unwrap_or(0)
            .saturating_add(KEEP_MARGIN);
        let rule = SteerRule::new(
            prev.map_or(0, |p| p.steering.generation + 1),
            steer_by_client,
            steer_mask,
            handover,
            steered,
            ftp_steered,
            vips_v4.clone(),
            nat_rips_v4.clone(),
        );
        let (steering, steer_history) = match prev {
            None => (Arc::new(rule), Box::default()),
            Some(p) => {
                let mut history: Vec<Superseded> = Vec::new();
                let steering = if *p.steering == rule {
                    Arc::clone(&p.steering)
                } else {
                    history.push(Superseded {
                        rule: Arc::clone(&p.steering),
                        at: now,
                        keep: p.steer_keep.max(steer_keep),
                    });
                    Arc::new(rule)
                };
                history.extend(p.steer_history.iter().filter(|h| h.live(now)).map(|h| {
                    Superseded {
                        keep: h.keep.max(steer_keep),
                        ..h.clone()
                    }
                }));
                history.truncate(HISTORY_CAP);
                (steering, history.into_boxed_slice())
            }
        };
        Snapshot {
            ftp_v4,
            ftp_ports: self.ftp_ports.clone().into_boxed_slice(),
            ftp_nat,
            steer_by_client,
            steer_mask,
            handover: handover || !steer_history.is_empty(),
            steering,
            steer_history,
            steer_keep,
            ports: self.ports.clone().into_boxed_slice(),
            tunnel_source: self.tunnel_source,
            timeouts: self.timeouts,
            defense: self.defense,
            expire_nodest_conn: self.expire_nodest_conn,
            expire_quiescent_template: self.expire_quiescent_template,
            services,
            v4,
            dests,
            vips_v4,
            nat_rips_v4,
            v6,
            vips_v6,
            nat_rips_v6,
            ftp_v6,
        }
    }
}

/// The FTP control port, which IPVS treats specially for persistence.
const FTP_PORT: u16 = 21;

#[cfg(test)]
mod tests {
    use super::*;

    /// `last_weight` as `__ip_vs_update_dest` keeps it: the weight a
    /// server was added with, then its latest non-zero weight.
    #[test]
    fn last_weight_is_the_latest_non_zero_weight() {
        let mut t = ServiceTable::new(Vec::new(), None, Timeouts::default());
        let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
        let rip: SocketAddr = "198.18.2.11:80".parse().unwrap();
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "mh"))
            .unwrap();
        let real = |weight| RealConfig {
            addr: rip,
            forward: Forward::Dr,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        let weights = |t: &ServiceTable| {
            let s = t.snapshot();
            let d = s.dests_of(&s.services()[0]).at(0);
            (d.weight, d.last_weight)
        };
        t.add_dest(Protocol::Tcp, vip, &real(3)).unwrap();
        assert_eq!(weights(&t), (3, 3));
        t.edit_dest(Protocol::Tcp, vip, &real(0)).unwrap();
        assert_eq!(weights(&t), (0, 3));
        t.edit_dest(Protocol::Tcp, vip, &real(5)).unwrap();
        assert_eq!(weights(&t), (5, 5));
        t.del_dest(Protocol::Tcp, vip, rip).unwrap();
        t.add_dest(Protocol::Tcp, vip, &real(0)).unwrap();
        assert_eq!(weights(&t), (0, 0));
    }

    /// No `DestRef` is issued twice however often a server is re-added
    /// (`ipvsadm -d` / `-a`, a flapping health check): a slot is reused
    /// until its generations are spent, then retired, so the slots grow by
    /// one per 4095 re-adds.
    #[test]
    fn dest_refs_are_never_reissued() {
        let mut t = ServiceTable::new(Vec::new(), None, Timeouts::default());
        let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "rr"))
            .unwrap();
        let real = |addr: &str| RealConfig {
            addr: addr.parse().unwrap(),
            forward: Forward::Dr,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        // A second server keeps its slot throughout.
        t.add_dest(Protocol::Tcp, vip, &real("198.18.2.12:80"))
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        let rounds = 3 * DestRef::MAX_GENERATION as usize + 10;
        for _ in 0..rounds {
            t.add_dest(Protocol::Tcp, vip, &real("198.18.2.11:80"))
                .unwrap();
            let s = t.snapshot();
            let r = s.dests_of(&s.services()[0]).at(0).r;
            assert!(r.generation() > 0 && r != DestRef(0));
            assert!(seen.insert(r), "{r:?} issued twice");
            t.del_dest(Protocol::Tcp, vip, "198.18.2.11:80".parse().unwrap())
                .unwrap();
        }
        assert_eq!(t.slots.len(), 2 + 3, ".12's, three retired, one free");
        let s = t.snapshot();
        assert_eq!(s.dests_of(&s.services()[0]).len(), 1);
    }

    fn config(text: &str) -> Config {
        Config::from_str_named(text, "test.toml").unwrap()
    }

    const BEFORE: &str = r#"
[dataplane]
interfaces = ["eth1"]
[[services]]
proto = "tcp"
vip = "198.18.1.1:80"
scheduler = "rr"
[[services.reals]]
addr = "198.18.2.11:80"
[[services.reals]]
addr = "198.18.2.12:80"
forward = "nat"
[[services]]
proto = "tcp"
vip = "198.18.1.2:80"
[[services.reals]]
addr = "198.18.2.13:80"
"#;

    /// A reload keeps what stays (the same counters, so the same
    /// connections' bookkeeping), edits what changed, adds and deletes the
    /// rest; and a bad file changes nothing.
    #[test]
    fn apply_config_diffs_services_and_reals() {
        let mut t = ServiceTable::from_config(&config(BEFORE), Vec::new(), 1).unwrap();
        let counters = |t: &ServiceTable, addr: &str| {
            let s = t.snapshot();
            let addr: SocketAddr = addr.parse().unwrap();
            s.services()
                .iter()
                .flat_map(|svc| s.dests_of(svc).iter().cloned().collect::<Vec<_>>())
                .find(|d| SocketAddr::new(d.addr, d.port) == addr)
                .map(|d| (Arc::as_ptr(&d.counters), d.weight, d.fwd))
        };
        let kept = counters(&t, "198.18.2.11:80").unwrap();
        let after = BEFORE
            .replace("198.18.1.2:80", "198.18.1.3:80")
            .replace("forward = \"nat\"", "forward = \"nat\"\nweight = 7")
            .replace("scheduler = \"rr\"", "scheduler = \"wrr\"");
        t.apply_config(&config(&after)).unwrap();
        let s = t.snapshot();
        let vips: Vec<String> = s
            .services()
            .iter()
            .map(|v| format!("{}:{} {}", v.vip, v.port, v.sched.name()))
            .collect();
        assert_eq!(vips, ["198.18.1.1:80 wrr", "198.18.1.3:80 wlc"]);
        assert_eq!(counters(&t, "198.18.2.11:80").unwrap(), kept);
        assert_eq!(counters(&t, "198.18.2.12:80").unwrap().1, 7);
        assert_eq!(
            t.steer_rules(),
            SteerRules {
                vips: vec![
                    (6, "198.18.1.1".parse().unwrap(), 80),
                    (6, "198.18.1.3".parse().unwrap(), 80)
                ],
                nat_reals: vec![(6, "198.18.2.12".parse().unwrap(), 80)],
                ..SteerRules::default()
            }
        );
        // Valid as a file, refused by the table: nothing of it is applied,
        // not even the deletion of 198.18.1.3 that comes before it.
        let bad = BEFORE
            .replace("198.18.1.2:80", "[2001:db8::1]:80")
            .replace("198.18.2.13:80", "[2001:db8::13]:80");
        let before = t.steer_rules();
        assert!(t.apply_config(&config(&bad)).is_err());
        assert_eq!(t.steer_rules(), before);
    }

    /// Workers look for a frame's owner only where it matters: a NAT real
    /// server (replies) or persistence (templates) somewhere.
    #[test]
    fn handover_only_with_nat_or_persistence() {
        let dr = BEFORE.replace("forward = \"nat\"", "forward = \"dr\"");
        let t = ServiceTable::from_config(&config(&dr), Vec::new(), 2).unwrap();
        assert!(!t.snapshot().handover);
        let t = ServiceTable::from_config(&config(BEFORE), Vec::new(), 2).unwrap();
        assert!(t.snapshot().handover);
        let persistent = dr.replace(
            "scheduler = \"rr\"",
            "scheduler = \"rr\"\npersistence_timeout = 60",
        );
        let t = ServiceTable::from_config(&config(&persistent), Vec::new(), 2).unwrap();
        assert!(t.snapshot().handover);
    }

    const SORRY: &str = r#"
[dataplane]
interfaces = ["eth1"]
[[services]]
proto = "tcp"
vip = "198.18.1.1:80"
scheduler = "wrr"
sorry_server = { addr = "198.18.2.99:80" }
quorum = 3
hysteresis = 1
quorum_up = "/bin/echo up"
quorum_down = "/bin/echo 'quorum down'"
[[services.reals]]
addr = "198.18.2.11:80"
weight = 2
[[services.reals]]
addr = "198.18.2.12:80"
weight = 2
"#;

    fn key(n: u8) -> HealthKey {
        (
            Protocol::Tcp,
            "198.18.1.1:80".parse().unwrap(),
            SocketAddr::from((Ipv4Addr::new(198, 18, 2, n), 80)),
        )
    }

    const DOWN: Health = Health {
        up: false,
        weight: None,
        inhibit: false,
    };

    /// (address, weight) as `-L` lists them, and the scheduler's order.
    fn listed(t: &ServiceTable) -> (Vec<(String, u32)>, Vec<String>) {
        let l = t
            .services()
            .next()
            .unwrap()
            .dests
            .iter()
            .map(|d| (d.cfg.addr.to_string(), d.weight))
            .collect();
        let s = t.snapshot();
        let svc = &s.services()[0];
        let order = s
            .dests_of(svc)
            .iter()
            .map(|d| format!("{}={}", d.addr, d.weight))
            .collect();
        (l, order)
    }

    /// keepalived's quorum with hysteresis: lost below quorum - hysteresis
    /// (or at 0), gained at quorum + hysteresis; while lost the sorry
    /// server takes the new connections and the reals still up are at 0.
    #[test]
    fn quorum_and_sorry_server() {
        let mut t = ServiceTable::from_config(&config(SORRY), Vec::new(), 1).unwrap();
        let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
        assert_eq!(t.has_quorum(Protocol::Tcp, vip), Some(true), "4 >= 3");
        assert_eq!(
            listed(&t).0,
            [("198.18.2.12:80".into(), 2), ("198.18.2.11:80".into(), 2)]
        );
        assert!(t.update_quorum().is_empty());
        // 2 is not below 3 - 1: kept.
        t.set_health(key(11), DOWN);
        assert!(t.update_quorum().is_empty());
        assert_eq!(listed(&t).0, [("198.18.2.12:80".into(), 2)]);
        // A dynamic weight of 1 is: lost, the sorry server comes in.
        t.set_health(
            key(12),
            Health {
                weight: Some(1),
                ..Health::UP
            },
        );
        let q = t.update_quorum();
        assert_eq!(q.len(), 1);
        assert!(!q[0].up && q[0].sum == 1);
        assert_eq!(
            q[0].command.as_ref().unwrap().argv,
            ["/bin/echo", "quorum down"]
        );
        assert_eq!(
            listed(&t),
            (
                vec![("198.18.2.99:80".into(), 1), ("198.18.2.12:80".into(), 0)],
                vec!["198.18.2.99=1".into(), "198.18.2.12=0".into()]
            )
        );
        // Back to 3: not yet (needs 3 + 1); 4: gained, the sorry server out.
        t.set_health(key(12), Health::UP);
        t.set_health(
            key(11),
            Health {
                weight: Some(1),
                ..Health::UP
            },
        );
        assert!(t.update_quorum().is_empty());
        t.set_health(key(11), Health::UP);
        let q = t.update_quorum();
        assert!(q.len() == 1 && q[0].up && q[0].sum == 4);
        assert_eq!(q[0].command.as_ref().unwrap().argv[1], "up");
        assert_eq!(listed(&t).1, ["198.18.2.12=2", "198.18.2.11=2"]);
        // sorry_server_inhibit: listed at 0 while not needed.
        let inhibit = SORRY.replace("quorum = 3", "quorum = 3\nsorry_server_inhibit = true");
        t.apply_config(&config(&inhibit)).unwrap();
        assert_eq!(listed(&t).0[0], ("198.18.2.99:80".into(), 0));
    }

    /// `-e` and the health state: the configured weight changes, a down
    /// server stays out and returns with it; a dynamic weight yields to
    /// `-e` until the next verdict. A reload keeps the health state.
    #[test]
    fn edits_and_reloads_combine_with_health() {
        let mut t = ServiceTable::from_config(&config(SORRY), Vec::new(), 1).unwrap();
        let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
        let real = |n: u8, weight| RealConfig {
            addr: SocketAddr::from((Ipv4Addr::new(198, 18, 2, n), 80)),
            forward: Forward::Dr,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        t.set_health(key(11), DOWN);
        t.edit_dest(Protocol::Tcp, vip, &real(11, 5)).unwrap();
        assert_eq!(listed(&t).0, [("198.18.2.12:80".into(), 2)]);
        t.set_health(
            key(12),
            Health {
                weight: Some(7),
                ..Health::UP
            },
        );
        assert_eq!(listed(&t).0, [("198.18.2.12:80".into(), 7)]);
        t.edit_dest(Protocol::Tcp, vip, &real(12, 3)).unwrap();
        assert_eq!(listed(&t).0, [("198.18.2.12:80".into(), 3)]);
        // A reload that changes nothing of .11 leaves it down.
        t.apply_config(&config(&SORRY.replace("weight = 2\n[[", "weight = 9\n[[")))
            .unwrap();
        assert_eq!(listed(&t).0, [("198.18.2.12:80".into(), 2)]);
        assert!(!t.health_of(key(11).0, key(11).1, key(11).2).up);
        t.set_health(key(11), Health::UP);
        assert_eq!(listed(&t).0[1], ("198.18.2.11:80".into(), 9));
        // A record the reload no longer plans is dropped: up again.
        t.set_health(key(12), DOWN);
        t.retain_health(|k| (k.2 != key(12).2).then_some(false));
        assert_eq!(listed(&t).0.len(), 2);
    }

    /// One edit of [`incremental_state_equals_a_full_recount`].
    #[derive(Debug, Clone)]
    enum Op {
        AddService(u8),
        /// Its persistence timeout, in 300 s.
        EditService(u8, u32),
        DelService(u8),
        AddDest(u8, u8, Forward),
        EditDest(u8, u8, Forward, u32),
        DelDest(u8, u8),
        Sorry(u8, Option<u8>),
        Health(u8, u8, bool),
        Clear,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let fwd = prop::sample::select(vec![Forward::Dr, Forward::Nat, Forward::Tun]);
        prop_oneof![
            3 => (0u8..4).prop_map(Op::AddService),
            1 => (0u8..4, 0u32..2).prop_map(|(s, t)| Op::EditService(s, t)),
            1 => (0u8..4).prop_map(Op::DelService),
            6 => (0u8..4, 0u8..5, fwd.clone()).prop_map(|(s, r, f)| Op::AddDest(s, r, f)),
            3 => (0u8..4, 0u8..5, fwd, 0u32..3).prop_map(|(s, r, f, w)| Op::EditDest(s, r, f, w)),
            3 => (0u8..4, 0u8..5).prop_map(|(s, r)| Op::DelDest(s, r)),
            1 => (0u8..4, proptest::option::of(0u8..5)).prop_map(|(s, r)| Op::Sorry(s, r)),
            3 => (0u8..4, 0u8..5, any::<bool>()).prop_map(|(s, r, up)| Op::Health(s, r, up)),
            1 => Just(Op::Clear),
        ]
    }

    proptest::proptest! {
        /// Whatever the edits, the per-address counts are what a pass over
        /// the slots counts, and `update_quorum`, which looks only at the
        /// services changed since its last look, finds what a look at
        /// every service finds.
        #[test]
        fn incremental_state_equals_a_full_recount(
            ops in proptest::collection::vec(op(), 1..80)
        ) {
            let mut t = ServiceTable::new(Vec::new(), None, Timeouts::default());
            // The odd services are on port 21, which has FTP's steering
            // keys.
            let vip = |s: u8| {
                let port = if s % 2 == 1 { 21 } else { 80 };
                SocketAddr::from((Ipv4Addr::new(198, 18, 1, s), port))
            };
            let real = |r: u8, forward, weight| RealConfig {
                // Two ports per address: a shared address counts twice.
                addr: SocketAddr::from((Ipv4Addr::new(198, 18, 2, r / 2), 80 + u16::from(r % 2))),
                forward,
                weight,
                upper_threshold: 0,
                lower_threshold: 0,
                health: Default::default(),
            };
            let mut steer = (t.steer_epoch(), t.steer_rules());
            for op in ops {
                let tcp = Protocol::Tcp;
                let _ = match op {
                    Op::AddService(s) => {
                        let mut cfg = ServiceConfig::new(tcp, vip(s), "wrr");
                        cfg.quorum = 2;
                        cfg.hysteresis = 1;
                        t.add_service(&cfg)
                    }
                    Op::EditService(s, timeout) => {
                        let mut cfg = ServiceConfig::new(tcp, vip(s), "wrr");
                        cfg.persistence_timeout = timeout * 300;
                        t.edit_service(&cfg)
                    }
                    Op::DelService(s) => t.del_service(tcp, vip(s)),
                    Op::AddDest(s, r, f) => t.add_dest(tcp, vip(s), &real(r, f, 1)),
                    Op::EditDest(s, r, f, w) => t.edit_dest(tcp, vip(s), &real(r, f, w)),
                    Op::DelDest(s, r) => t.del_dest(tcp, vip(s), real(r, Forward::Dr, 1).addr),
                    Op::Sorry(s, r) => {
                        t.set_sorry(tcp, vip(s), r.map(|r| real(r, Forward::Dr, 1)).as_ref())
                    }
                    Op::Health(s, r, up) => {
                        let h = Health { up, ..Health::UP };
                        t.set_health((tcp, vip(s), real(r, Forward::Dr, 1).addr), h);
                        Ok(())
                    }
                    Op::Clear => {
                        t.clear();
                        Ok(())
                    }
                };
                let mut full: AddrMap<IpAddr, AddrUse> = AddrMap::default();
                for d in t.slots.iter().filter_map(|s| s.dest.as_ref()) {
                    let u = full.entry(d.cfg.addr.ip()).or_default();
                    u.dests += 1;
                    u.tun += u32::from(d.cfg.forward == Forward::Tun);
                }
                proptest::prop_assert_eq!(&t.addrs, &full, "after {:?}", op);
                let index: AddrMap<(Protocol, SocketAddr), usize> = t
                    .services
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ((s.cfg.proto, s.cfg.vip), i))
                    .collect();
                proptest::prop_assert_eq!(&t.index, &index, "after {:?}", op);
                let rules = t.steer_rules();
                if t.steer_epoch() == steer.0 {
                    proptest::prop_assert_eq!(&rules, &steer.1, "{:?} changed them, not the epoch", op);
                }
                steer = (t.steer_epoch(), rules);
                let mut every = t.clone();
                every.quorum_seen = 0;
                let quorum = |t: &ServiceTable| {
                    t.services.iter().map(|s| s.quorum_up).collect::<Vec<_>>()
                };
                proptest::prop_assert_eq!(t.update_quorum(), every.update_quorum(), "after {:?}", op);
                proptest::prop_assert_eq!(quorum(&t), quorum(&every));
            }
        }
    }
}
