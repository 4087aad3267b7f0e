//! The control thread's state: the service table as the operator edits it,
//! and what the listings need beside it — the rate estimates of `--rate`,
//! the baselines of `-Z`, the connection table's size.
//!
//! [`Control::handle`] applies one [`Request`]: it validates everything
//! (the socket is an interface of its own, not a private channel of
//! `xdpvsadm`), changes nothing on error, and answers in ipvsadm's words.
//! A `-R` batch is tried on a clone of the table and kept only if every
//! edit in it succeeds.
//!
//! Traffic counters are written by the workers, each its own line, and are
//! never reset: `-Z` remembers the current totals as a baseline that
//! listings subtract (IPVS zeroes its counters in place, but ours have one
//! writer per line and the control thread is not it).
//!
//! Rates are estimated as Linux IPVS does (`ip_vs_est.c`): every two
//! seconds, the change of each counter over the interval, scaled (×2^10 per
//! second for connections and packets, ×2^5 for bytes), is folded into an
//! exponentially weighted moving average with weight 1/4; a listing shows
//! the average rounded back to units per second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::rules::{self, Field};
use crate::config::{Connections, Problem, RealConfig, ServiceConfig};
use crate::conn::TcpState;
use crate::ctrl::proto::{
    CONNS_PER_LINE, ConnView, CounterView, DestSpec, DestView, Rates, Reply, Request, Response,
    ServiceKey, ServiceSpec, ServiceView,
};
use crate::ctrl::server::{Answer, ConnStream, StreamPoll};
use crate::dest::{DestCounters, Stats, Totals};
use crate::service::{
    CounterSets, Health, HealthKey, QuorumChange, ServiceError, ServiceInfo, ServiceTable,
    SteerLimits, SteerRules,
};
use crate::stats::WorkerStats;

/// How often [`Control::tick`] samples the counters (IPVS: 2 s).
pub const ESTIMATOR_INTERVAL: Duration = Duration::from_secs(2);

/// Where `-L -c` gets the connection entries: the daemon asks its workers.
pub trait ConnSource {
    /// Every entry at once.
    fn conns(&mut self) -> Vec<ConnView>;
    /// The entries as a stream the control socket sends a line at a time
    /// ([`Control::answer`]); by default [`ConnSource::conns`], cut up.
    fn stream(&mut self) -> Box<dyn ConnStream> {
        Box::new(FixedConns(self.conns().into_iter()))
    }
    /// Each worker's statistics (`--counters`), in worker order.
    fn counters(&mut self) -> Vec<WorkerStats> {
        Vec::new()
    }
}

/// [`ConnSource::stream`]'s default: a list handed out
/// [`CONNS_PER_LINE`] entries at a time.
struct FixedConns(std::vec::IntoIter<ConnView>);

impl ConnStream for FixedConns {
    fn poll(&mut self) -> StreamPoll {
        let part: Vec<ConnView> = self.0.by_ref().take(CONNS_PER_LINE).collect();
        if part.is_empty() {
            return StreamPoll::End;
        }
        StreamPoll::Part(part)
    }
}

/// A source with no connections (no workers, or tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConns;

impl ConnSource for NoConns {
    fn conns(&mut self) -> Vec<ConnView> {
        Vec::new()
    }
}

/// A fixed list of entries.
impl ConnSource for Vec<ConnView> {
    fn conns(&mut self) -> Vec<ConnView> {
        self.clone()
    }
}

/// One counter set's estimator, in IPVS's fixed point (`struct
/// ip_vs_estimator`).
#[derive(Debug, Clone, Copy, Default)]
struct Estimator {
    last: Totals,
    cps: i128,
    inpps: i128,
    outpps: i128,
    inbps: i128,
    outbps: i128,
}

impl Estimator {
    fn new(now: Totals) -> Estimator {
        Estimator {
            last: now,
            ..Estimator::default()
        }
    }

    /// `estimation_timer`: one two-second sample.
    fn sample(&mut self, now: Totals) {
        fn step(avg: &mut i128, last: u64, now: u64, shift: u32) {
            let rate = i128::from(now.wrapping_sub(last)) << shift;
            *avg += (rate - *avg) >> 2;
        }
        let l = self.last;
        step(&mut self.cps, l.conns, now.conns, 9);
        step(&mut self.inpps, l.inpkts, now.inpkts, 9);
        step(&mut self.outpps, l.outpkts, now.outpkts, 9);
        step(&mut self.inbps, l.inbytes, now.inbytes, 4);
        step(&mut self.outbps, l.outbytes, now.outbytes, 4);
        self.last = now;
    }

    /// `ip_vs_read_estimator`: per second, rounded.
    fn rates(&self) -> Rates {
        let read = |avg: i128, round: i128, shift: u32| {
            u64::try_from((avg + round) >> shift).unwrap_or(if avg < 0 { 0 } else { u64::MAX })
        };
        Rates {
            cps: read(self.cps, 0x1ff, 10),
            inpps: read(self.inpps, 0x1ff, 10),
            outpps: read(self.outpps, 0x1ff, 10),
            inbps: read(self.inbps, 0xf, 5),
            outbps: read(self.outbps, 0xf, 5),
        }
    }
}

/// What the control side remembers about one counter set. Holding the
/// `Arc` keeps its address from being reused while the entry exists, so
/// the address identifies the set.
struct Tracked<T> {
    _keep: Arc<T>,
    base: Totals,
    est: Estimator,
}

impl<T> Tracked<T> {
    fn new(keep: &Arc<T>, now: Totals) -> Self {
        Tracked {
            _keep: Arc::clone(keep),
            base: Totals::default(),
            est: Estimator::new(now),
        }
    }

    fn zero(&mut self, now: Totals) {
        self.base = now;
        self.est = Estimator::new(now);
    }

    fn shown(&self, now: Totals) -> Totals {
        let b = self.base;
        Totals {
            conns: now.conns.wrapping_sub(b.conns),
            inpkts: now.inpkts.wrapping_sub(b.inpkts),
            outpkts: now.outpkts.wrapping_sub(b.outpkts),
            inbytes: now.inbytes.wrapping_sub(b.inbytes),
            outbytes: now.outbytes.wrapping_sub(b.outbytes),
        }
    }
}

fn add(a: Totals, b: Totals) -> Totals {
    Totals {
        conns: a.conns.wrapping_add(b.conns),
        inpkts: a.inpkts.wrapping_add(b.inpkts),
        outpkts: a.outpkts.wrapping_add(b.outpkts),
        inbytes: a.inbytes.wrapping_add(b.inbytes),
        outbytes: a.outbytes.wrapping_add(b.outbytes),
    }
}

fn key<T>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as usize
}

/// The counter sets an edit can add or remove, as found in the table
/// before and after it: one real server's, a service's and all its
/// servers', or (`All`) any.
enum Scope {
    Nothing,
    Service(ServiceKey),
    Dest(ServiceKey, SocketAddr),
    All,
}

impl Scope {
    fn of(req: &Request) -> Scope {
        match req {
            Request::AddService(spec) => Scope::Service(spec.key()),
            Request::DelService(k) => Scope::Service(*k),
            Request::AddDest(spec) => Scope::Dest(spec.service, spec.addr),
            Request::DelDest { service, dest } => Scope::Dest(*service, *dest),
            Request::Clear | Request::Restore(_) => Scope::All,
            // Edits of settings keep every counter set.
            _ => Scope::Nothing,
        }
    }
}

/// Counter sets of a [`Scope`], held (so their addresses, the keys of
/// [`Control`]'s maps, stay theirs).
#[derive(Default)]
struct Held {
    services: Vec<Arc<Stats>>,
    dests: Vec<Arc<DestCounters>>,
}

impl Held {
    fn add(&mut self, c: CounterSets<'_>) {
        self.services.push(Arc::clone(c.stats));
        self.dests.extend(c.dests.into_iter().map(Arc::clone));
    }
}

/// At most this many new real server addresses are remembered for
/// [`Control::take_new_addrs`]; past it, "any".
const NEW_ADDRS_CAP: usize = 4096;

/// The service table and everything the control socket serves from it.
///
/// The counter sets it tracks (for `-Z` and `--rate`) are kept in step
/// with each edit by what that edit added or removed, never by a pass over
/// the table, so that an edit costs the same on a table of ten rules as on
/// one of ten thousand; an edit it cannot see ([`Control::table_mut`])
/// makes the next look a full pass (`Control::track`).
pub struct Control {
    table: ServiceTable,
    conn_table_size: u32,
    /// Every counter set of the table, its services' and all their real
    /// servers' (listed or not), by address.
    services: HashMap<usize, Tracked<Stats>>,
    dests: HashMap<usize, Tracked<DestCounters>>,
    /// The table was changed where the maps above could not follow: the
    /// next [`Control::track`] is a full pass.
    untracked: bool,
    /// How many full passes [`Control::track`] made (the tests: a single
    /// edit makes none).
    full_tracks: u64,
    /// The table's [`ServiceTable::steer_rules`] and the
    /// [`ServiceTable::steer_epoch`] they were built at: built again only
    /// after an edit that can change them.
    steer: Option<(u64, SteerRules)>,
    /// Real server addresses edits added since [`Control::take_new_addrs`];
    /// `None`: not known (a restore, a reload), any of the table's.
    new_addrs: Option<Vec<IpAddr>>,
    next_tick: Instant,
    changed: bool,
    /// What deleted services had counted, for the metrics' sums.
    retired: Totals,
    /// Requests handled, and those refused (metrics).
    requests: u64,
    request_errors: u64,
    /// What the XDP steering maps hold; `None`: unbounded (no program).
    steer_limits: Option<SteerLimits>,
}

impl Control {
    /// `conn_table_size` is what listings show as `(size=N)`; `now` starts
    /// the estimator's clock.
    pub fn new(table: ServiceTable, conn_table_size: u32, now: Instant) -> Control {
        let mut c = Control {
            table,
            conn_table_size,
            services: HashMap::new(),
            dests: HashMap::new(),
            untracked: true,
            full_tracks: 0,
            steer: None,
            new_addrs: None,
            next_tick: now + ESTIMATOR_INTERVAL,
            changed: false,
            retired: Totals::default(),
            requests: 0,
            request_errors: 0,
            steer_limits: None,
        };
        c.track();
        c
    }

    pub fn table(&self) -> &ServiceTable {
        &self.table
    }

    /// From now on, refuses every edit (`-A`, `-E`, `-a`, `-e`, `-R`, and
    /// [`Control::apply_config`]) after which the table's
    /// [`ServiceTable::steer_rules`] would not fit in the XDP program's
    /// maps: refused whole, the table as before, so that the table and
    /// the maps never disagree.
    pub fn set_steer_limits(&mut self, limits: SteerLimits) {
        self.steer_limits = Some(limits);
    }

    /// Whether `t`'s rules fit the steering maps.
    pub fn fits(&self, t: &ServiceTable) -> Result<(), ServiceError> {
        self.fitting(t).map(drop)
    }

    /// [`Control::fits`], with the rules it built (`None`: no limits, none
    /// built).
    fn fitting(&self, t: &ServiceTable) -> Result<Option<SteerRules>, ServiceError> {
        match &self.steer_limits {
            Some(l) => {
                let rules = t.steer_rules();
                rules.check(l)?;
                Ok(Some(rules))
            }
            None => Ok(None),
        }
    }

    /// The table's [`ServiceTable::steer_rules`], built at most once per
    /// change of them.
    pub fn steer_rules(&mut self) -> &SteerRules {
        let epoch = self.table.steer_epoch();
        if self.steer.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.steer = Some((epoch, self.table.steer_rules()));
        }
        &self.steer.as_ref().expect("just built").1
    }

    /// The real server addresses added since the last call: each edit's
    /// own, or `None` when that is not known (a restore, a reload: any of
    /// the table's may be new). The next-hop resolver asks only about
    /// these.
    pub fn take_new_addrs(&mut self) -> Option<Vec<IpAddr>> {
        self.new_addrs.replace(Vec::new())
    }

    /// Keeps `rules`, just built of the table, for [`Control::steer_rules`].
    fn keep_steer_rules(&mut self, rules: Option<SteerRules>) {
        if let Some(r) = rules {
            self.steer = Some((self.table.steer_epoch(), r));
        }
    }

    /// After a change of the table this type could not follow edit by
    /// edit: every counter set, steering rule and address may be new.
    fn changed_all(&mut self) {
        self.changed = true;
        self.untracked = true;
        self.new_addrs = None;
        self.track();
    }

    /// A configuration reload: [`ServiceTable::apply_config`], tried on a
    /// copy of the table and kept only if it succeeds and its rules fit
    /// the steering maps ([`Control::set_steer_limits`]); otherwise the
    /// table is unchanged.
    pub fn apply_config(&mut self, cfg: &crate::config::Config) -> Result<(), ServiceError> {
        let mut trial = self.table.clone();
        trial.apply_config(cfg)?;
        self.fits(&trial)?;
        self.table = trial;
        self.changed_all();
        Ok(())
    }

    /// A SIGHUP reload: [`ServiceTable::apply_file_change`] (what changed
    /// in the file since `old`, live edits it does not touch kept), tried
    /// on a copy and kept only if its rules fit the steering maps; on
    /// error the table is unchanged. Returns the live edits it overrode.
    pub fn apply_file_change(
        &mut self,
        old: &crate::config::Config,
        new: &crate::config::Config,
    ) -> Result<Vec<crate::service::Override>, ServiceError> {
        let mut trial = self.table.clone();
        let overrides = trial.apply_file_change(old, new)?;
        self.fits(&trial)?;
        self.table = trial;
        self.changed_all();
        Ok(overrides)
    }

    /// The table, for edits that do not come through the socket (a
    /// configuration reload). Counts as a change: see [`Control::changed`].
    pub fn table_mut(&mut self) -> &mut ServiceTable {
        self.changed = true;
        self.untracked = true;
        self.new_addrs = None;
        &mut self.table
    }

    /// Records how to reach real server address `addr` (see
    /// [`ServiceTable::set_next_hop`]). Not an edit of services, so not a
    /// [`Control::changed`]: the caller publishes when this returns true.
    pub fn set_next_hop(&mut self, addr: IpAddr, port: u8, mac: [u8; 6]) -> bool {
        self.table.set_next_hop(addr, port, mac)
    }

    /// Records the source of the route to `addr` (see
    /// [`ServiceTable::set_source`]); as [`Control::set_next_hop`].
    pub fn set_source(&mut self, addr: IpAddr, src: Option<std::net::Ipv4Addr>) -> bool {
        self.table.set_source(addr, src)
    }

    /// [`Control::set_source`] for an IPv6 real server (the outer source
    /// of its ip6ip6 packets).
    pub fn set_source6(&mut self, addr: IpAddr, src: Option<std::net::Ipv6Addr>) -> bool {
        self.table.set_source6(addr, src)
    }

    /// Forgets `addr`'s next hop; as [`Control::set_next_hop`].
    pub fn clear_next_hop(&mut self, addr: IpAddr) -> bool {
        self.table.clear_next_hop(addr)
    }

    /// Applies a health verdict ([`ServiceTable::set_health`]); returns
    /// what it replaced when that changed anything (then it is published).
    pub fn set_health(&mut self, key: HealthKey, h: Health) -> Option<Health> {
        let old = self.table.set_health(key, h);
        self.changed |= old.is_some();
        old
    }

    /// Moves the services' quorums after whatever changed since the last
    /// call ([`ServiceTable::update_quorum`]); cheap when nothing did.
    pub fn update_quorum(&mut self) -> Vec<QuorumChange> {
        let q = self.table.update_quorum();
        self.changed |= !q.is_empty();
        q
    }

    /// Whether the table changed since the last call: the daemon then
    /// publishes a new snapshot to the workers.
    pub fn changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// When [`Control::tick`] next has work; a deadline for the daemon's
    /// poll(2).
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Samples the counters for `--rate` once [`ESTIMATOR_INTERVAL`] has
    /// passed since the last sample; otherwise does nothing, so it may be
    /// called on every turn of the control loop. After a long pause it
    /// takes one sample, not one per missed interval.
    pub fn tick(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick += ESTIMATOR_INTERVAL;
        if self.next_tick <= now {
            self.next_tick = now + ESTIMATOR_INTERVAL;
        }
        self.track();
        for t in self.services.values_mut() {
            t.est.sample(t._keep.total());
        }
        for t in self.dests.values_mut() {
            t.est.sample(t._keep.stats.total());
        }
    }

    /// After a change [`Control::handle`] could not follow (see
    /// [`Control::untracked`]): starts tracking new counter sets, forgets
    /// those of deleted services and servers, in one pass over the table.
    /// Otherwise nothing: the edits kept the maps in step.
    fn track(&mut self) {
        if !std::mem::take(&mut self.untracked) {
            return;
        }
        self.full_tracks += 1;
        let mut services = HashMap::with_capacity(self.services.len());
        let mut dests = HashMap::with_capacity(self.dests.len());
        for s in self.table.all_counter_sets() {
            let k = key(s.stats);
            let t = self
                .services
                .remove(&k)
                .unwrap_or_else(|| Tracked::new(s.stats, s.stats.total()));
            services.insert(k, t);
            for d in s.dests {
                let k = key(d);
                let t = self
                    .dests
                    .remove(&k)
                    .unwrap_or_else(|| Tracked::new(d, d.stats.total()));
                dests.insert(k, t);
            }
        }
        // What is left was deleted: its last counts stay in the sums.
        for t in self.services.values() {
            self.retired = add(self.retired, t._keep.total());
        }
        self.services = services;
        self.dests = dests;
    }

    /// The counter sets of `scope` in the table now (`None`: `All`).
    fn held(&self, scope: &Scope) -> Option<Held> {
        let mut h = Held::default();
        match *scope {
            Scope::Nothing => {}
            Scope::Service(k) => {
                if let Some(c) = self.table.counter_sets(k.proto, k.vip) {
                    h.add(c);
                }
            }
            Scope::Dest(k, addr) => {
                if let Some(c) = self.table.dest_counters(k.proto, k.vip, addr) {
                    h.dests.push(Arc::clone(c));
                }
            }
            Scope::All => return None,
        }
        Some(h)
    }

    /// After an edit of `scope`, whose counter sets were `before`: tracks
    /// those it added, forgets those it removed (a deleted service's
    /// counts go to the retired sums), touching nothing else.
    fn retrack(&mut self, scope: &Scope, before: Option<Held>) {
        let (Some(before), Some(after)) = (before, self.held(scope)) else {
            self.untracked = true;
            return self.track();
        };
        let now: std::collections::HashSet<usize> = after
            .services
            .iter()
            .map(key)
            .chain(after.dests.iter().map(key))
            .collect();
        for s in before.services.iter().filter(|s| !now.contains(&key(s))) {
            if let Some(t) = self.services.remove(&key(s)) {
                self.retired = add(self.retired, t._keep.total());
            }
        }
        for d in before.dests.iter().filter(|d| !now.contains(&key(d))) {
            self.dests.remove(&key(d));
        }
        let then: std::collections::HashSet<usize> = before
            .services
            .iter()
            .map(key)
            .chain(before.dests.iter().map(key))
            .collect();
        for s in after.services.iter().filter(|s| !then.contains(&key(s))) {
            self.services
                .entry(key(s))
                .or_insert_with(|| Tracked::new(s, s.total()));
        }
        for d in after.dests.iter().filter(|d| !then.contains(&key(d))) {
            self.dests
                .entry(key(d))
                .or_insert_with(|| Tracked::new(d, d.stats.total()));
        }
    }

    /// Every service's view for the metrics: raw totals (no `-Z`
    /// baseline: Prometheus counters never go back).
    pub fn metrics_views(&mut self) -> Vec<ServiceView> {
        self.views_of(None, true)
    }

    /// What services deleted since the start had counted.
    pub fn retired(&self) -> Totals {
        self.retired
    }

    /// Requests [`Control::handle`] answered, and how many of them it
    /// refused.
    pub fn requests(&self) -> (u64, u64) {
        (self.requests, self.request_errors)
    }

    /// As [`Control::handle`], but `-L -c` is answered with a stream of
    /// `conns`' entries that the control socket sends a line at a time,
    /// so that the listing neither stops the control thread nor builds
    /// one giant line.
    pub fn answer(&mut self, req: Request, conns: &mut dyn ConnSource) -> Answer {
        match req {
            Request::ListConns => {
                self.requests += 1;
                Answer::Stream(conns.stream())
            }
            other => Answer::Now(self.handle(other, conns)),
        }
    }

    /// Applies `req`; `conns` is asked only for `-L -c`.
    pub fn handle(&mut self, req: Request, conns: &mut dyn ConnSource) -> Response {
        self.requests += 1;
        let reply = match req {
            Request::List { service: None } | Request::Save => Ok(Reply::Table {
                size: self.conn_table_size,
                services: self.views(None),
            }),
            Request::List { service: Some(k) } => self
                .views(Some(k))
                .pop()
                .map(|v| Reply::Service(Box::new(v)))
                .ok_or_else(|| Response::refused("No such service")),
            Request::Zero { service } => self.zero(service).map(|()| Reply::Done),
            Request::GetTimeouts => {
                let t = self.table.timeouts();
                Ok(Reply::Timeouts {
                    tcp: t.tcp[TcpState::Established as usize],
                    tcpfin: t.tcp[TcpState::FinWait as usize],
                    udp: t.udp,
                })
            }
            Request::ListConns => Ok(Reply::Conns(conns.conns())),
            Request::Counters => Ok(Reply::Counters(counter_views(&conns.counters()))),
            Request::Restore(batch) => {
                let mut trial = self.table.clone();
                batch
                    .into_iter()
                    .try_for_each(|r| edit(&mut trial, r))
                    .and_then(|()| self.fitting(&trial).map_err(|e| table_error(e, false)))
                    .map(|rules| {
                        self.table = trial;
                        self.changed_all();
                        self.keep_steer_rules(rules);
                        Reply::Done
                    })
            }
            // The control socket collects the parts (`ctrl::server`); one
            // that reaches the table has no batch to join.
            Request::RestorePart(_) => Err(Response::refused(
                "a part of a restore is only accepted on a control connection, before its --restore",
            )),
            edit_req => self.edit_one(edit_req),
        };
        match reply {
            Ok(reply) => Response::Ok(reply),
            Err(e) => {
                self.request_errors += 1;
                e
            }
        }
    }

    /// One edit (not a restore): applied, the counter sets it added or
    /// removed tracked or forgotten, the addresses it added remembered.
    fn edit_one(&mut self, req: Request) -> Result<Reply, Response> {
        // A change this type could not follow is caught up with first, so
        // that what the edit removes is found tracked.
        self.track();
        let scope = Scope::of(&req);
        let added = match &req {
            Request::AddDest(spec) => Some(spec.addr.ip()),
            _ => None,
        };
        let before = self.held(&scope);
        // Near the steering maps' capacity an edit is tried on a copy
        // (one edit adds at most two keys to a map, so far from it none
        // can overflow them).
        let near_full = match self.steer_limits {
            Some(l) => !self.steer_rules().room_for_an_edit(&l),
            None => false,
        };
        if near_full {
            let mut trial = self.table.clone();
            edit(&mut trial, req)?;
            let rules = self.fitting(&trial).map_err(|e| table_error(e, false))?;
            self.table = trial;
            self.keep_steer_rules(rules);
        } else {
            edit(&mut self.table, req)?;
        }
        self.changed = true;
        self.retrack(&scope, before);
        match (&mut self.new_addrs, added) {
            (Some(v), Some(a)) if v.len() < NEW_ADDRS_CAP => v.push(a),
            (n @ Some(_), Some(_)) => *n = None,
            _ => {}
        }
        Ok(Reply::Done)
    }

    /// `-Z`: a zero point for the counters and rates of one service and its
    /// servers, or of all.
    fn zero(&mut self, service: Option<ServiceKey>) -> Result<(), Response> {
        self.track();
        let mut found = false;
        for s in self.table.services() {
            if service.is_some_and(|k| !is(&s, k)) {
                continue;
            }
            found = true;
            if let Some(t) = self.services.get_mut(&key(s.stats)) {
                t.zero(s.stats.total());
            }
            for d in &s.dests {
                if let Some(t) = self.dests.get_mut(&key(d.counters)) {
                    t.zero(d.counters.stats.total());
                }
            }
        }
        if service.is_some() && !found {
            return Err(Response::refused("No such service"));
        }
        Ok(())
    }

    /// Listing views of every service, or of the one `only` names.
    fn views(&mut self, only: Option<ServiceKey>) -> Vec<ServiceView> {
        self.views_of(only, false)
    }

    /// [`Control::views`], with the raw totals if `raw`.
    fn views_of(&mut self, only: Option<ServiceKey>, raw: bool) -> Vec<ServiceView> {
        self.track();
        let mut out = Vec::new();
        for s in self.table.services() {
            if only.is_some_and(|k| !is(&s, k)) {
                continue;
            }
            let (stats, rates) = match self.services.get(&key(s.stats)) {
                Some(t) if raw => (s.stats.total(), t.est.rates()),
                Some(t) => (t.shown(s.stats.total()), t.est.rates()),
                None => (s.stats.total(), Rates::default()),
            };
            let dests = s
                .dests
                .iter()
                .map(|d| {
                    let c = d.counters;
                    let (stats, rates) = match self.dests.get(&key(c)) {
                        Some(t) if raw => (c.stats.total(), t.est.rates()),
                        Some(t) => (t.shown(c.stats.total()), t.est.rates()),
                        None => (c.stats.total(), Rates::default()),
                    };
                    let (active, inactive) = c.conns();
                    DestView {
                        addr: d.cfg.addr,
                        forward: d.cfg.forward,
                        weight: d.weight,
                        upper_threshold: d.cfg.upper_threshold,
                        lower_threshold: d.cfg.lower_threshold,
                        active,
                        inactive,
                        persistent: c.persistent(),
                        stats,
                        rates,
                    }
                })
                .collect();
            out.push(ServiceView {
                proto: s.cfg.proto,
                vip: s.cfg.vip,
                scheduler: s.cfg.scheduler.clone(),
                flags: s.cfg.scheduler_flags,
                persistence_timeout: s.cfg.persistence_timeout,
                persistence_netmask: s.cfg.persistence_netmask,
                stats,
                rates,
                dests,
            });
        }
        out
    }
}

fn is(s: &ServiceInfo<'_>, k: ServiceKey) -> bool {
    s.cfg.proto == k.proto && s.cfg.vip == k.vip
}

fn find<'a>(t: &'a ServiceTable, k: ServiceKey) -> Option<ServiceInfo<'a>> {
    t.service(k.proto, k.vip)
}

/// A rule's refusal as one line: the ipvsadm option it concerns, then why.
fn rule_error((field, problem): (Field, Problem)) -> Response {
    if problem == Problem::PortZeroNotPersistent {
        // ipvsadm's own check, in its words.
        return Response::refused("Zero port specified for non-persistent service");
    }
    let option = match field {
        Field::Vip => "service-address",
        Field::Scheduler => "scheduler",
        Field::PersistenceTimeout => "persistent",
        Field::PersistenceNetmask => "netmask",
        Field::SchedulerFlags => "sched-flags",
        Field::MhTableSize => "mh_table_size",
        Field::Addr => "real-server",
        Field::Forward => "forwarding-method",
        Field::Weight => "weight",
        Field::UpperThreshold => "u-threshold",
        Field::LowerThreshold => "l-threshold",
    };
    Response::refused(format!("{option}: {problem}"))
}

/// What the table refused, in libipvs's words where it has them.
fn table_error(e: ServiceError, adding: bool) -> Response {
    Response::refused(match e {
        ServiceError::ServiceExists { .. } => "Service already exists".to_owned(),
        ServiceError::NoService { .. } if adding => "Service not defined".to_owned(),
        ServiceError::NoService { .. } => "No such service".to_owned(),
        ServiceError::DestExists { .. } => "Destination already exists".to_owned(),
        ServiceError::NoDest { .. } => "No such destination".to_owned(),
        ServiceError::Scheduler(_) => "Scheduler or persistence engine not found".to_owned(),
        other => other.to_string(),
    })
}

/// The table's configuration of `spec`, its checks passed; `mh_table_size`
/// (which ipvsadm cannot set) kept from `existing`.
fn service_config(
    spec: &ServiceSpec,
    existing: Option<&ServiceConfig>,
) -> Result<ServiceConfig, Response> {
    if spec.vip.is_ipv6() {
        // libipvs's EOPNOTSUPP: the table serves IPv4 services only.
        return Err(Response::refused("Operation not supported with IPv6"));
    }
    if crate::sched::registered(&spec.scheduler).is_none() {
        return Err(Response::refused(
            "Scheduler or persistence engine not found",
        ));
    }
    let mut cfg = ServiceConfig::new(spec.proto, spec.vip, &spec.scheduler);
    cfg.persistence_timeout = spec.persistence_timeout;
    cfg.persistence_netmask = spec.persistence_netmask;
    cfg.scheduler_flags = spec.flags;
    if let Some(e) = existing.filter(|e| e.scheduler == "mh" && spec.scheduler == "mh") {
        cfg.mh_table_size = e.mh_table_size;
        cfg.mh_seed = e.mh_seed;
    }
    rules::check_service(&cfg).map_err(rule_error)?;
    Ok(cfg)
}

fn real_config(spec: &DestSpec) -> Result<RealConfig, Response> {
    let real = RealConfig {
        addr: spec.addr,
        forward: spec.forward,
        weight: spec.weight,
        upper_threshold: spec.upper_threshold,
        lower_threshold: spec.lower_threshold,
        health: Default::default(),
    };
    if spec.addr.is_ipv4() != spec.service.vip.is_ipv4() {
        // libipvs's EAFNOSUPPORT.
        return Err(Response::refused(
            "Operation not supported with specified address family",
        ));
    }
    rules::check_real(spec.service.vip, &real).map_err(rule_error)?;
    Ok(real)
}

/// Whether `s` has real server `addr`, listed or not (one its health
/// checks took out can still be edited and deleted).
fn has_dest(t: &ServiceTable, s: &ServiceInfo<'_>, addr: SocketAddr) -> bool {
    t.has_dest(s.cfg.proto, s.cfg.vip, addr)
}

/// Applies one table edit, checked in the order IPVS checks (the service,
/// then the server, then the settings); nothing changes on error.
fn edit(t: &mut ServiceTable, req: Request) -> Result<(), Response> {
    match req {
        Request::AddService(spec) => {
            if find(t, spec.key()).is_some() {
                return Err(Response::refused("Service already exists"));
            }
            let cfg = service_config(&spec, None)?;
            t.add_service(&cfg).map_err(|e| table_error(e, false))
        }
        Request::EditService(spec) => {
            let Some(existing) = find(t, spec.key()) else {
                return Err(Response::refused("No such service"));
            };
            let cfg = service_config(&spec, Some(existing.cfg))?;
            t.edit_service(&cfg).map_err(|e| table_error(e, false))
        }
        Request::DelService(k) => t
            .del_service(k.proto, k.vip)
            .map_err(|e| table_error(e, false)),
        Request::Clear => {
            t.clear();
            Ok(())
        }
        Request::AddDest(spec) => {
            let Some(s) = find(t, spec.service) else {
                return Err(Response::refused("Service not defined"));
            };
            if has_dest(t, &s, spec.addr) {
                return Err(Response::refused("Destination already exists"));
            }
            let real = real_config(&spec)?;
            let k = spec.service;
            t.add_dest(k.proto, k.vip, &real)
                .map_err(|e| table_error(e, true))
        }
        Request::EditDest(spec) => {
            let Some(s) = find(t, spec.service) else {
                return Err(Response::refused("Service not defined"));
            };
            if !has_dest(t, &s, spec.addr) {
                return Err(Response::refused("No such destination"));
            }
            let real = real_config(&spec)?;
            let k = spec.service;
            t.edit_dest(k.proto, k.vip, &real)
                .map_err(|e| table_error(e, true))
        }
        Request::DelDest { service, dest } => {
            let Some(s) = find(t, service) else {
                return Err(Response::refused("Service not defined"));
            };
            if !has_dest(t, &s, dest) {
                return Err(Response::refused("No such destination"));
            }
            t.del_dest(service.proto, service.vip, dest)
                .map_err(|e| table_error(e, true))
        }
        Request::SetTimeouts { tcp, tcpfin, udp } => {
            let max = Connections::MAX_TIMEOUT;
            if let Some(bad) = [tcp, tcpfin, udp].into_iter().find(|&v| v > max) {
                return Err(Response::refused(format!(
                    "invalid timeout value `{bad}' specified (at most {max})"
                )));
            }
            t.set_timeouts(tcp, tcpfin, udp);
            Ok(())
        }
        other => Err(Response::refused(format!(
            "{} cannot be part of a restore",
            request_name(&other)
        ))),
    }
}

/// The ipvsadm command a request stands for, for messages.
pub fn request_name(r: &Request) -> &'static str {
    match r {
        Request::AddService(_) => "--add-service",
        Request::EditService(_) => "--edit-service",
        Request::DelService(_) => "--delete-service",
        Request::Clear => "--clear",
        Request::AddDest(_) => "--add-server",
        Request::EditDest(_) => "--edit-server",
        Request::DelDest { .. } => "--delete-server",
        Request::List { .. } | Request::GetTimeouts | Request::ListConns => "--list",
        Request::Counters => "--counters",
        Request::Save => "--save",
        Request::Zero { .. } => "--zero",
        Request::SetTimeouts { .. } => "--set",
        Request::Restore(_) | Request::RestorePart(_) => "--restore",
    }
}

/// The workers' statistics as `--counters` lists them: one view per
/// counter, its value in each worker.
pub fn counter_views(workers: &[WorkerStats]) -> Vec<CounterView> {
    let values: Vec<Vec<u64>> = workers
        .iter()
        .map(|w| w.entries().map(|e| e.value).collect())
        .collect();
    WorkerStats::default()
        .entries()
        .enumerate()
        .map(|(i, e)| CounterView {
            name: e.name.to_owned(),
            help: e.help.to_owned(),
            gauge: e.is_gauge(),
            workers: values.iter().map(|v| v[i]).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
