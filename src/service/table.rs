//! The control side's editable service table, and how it becomes a
//! [`Snapshot`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
/// all ports) and of the NAT real servers; see [`ServiceTable::steer_rules`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteerRules {
    pub vips: Vec<(u8, Ipv4Addr, u16)>,
    pub nat_reals: Vec<(u8, Ipv4Addr, u16)>,
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
}

fn params(cfg: &ServiceConfig) -> Params {
    Params {
        flags: cfg.scheduler_flags,
        mh_table_size: cfg.mh_table_size,
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

/// A real server as the control side lists it.
pub struct DestInfo<'a> {
    pub cfg: &'a RealConfig,
    pub counters: &'a Arc<DestCounters>,
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
}

#[derive(Clone)]
struct DestEntry {
    cfg: RealConfig,
    /// See [`Dest::last_weight`].
    last_weight: u32,
    r: DestRef,
    counters: Arc<DestCounters>,
}

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
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Next hop of each real server address: director port and MAC.
    next_hops: HashMap<IpAddr, (u8, [u8; 6])>,
    /// Source address of the kernel's route to each real server address:
    /// the outer source of its TUN packets unless `tunnel_source` is set.
    sources: HashMap<IpAddr, Ipv4Addr>,
    /// The last version handed to a service.
    versions: u64,
    /// Workers that count traffic.
    workers: usize,
    /// `connections.ftp_ports`.
    ftp_ports: Vec<u16>,
    /// `connections`' flood defences.
    defense: crate::conn::Defense,
}

impl ServiceTable {
    pub fn new(ports: Vec<Port>, tunnel_source: Option<Ipv4Addr>, timeouts: Timeouts) -> Self {
        ServiceTable {
            ports,
            tunnel_source,
            timeouts,
            services: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_hops: HashMap::new(),
            sources: HashMap::new(),
            versions: 0,
            workers: 1,
            ftp_ports: vec![crate::config::Connections::DEFAULT_FTP_PORT],
            defense: crate::conn::Defense::default(),
        }
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
        for s in &cfg.services {
            t.add_service(s)?;
            for r in &s.reals {
                t.add_dest(s.proto, s.vip, r)?;
            }
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
        self.services
            .iter()
            .position(|s| s.cfg.proto == proto && s.cfg.vip == vip)
            .ok_or(ServiceError::NoService { proto, vip })
    }

    fn check_service(cfg: &ServiceConfig) -> Result<(), ServiceError> {
        if !cfg.vip.is_ipv4() {
            return Err(ServiceError::NotImplemented("IPv6 virtual services"));
        }
        Sched::build(&cfg.scheduler, &Dests::new(&[], &[]), &params(cfg))?;
        Ok(())
    }

    /// `ipvsadm -A`. The service's `reals` are ignored: add them with
    /// [`ServiceTable::add_dest`].
    pub fn add_service(&mut self, cfg: &ServiceConfig) -> Result<(), ServiceError> {
        if self.find(cfg.proto, cfg.vip).is_ok() {
            return Err(ServiceError::ServiceExists {
                proto: cfg.proto,
                vip: cfg.vip,
            });
        }
        Self::check_service(cfg)?;
        let version = self.next_version();
        self.services.push(SvcEntry {
            cfg: ServiceConfig {
                reals: Vec::new(),
                ..cfg.clone()
            },
            dests: Vec::new(),
            version,
            stats: Arc::new(Stats::new(self.workers)),
        });
        Ok(())
    }

    /// `ipvsadm -E`: scheduler and persistence of an existing service.
    pub fn edit_service(&mut self, cfg: &ServiceConfig) -> Result<(), ServiceError> {
        let i = self.find(cfg.proto, cfg.vip)?;
        Self::check_service(cfg)?;
        self.services[i].version = self.next_version();
        let s = &mut self.services[i].cfg;
        s.scheduler.clone_from(&cfg.scheduler);
        s.persistence_timeout = cfg.persistence_timeout;
        s.persistence_netmask = cfg.persistence_netmask;
        s.scheduler_flags = cfg.scheduler_flags;
        s.mh_table_size = cfg.mh_table_size;
        Ok(())
    }

    /// `ipvsadm -D`: the service and its real servers.
    pub fn del_service(&mut self, proto: Protocol, vip: SocketAddr) -> Result<(), ServiceError> {
        let i = self.find(proto, vip)?;
        for slot in self.services.remove(i).dests {
            self.release(slot);
        }
        Ok(())
    }

    fn find_dest(&self, svc: usize, addr: SocketAddr) -> Option<(usize, u32)> {
        self.services[svc]
            .dests
            .iter()
            .enumerate()
            .find_map(|(pos, &slot)| {
                let d = self.slots[slot as usize].dest.as_ref()?;
                (d.cfg.addr == addr).then_some((pos, slot))
            })
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
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < DestRef::MAX_SLOTS as usize => {
                self.slots.push(Slot::default());
                self.slots.len() as u32 - 1
            }
            None => return Err(ServiceError::TooManyDests),
        };
        let s = &mut self.slots[slot as usize];
        // Never wraps: `release` retires a slot at its last generation.
        s.generation += 1;
        s.dest = Some(DestEntry {
            cfg: real.clone(),
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
    pub fn edit_dest(
        &mut self,
        proto: Protocol,
        vip: SocketAddr,
        real: &RealConfig,
    ) -> Result<(), ServiceError> {
        let (svc, _, slot) = self.locate(proto, vip, real.addr)?;
        self.services[svc].version = self.next_version();
        if let Some(d) = self.slots[slot as usize].dest.as_mut() {
            // As `__ip_vs_update_dest`: keep the latest non-zero weight.
            if real.weight != 0 {
                d.last_weight = real.weight;
            }
            d.cfg = real.clone();
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
        s.dest = None;
        if s.generation < DestRef::MAX_GENERATION {
            self.free.push(slot);
        }
    }

    /// `ipvsadm -C`: every service and real server.
    pub fn clear(&mut self) {
        while let Some(s) = self.services.pop() {
            for slot in s.dests {
                self.release(slot);
            }
        }
    }

    /// Services in the order they were added, each with its real servers
    /// in IPVS list order (newest first).
    pub fn services(&self) -> impl Iterator<Item = ServiceInfo<'_>> {
        self.services.iter().map(|s| ServiceInfo {
            cfg: &s.cfg,
            stats: &s.stats,
            dests: s
                .dests
                .iter()
                .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
                .map(|d| DestInfo {
                    cfg: &d.cfg,
                    counters: &d.counters,
                })
                .collect(),
        })
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

    /// The source of the route to `addr`, as last recorded.
    pub fn source(&self, addr: IpAddr) -> Option<Ipv4Addr> {
        self.sources.get(&addr).copied()
    }

    /// Whether a real server at `addr` is forwarded by tunnel (its packets
    /// need an outer source address).
    pub fn is_tun_addr(&self, addr: IpAddr) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.dest.as_ref())
            .any(|d| d.cfg.forward == Forward::Tun && d.cfg.addr.ip() == addr)
    }

    /// Every real server address, once each, in no particular order: what
    /// the next-hop resolver must keep resolved.
    pub fn dest_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .slots
            .iter()
            .filter_map(|s| s.dest.as_ref().map(|d| d.cfg.addr.ip()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// What the XDP program must send to the workers: every IPv4 virtual
    /// service as (IP protocol, VIP, port), and every NAT real server as
    /// (IP protocol, address, port), whose replies come back through us.
    pub fn steer_rules(&self) -> SteerRules {
        let mut keys = SteerRules::default();
        for svc in &self.services {
            let IpAddr::V4(vip) = svc.cfg.vip.ip() else {
                continue;
            };
            let proto = ip_proto(svc.cfg.proto);
            keys.vips.push((proto, vip, svc.cfg.vip.port()));
            for &slot in &svc.dests {
                let Some(d) = &self.slots[slot as usize].dest else {
                    continue;
                };
                if let (Forward::Nat, IpAddr::V4(a)) = (d.cfg.forward, d.cfg.addr.ip()) {
                    keys.nat_reals.push((proto, a, d.cfg.addr.port()));
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
            let (IpAddr::V4(vip), Protocol::Tcp) = (svc.cfg.vip.ip(), svc.cfg.proto) else {
                continue;
            };
            let port = svc.cfg.vip.port();
            let helper = port == 0 || self.ftp_ports.contains(&port);
            let mut nat = false;
            for &slot in &svc.dests {
                if let Some(d) = &self.slots[slot as usize].dest
                    && let (Forward::Nat, IpAddr::V4(a)) = (d.cfg.forward, d.cfg.addr.ip())
                    && helper
                {
                    keys.nat_reals.push((tcp, a, 0));
                    nat = true;
                }
            }
            if nat || (port == FTP_PORT && svc.cfg.persistence_timeout > 0) {
                keys.vips.push((tcp, vip, 0));
            }
        }
        keys.vips.sort_unstable();
        keys.vips.dedup();
        keys.nat_reals.sort_unstable();
        keys.nat_reals.dedup();
        keys
    }

    /// Makes the table what `cfg` describes, as a reload does: services and
    /// real servers that are in both keep their counters, connections and
    /// scheduler state (edited in place where their settings changed); the
    /// others are added or deleted. The new configuration is checked in
    /// full first, so an error leaves the table as it was.
    pub fn apply_config(&mut self, cfg: &Config) -> Result<(), ServiceError> {
        ServiceTable::from_config(cfg, self.ports.clone(), self.workers)?;
        let c = &cfg.connections;
        self.timeouts
            .set(c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout);
        self.defense = c.defense;
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
                continue;
            };
            let old = &self.services[i].cfg;
            let same = old.scheduler == s.scheduler
                && old.persistence_timeout == s.persistence_timeout
                && old.persistence_netmask == s.persistence_netmask
                && old.scheduler_flags == s.scheduler_flags
                && old.mh_table_size == s.mh_table_size;
            if !same {
                self.edit_service(s)?;
            }
            let gone: Vec<SocketAddr> = self.services[i]
                .dests
                .iter()
                .filter_map(|&slot| self.slots[slot as usize].dest.as_ref())
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
        let dests: Box<[Option<Dest>]> = self
            .slots
            .iter()
            .map(|s| {
                let d = s.dest.as_ref()?;
                let hop = self.next_hops.get(&d.cfg.addr.ip());
                Some(Dest {
                    r: d.r,
                    addr: d.cfg.addr.ip(),
                    port: d.cfg.addr.port(),
                    fwd: d.cfg.forward,
                    weight: d.cfg.weight,
                    last_weight: d.last_weight,
                    upper_threshold: d.cfg.upper_threshold,
                    lower_threshold: d.cfg.lower_threshold,
                    mac: hop.map(|h| h.1),
                    tx_port: hop.map_or(0, |h| h.0),
                    src: self.sources.get(&d.cfg.addr.ip()).copied(),
                    counters: Arc::clone(&d.counters),
                })
            })
            .collect();
        let mut v4 = hashbrown::HashMap::with_hasher(Default::default());
        let services: Box<[Service]> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if let IpAddr::V4(a) = s.cfg.vip.ip() {
                    v4.insert((ip_proto(s.cfg.proto), a, s.cfg.vip.port()), i as u32);
                }
                let order = s.dests.clone().into_boxed_slice();
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
        let mut ftp_v4 = hashbrown::HashMap::with_hasher(Default::default());
        let mut steer_mask = u32::MAX;
        let mut persistent = false;
        let mut ftp_nat = false;
        let mut nat = false;
        for (i, s) in services.iter().enumerate() {
            nat |= s.has_nat;
            let IpAddr::V4(a) = s.vip else { continue };
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
            services,
            v4,
            dests,
            vips_v4,
            nat_rips_v4,
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
}
