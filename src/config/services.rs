//! `[[services]]` and their `[[services.reals]]`: each service is read
//! key by key, then judged by the shared [`rules`] with the control socket;
//! a repeated service (protocol and virtual address) or a repeated real
//! server within a service is reported at its second occurrence, with the
//! line of the first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use toml::Spanned;

use super::error::Problem;
use super::raw::{Leaf, RawReal, RawService, RawSorry};
use super::read::{Result, Source, one_of};
use super::rules::{self, Field, is_contiguous};
use super::types::{
    CommandLine, DEFAULT_SCHEDULER, Protocol, RealConfig, RealHealth, SCHEDULERS, ServiceConfig,
    ServiceHealth,
};
use crate::dest::Forward;
use crate::sched::{Params, SCHED_FLAG_NAMES, SchedFlags};

/// The `forward` values of a real server (and a sorry server), as
/// ipvsadm's -g, -i, -m.
const FORWARDS: [(&str, Forward); 3] = [
    ("dr", Forward::Dr),
    ("tun", Forward::Tun),
    ("nat", Forward::Nat),
];

impl Source<'_> {
    pub(super) fn services(&self, raw: &[Spanned<RawService>]) -> Result<Vec<ServiceConfig>> {
        let mut first_line = HashMap::new();
        let mut services = Vec::with_capacity(raw.len());
        for (i, table) in raw.iter().enumerate() {
            let key = format!("services[{i}]");
            let service = self.service(table, &key)?;
            let vip = table.get_ref().vip.as_ref().map(Spanned::span);
            let line = vip.clone().map_or(0, |span| self.line(span));
            if let Some(&first_line) = first_line.get(&(service.proto, service.vip)) {
                let what = format!("service {} {}", service.proto, service.vip);
                let problem = Problem::Duplicate { what, first_line };
                return Err(self.invalid(vip, &format!("{key}.vip"), problem));
            }
            first_line.insert((service.proto, service.vip), line);
            services.push(service);
        }
        Ok(services)
    }

    fn service(&self, table: &Spanned<RawService>, key: &str) -> Result<ServiceConfig> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let protocols = [("tcp", Protocol::Tcp), ("udp", Protocol::Udp)];
        let proto = self
            .choice(&raw.proto, &k("proto"), &protocols)?
            .ok_or_else(|| self.missing(Some(table.span()), &k("proto"), "\"tcp\" or \"udp\""))?;
        let vip = self.socket_addr(&raw.vip, &k("vip"))?.ok_or_else(|| {
            let expected = "the virtual address and port, e.g. \"198.18.1.1:80\"";
            self.missing(Some(table.span()), &k("vip"), expected)
        })?;
        let scheduler = self
            .choice(
                &raw.scheduler,
                &k("scheduler"),
                &SCHEDULERS.iter().map(|&s| (s, s)).collect::<Vec<_>>(),
            )?
            .unwrap_or(DEFAULT_SCHEDULER);
        let persistence_timeout = self
            .int(
                &raw.persistence_timeout,
                &k("persistence_timeout"),
                0,
                ServiceConfig::MAX_PERSISTENCE_TIMEOUT,
            )?
            .unwrap_or(0);
        let persistence_netmask = self.string(
            &raw.persistence_netmask,
            &k("persistence_netmask"),
            "a contiguous IPv4 netmask, e.g. \"255.255.255.0\"",
            |s| s.parse::<Ipv4Addr>().ok().filter(|m| is_contiguous(*m)),
        )?;
        if let (Some(leaf), IpAddr::V6(_)) = (&raw.persistence_netmask, vip.ip()) {
            let problem = Problem::Ipv4Only {
                what: "persistence_netmask",
            };
            return Err(self.invalid(Some(leaf.span()), &k("persistence_netmask"), problem));
        }
        let scheduler_flags = self.scheduler_flags(raw, key, scheduler)?;
        let mh_table_size = self.mh_table_size(raw, key, scheduler)?;
        let mh_seed = self.mh_seed(raw, key, scheduler)?;
        let mut service = ServiceConfig {
            proto,
            vip,
            scheduler: scheduler.to_owned(),
            persistence_timeout,
            persistence_netmask: persistence_netmask.unwrap_or(Ipv4Addr::BROADCAST),
            scheduler_flags,
            mh_table_size,
            mh_seed,
            health: self.service_health(raw, key)?,
            reals: Vec::new(),
            ..ServiceConfig::new(proto, vip, scheduler)
        };
        // What the checks above let through, the shared rules judge (the
        // scheduler, timeout, mask and table size were checked where they
        // were read, with their own positions).
        rules::check_service(&service).map_err(|(_, problem)| {
            let span = raw.vip.as_ref().map(Spanned::span);
            self.invalid(span, &k("vip"), problem)
        })?;

        let mut reals: Vec<RealConfig> = Vec::new();
        let mut lines = Vec::new();
        for (j, real) in raw.reals.as_deref().unwrap_or(&[]).iter().enumerate() {
            let key = format!("{key}.reals[{j}]");
            let parsed = self.real(real, &key, vip, &service.health)?;
            let span = real.get_ref().addr.as_ref().map(Spanned::span);
            if let Some(first) = reals.iter().position(|r| r.addr == parsed.addr) {
                let what = format!("real server {}", parsed.addr);
                let problem = Problem::Duplicate {
                    what,
                    first_line: lines[first],
                };
                return Err(self.invalid(span, &format!("{key}.addr"), problem));
            }
            lines.push(span.map_or(0, |span| self.line(span)));
            reals.push(parsed);
        }

        service.reals = reals;
        self.quorum(raw, key, &mut service)?;
        if let Some(sorry) = &raw.sorry_server {
            let skey = k("sorry_server");
            let parsed = self.sorry(sorry, &skey, vip)?;
            if let Some(first) = service.reals.iter().position(|r| r.addr == parsed.addr) {
                let what = format!("real server {}", parsed.addr);
                let problem = Problem::Duplicate {
                    what,
                    first_line: lines[first],
                };
                let span = sorry.get_ref().addr.as_ref().map(Spanned::span);
                return Err(self.invalid(span, &format!("{skey}.addr"), problem));
            }
            service.sorry_server = Some(parsed);
        }
        Ok(service)
    }

    /// `sorry_server_inhibit`, `quorum`, `hysteresis`, `quorum_up`,
    /// `quorum_down` (keepalived's names and defaults).
    fn quorum(&self, raw: &RawService, key: &str, service: &mut ServiceConfig) -> Result<()> {
        let k = |name: &str| format!("{key}.{name}");
        service.sorry_server_inhibit = self
            .boolean(&raw.sorry_server_inhibit, &k("sorry_server_inhibit"))?
            .unwrap_or(false);
        service.quorum = self
            .int(&raw.quorum, &k("quorum"), 1, u32::MAX)?
            .unwrap_or(ServiceConfig::DEFAULT_QUORUM);
        service.hysteresis = self
            .int(&raw.hysteresis, &k("hysteresis"), 0, u32::MAX)?
            .unwrap_or(0);
        service.quorum_up = self.command(&raw.quorum_up, &k("quorum_up"))?;
        service.quorum_down = self.command(&raw.quorum_down, &k("quorum_down"))?;
        Ok(())
    }

    /// A command line (`quorum_up`, `quorum_down`), split into words.
    fn command(&self, leaf: &Leaf, key: &str) -> Result<Option<CommandLine>> {
        let expected = "a command line: a program's absolute path and its arguments, \
                        quoted with '...' or \"...\" where they hold spaces";
        self.string(leaf, key, expected, |s| {
            CommandLine::parse(s).filter(|c| c.argv[0].starts_with('/'))
        })
    }

    /// `sorry_server = { addr, forward, weight }`: a real server as
    /// `[[services.reals]]` describes one, without thresholds.
    fn sorry(&self, table: &Spanned<RawSorry>, key: &str, vip: SocketAddr) -> Result<RealConfig> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let addr = self.socket_addr(&raw.addr, &k("addr"))?.ok_or_else(|| {
            let expected = "the sorry server's address and port, e.g. \"198.18.2.99:80\"";
            self.missing(Some(table.span()), &k("addr"), expected)
        })?;
        let forward = self
            .choice(&raw.forward, &k("forward"), &FORWARDS)?
            .unwrap_or_default();
        let weight = self
            .int(&raw.weight, &k("weight"), 0, RealConfig::MAX_WEIGHT)?
            .unwrap_or(RealConfig::DEFAULT_WEIGHT);
        let real = RealConfig::new(addr, forward, weight);
        rules::check_real(vip, &real).map_err(|(field, problem)| {
            let (name, leaf) = match field {
                Field::Forward => ("forward", &raw.forward),
                Field::Weight => ("weight", &raw.weight),
                _ => ("addr", &raw.addr),
            };
            self.invalid(leaf.as_ref().map(Spanned::span), &k(name), problem)
        })?;
        Ok(real)
    }

    /// `scheduler_flags`: the names ipvsadm `-b` accepts
    /// (`parse_sched_flags`), `sh-*` only with sh and `mh-*` only with mh,
    /// as ipvsadm insists; `flag-N` with any scheduler.
    fn scheduler_flags(
        &self,
        raw: &RawService,
        key: &str,
        scheduler: &'static str,
    ) -> Result<SchedFlags> {
        const FLAGS: &[(&str, u8, Option<&str>)] = SCHED_FLAG_NAMES;
        let list_key = format!("{key}.scheduler_flags");
        let expected = one_of(FLAGS.iter().map(|(name, ..)| name));
        let flags = self.unique_list(
            raw.scheduler_flags.as_ref(),
            &list_key,
            "scheduler flag",
            |item, key| {
                let flag = self.string_value(item, key, &expected, |s| {
                    FLAGS.iter().find(|(name, ..)| *name == s)
                })?;
                match flag.2 {
                    Some(only) if only != scheduler => {
                        let problem = Problem::SchedulerOnly {
                            what: flag.0,
                            scheduler: only,
                            actual: scheduler,
                        };
                        Err(self.invalid(Some(item.span()), key, problem))
                    }
                    _ => Ok(flag.0),
                }
            },
        )?;
        let bits = flags
            .iter()
            .filter_map(|f| FLAGS.iter().find(|(name, ..)| name == f))
            .fold(0, |bits, (_, bit, _)| bits | bit);
        Ok(SchedFlags(bits))
    }

    /// `mh_seed`: a non-negative integer, and only for the mh scheduler.
    fn mh_seed(&self, raw: &RawService, key: &str, scheduler: &'static str) -> Result<Option<u64>> {
        let Some(value) = &raw.mh_seed else {
            return Ok(None);
        };
        let key = format!("{key}.mh_seed");
        let seed = value
            .get_ref()
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                self.expected(value, &key, "an integer 0..=9223372036854775807".to_owned())
            })?;
        if scheduler != "mh" {
            let problem = Problem::SchedulerOnly {
                what: "mh_seed",
                scheduler: "mh",
                actual: scheduler,
            };
            return Err(self.invalid(Some(value.span()), &key, problem));
        }
        Ok(Some(seed))
    }

    /// `mh_table_size`: a prime, and only for the mh scheduler.
    fn mh_table_size(&self, raw: &RawService, key: &str, scheduler: &'static str) -> Result<u32> {
        let Some(value) = &raw.mh_table_size else {
            return Ok(ServiceConfig::DEFAULT_MH_TABLE_SIZE);
        };
        let key = format!("{key}.mh_table_size");
        let (lo, hi) = (
            ServiceConfig::MIN_MH_TABLE_SIZE,
            ServiceConfig::MAX_MH_TABLE_SIZE,
        );
        let size = value
            .get_ref()
            .as_integer()
            .filter(|n| (i64::from(lo)..=i64::from(hi)).contains(n))
            .map(|n| n as u32)
            .filter(|&n| Params::mh_table_size_ok(n))
            .ok_or_else(|| {
                self.expected(value, &key, format!("a prime {lo}..={hi}, e.g. 65537"))
            })?;
        if scheduler != "mh" {
            let problem = Problem::SchedulerOnly {
                what: "mh_table_size",
                scheduler: "mh",
                actual: scheduler,
            };
            return Err(self.invalid(Some(value.span()), &key, problem));
        }
        Ok(size)
    }

    fn real(
        &self,
        table: &Spanned<RawReal>,
        key: &str,
        vip: SocketAddr,
        service: &ServiceHealth,
    ) -> Result<RealConfig> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let addr = self.socket_addr(&raw.addr, &k("addr"))?.ok_or_else(|| {
            let expected = "the real server's address and port, e.g. \"198.18.2.11:80\"";
            self.missing(Some(table.span()), &k("addr"), expected)
        })?;
        let forward = self
            .choice(&raw.forward, &k("forward"), &FORWARDS)?
            .unwrap_or_default();
        let weight = self.int(&raw.weight, &k("weight"), 0, RealConfig::MAX_WEIGHT)?;
        // ipvsadm -x / -y accept 0..=INT_MAX.
        let max = rules::MAX_THRESHOLD;
        let upper = self.int(&raw.upper_threshold, &k("upper_threshold"), 0, max)?;
        let lower = self.int(&raw.lower_threshold, &k("lower_threshold"), 0, max)?;
        let (upper, lower) = (upper.unwrap_or(0), lower.unwrap_or(0));

        let real = RealConfig {
            addr,
            forward,
            weight: weight.unwrap_or(RealConfig::DEFAULT_WEIGHT),
            upper_threshold: upper,
            lower_threshold: lower,
            health: RealHealth::default(),
        };
        rules::check_real(vip, &real).map_err(|(field, problem)| {
            let (name, leaf) = match field {
                Field::Forward => ("forward", &raw.forward),
                Field::LowerThreshold => ("lower_threshold", &raw.lower_threshold),
                Field::UpperThreshold => ("upper_threshold", &raw.upper_threshold),
                Field::Weight => ("weight", &raw.weight),
                _ => ("addr", &raw.addr),
            };
            self.invalid(leaf.as_ref().map(Spanned::span), &k(name), problem)
        })?;
        Ok(RealConfig {
            health: self.real_health(raw, key, service, addr)?,
            ..real
        })
    }
}
