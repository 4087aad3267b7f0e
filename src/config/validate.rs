//! From the raw tables to a typed, consistent [`Config`], or the first error.
//!
//! Checks run in document order and stop at the first failure. Each check
//! reports at the position of the value it rejects; a missing key is reported
//! at the header of the table it is missing from.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

use super::error::{ConfigError, Location, Problem};
use super::raw::{Leaf, RawConfig, RawConnections, RawControl, RawDataplane, RawReal, RawService};
use super::rules::{self, Field, is_contiguous};
use super::types::{
    Config, Connections, Control, DEFAULT_SCHEDULER, DEFAULT_SOCKET, Dataplane, Idle, Protocol,
    RealConfig, SCHEDULERS, ServiceConfig, Tuning, XdpMode, ZeroCopy,
};
use crate::dest::Forward;
use crate::sched::{Params, SCHED_FLAG_NAMES, SchedFlags};

type Result<T> = std::result::Result<T, ConfigError>;

/// Longest `sun_path` of a Unix socket, without its terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Longest interface name (`IFNAMSIZ` - 1).
const MAX_IFNAME: usize = 15;

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn from_file(path: &Path) -> Result<Config> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        Config::from_str_named(&text, &name)
    }

    /// Parses and validates `text`; `name` stands for the file in messages.
    ///
    /// ```
    /// use xdpvs::config::Config;
    ///
    /// let text = "[dataplane]\ninterfaces = [\"eth1\"]\n";
    /// let config = Config::from_str_named(text, "inline").unwrap();
    /// assert_eq!(config.dataplane.batch_size, 64);
    ///
    /// let text = "[dataplane]\ninterfaces = [\"eth1\"]\nmtu = 100\n";
    /// let error = Config::from_str_named(text, "x.toml").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "x.toml:3: dataplane.mtu: expected an integer 576..=9000, got 100"
    /// );
    /// ```
    pub fn from_str_named(text: &str, name: &str) -> Result<Config> {
        parse(text, name)
    }
}

fn parse(text: &str, name: &str) -> Result<Config> {
    let src = Source { name, text };
    // The syntax is checked on its own first so that syntax errors keep
    // toml's message; the parsed tree then maps serde's error spans to keys.
    let doc = DeTable::parse(text).map_err(|e| src.syntax(&e))?;
    let raw: RawConfig = toml::from_str(text).map_err(|e| src.shape(&e, doc.get_ref()))?;
    src.config(raw)
}

/// The text being validated and its name for messages.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    // ---- positions and errors -------------------------------------------

    fn location(&self, span: Option<Range<usize>>) -> Location {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Location {
            file: self.name.to_owned(),
            line,
            column,
        }
    }

    fn line(&self, span: Range<usize>) -> u32 {
        line_column(self.text, span.start).0
    }

    fn syntax(&self, error: &toml::de::Error) -> ConfigError {
        ConfigError::Syntax {
            at: self.location(error.span()),
            message: error.message().trim_end().to_owned(),
        }
    }

    /// An error from serde: wrong shape or an unknown key.
    fn shape(&self, error: &toml::de::Error, doc: &DeTable<'_>) -> ConfigError {
        let span = error.span();
        let key = span
            .as_ref()
            .and_then(|span| key_at(doc, span.start))
            .unwrap_or_else(|| "(top level)".to_owned());
        ConfigError::Invalid {
            at: self.location(span),
            key,
            problem: Problem::Shape {
                message: error.message().trim_end().to_owned(),
            },
        }
    }

    fn invalid(&self, span: Option<Range<usize>>, key: &str, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            at: self.location(span),
            key: key.to_owned(),
            problem,
        }
    }

    fn expected(&self, value: &Spanned<Value>, key: &str, expected: impl Display) -> ConfigError {
        let problem = Problem::Expected {
            expected: expected.to_string(),
            got: describe(value.get_ref()),
        };
        self.invalid(Some(value.span()), key, problem)
    }

    fn missing(&self, table: Option<Range<usize>>, key: &str, expected: &str) -> ConfigError {
        let problem = Problem::Missing {
            expected: expected.to_owned(),
        };
        self.invalid(table, key, problem)
    }

    // ---- leaves ------------------------------------------------------------

    /// An integer in `lo..=hi`, converted to `T`.
    fn int_value<T>(&self, value: &Spanned<Value>, key: &str, lo: T, hi: T) -> Result<T>
    where
        T: Copy + Display + TryFrom<i64> + Into<i64>,
    {
        value
            .get_ref()
            .as_integer()
            .filter(|n| (lo.into()..=hi.into()).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.expected(value, key, format!("an integer {lo}..={hi}")))
    }

    /// [`Self::int_value`] of a key that may be absent.
    fn int<T>(&self, leaf: &Leaf, key: &str, lo: T, hi: T) -> Result<Option<T>>
    where
        T: Copy + Display + TryFrom<i64> + Into<i64>,
    {
        leaf.as_ref()
            .map(|value| self.int_value(value, key, lo, hi))
            .transpose()
    }

    /// A power of two in `lo..=hi` (ring and UMEM sizes).
    fn power_of_two(&self, leaf: &Leaf, key: &str, lo: u32, hi: u32) -> Result<Option<u32>> {
        leaf.as_ref()
            .map(|value| {
                value
                    .get_ref()
                    .as_integer()
                    .filter(|n| (i64::from(lo)..=i64::from(hi)).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| n.is_power_of_two())
                    .ok_or_else(|| self.expected(value, key, format!("a power of two {lo}..={hi}")))
            })
            .transpose()
    }

    fn boolean(&self, leaf: &Leaf, key: &str) -> Result<Option<bool>> {
        leaf.as_ref()
            .map(|value| {
                value
                    .get_ref()
                    .as_bool()
                    .ok_or_else(|| self.expected(value, key, "true or false"))
            })
            .transpose()
    }

    /// A string that `parse` accepts.
    fn string_value<'v, T>(
        &self,
        value: &'v Spanned<Value>,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&'v str) -> Option<T>,
    ) -> Result<T> {
        value
            .get_ref()
            .as_str()
            .and_then(parse)
            .ok_or_else(|| self.expected(value, key, expected))
    }

    /// [`Self::string_value`] of a key that may be absent.
    fn string<'v, T>(
        &self,
        leaf: &'v Leaf,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&'v str) -> Option<T>,
    ) -> Result<Option<T>> {
        leaf.as_ref()
            .map(|value| self.string_value(value, key, expected, parse))
            .transpose()
    }

    /// One of a fixed set of names; `None` if the key is absent.
    fn choice<T: Copy>(&self, leaf: &Leaf, key: &str, names: &[(&str, T)]) -> Result<Option<T>> {
        let expected = one_of(names.iter().map(|(name, _)| name));
        self.string(leaf, key, &expected, |s| {
            names.iter().find(|(name, _)| *name == s).map(|&(_, t)| t)
        })
    }

    fn socket_addr(&self, leaf: &Leaf, key: &str) -> Result<Option<SocketAddr>> {
        let expected = "a unicast address with port, \"a.b.c.d:port\" or \"[ipv6]:port\"";
        self.string(leaf, key, expected, |s| {
            s.parse::<SocketAddr>().ok().filter(|a| is_unicast(a.ip()))
        })
    }

    // ---- tables ------------------------------------------------------------

    fn config(&self, raw: RawConfig) -> Result<Config> {
        let dataplane = self.dataplane(raw.dataplane.as_ref())?;
        let connections = match &raw.connections {
            Some(table) => self.connections(table.get_ref())?,
            None => Connections::default(),
        };
        let control = match &raw.control {
            Some(table) => self.control(table.get_ref())?,
            None => Control::default(),
        };
        let services = self.services(raw.services.as_deref().unwrap_or(&[]), &dataplane)?;
        Ok(Config {
            dataplane,
            connections,
            control,
            services,
        })
    }

    fn dataplane(&self, table: Option<&Spanned<RawDataplane>>) -> Result<Dataplane> {
        const KEY: &str = "dataplane.interfaces";
        const IFNAMES: &str = "a non-empty list of interface names, e.g. [\"eth1\"]";
        let Some(table) = table else {
            return Err(self.missing(None, KEY, IFNAMES));
        };
        let raw = table.get_ref();
        let Some(list) = &raw.interfaces else {
            return Err(self.missing(Some(table.span()), KEY, IFNAMES));
        };
        if list.get_ref().is_empty() {
            let problem = Problem::Expected {
                expected: IFNAMES.to_owned(),
                got: "[]".to_owned(),
            };
            return Err(self.invalid(Some(list.span()), KEY, problem));
        }
        let interfaces = self.unique_list(Some(list), KEY, "interface", |item, key| {
            let expected = "an interface name of 1 to 15 bytes without '/', ':' or whitespace";
            self.string_value(item, key, expected, |s| is_ifname(s).then(|| s.to_owned()))
        })?;
        let cores = self.unique_list(
            raw.cores.as_ref(),
            "dataplane.cores",
            "core",
            |item, key| self.int_value(item, key, 0u16, u16::MAX).map(usize::from),
        )?;
        let xdp_mode = self.choice(
            &raw.xdp_mode,
            "dataplane.xdp_mode",
            &[
                ("native", XdpMode::Native),
                ("generic", XdpMode::Generic),
                ("auto", XdpMode::Auto),
            ],
        )?;
        let zero_copy = self.choice(
            &raw.zero_copy,
            "dataplane.zero_copy",
            &[
                ("on", ZeroCopy::On),
                ("off", ZeroCopy::Off),
                ("auto", ZeroCopy::Auto),
            ],
        )?;
        // At most what the pipeline takes in one batch: refused, not cut down.
        let batch_size = self.int(
            &raw.batch_size,
            "dataplane.batch_size",
            1,
            Dataplane::MAX_BATCH_SIZE,
        )?;
        let mtu = self.int(
            &raw.mtu,
            "dataplane.mtu",
            Dataplane::MIN_MTU,
            Dataplane::MAX_MTU,
        )?;
        let tunnel_source = self.string(
            &raw.tunnel_source,
            "dataplane.tunnel_source",
            "a unicast IPv4 address, e.g. \"198.18.2.2\"",
            |s| {
                s.parse::<Ipv4Addr>()
                    .ok()
                    .filter(|a| is_unicast(IpAddr::V4(*a)))
            },
        )?;
        let tuning = self.tuning(raw)?;
        Ok(Dataplane {
            interfaces,
            cores,
            xdp_mode: xdp_mode.unwrap_or_default(),
            zero_copy: zero_copy.unwrap_or_default(),
            batch_size: batch_size.unwrap_or(Dataplane::DEFAULT_BATCH_SIZE),
            mtu: mtu.unwrap_or(Dataplane::DEFAULT_MTU),
            tunnel_source,
            tuning,
        })
    }

    /// The socket and polling keys of `[dataplane]`.
    fn tuning(&self, raw: &RawDataplane) -> Result<Tuning> {
        let d = Tuning::default();
        let ring = |leaf: &Leaf, key: &str, default: u32| {
            self.power_of_two(leaf, key, Tuning::MIN_RING, Tuning::MAX_RING)
                .map(|v| v.unwrap_or(default))
        };
        let umem_frames = self
            .power_of_two(
                &raw.umem_frames,
                "dataplane.umem_frames",
                Tuning::MIN_RING,
                Tuning::MAX_UMEM_FRAMES,
            )?
            .unwrap_or(d.umem_frames);
        let frame_size = match &raw.frame_size {
            None => d.frame_size,
            Some(v) => match v.get_ref().as_integer() {
                Some(2048) => 2048,
                Some(4096) => 4096,
                _ => return Err(self.expected(v, "dataplane.frame_size", "2048 or 4096")),
            },
        };
        let fill_ring_size = ring(
            &raw.fill_ring_size,
            "dataplane.fill_ring_size",
            d.fill_ring_size,
        )?;
        if fill_ring_size > umem_frames {
            let value = raw.fill_ring_size.as_ref().or(raw.umem_frames.as_ref());
            let key = if raw.fill_ring_size.is_some() {
                "dataplane.fill_ring_size"
            } else {
                "dataplane.umem_frames"
            };
            let problem = Problem::Expected {
                expected: format!(
                    "fill_ring_size ({fill_ring_size}) no larger than umem_frames ({umem_frames}): \
                     the fill ring holds free frames"
                ),
                got: value.map_or_else(String::new, |v| describe(v.get_ref())),
            };
            return Err(self.invalid(value.map(|v| v.span()), key, problem));
        }
        Ok(Tuning {
            umem_frames,
            frame_size,
            rx_ring_size: ring(&raw.rx_ring_size, "dataplane.rx_ring_size", d.rx_ring_size)?,
            tx_ring_size: ring(&raw.tx_ring_size, "dataplane.tx_ring_size", d.tx_ring_size)?,
            fill_ring_size,
            comp_ring_size: ring(
                &raw.comp_ring_size,
                "dataplane.comp_ring_size",
                d.comp_ring_size,
            )?,
            busy_poll_usecs: self
                .int(
                    &raw.busy_poll_usecs,
                    "dataplane.busy_poll_usecs",
                    0,
                    1_000_000,
                )?
                .unwrap_or(d.busy_poll_usecs),
            busy_poll_budget: self
                .int(&raw.busy_poll_budget, "dataplane.busy_poll_budget", 1, 1024)?
                .unwrap_or(d.busy_poll_budget),
            prefer_busy_poll: self
                .boolean(&raw.prefer_busy_poll, "dataplane.prefer_busy_poll")?
                .unwrap_or(d.prefer_busy_poll),
            idle: self
                .choice(
                    &raw.idle,
                    "dataplane.idle",
                    &[
                        ("busy", Idle::Busy),
                        ("yield", Idle::Yield),
                        ("wait", Idle::Wait),
                    ],
                )?
                .unwrap_or(d.idle),
        })
    }

    /// Converts each element of a list with `item`, rejecting repeats of
    /// the thing `noun` names.
    fn unique_list<T: PartialEq + Display>(
        &self,
        list: Option<&Spanned<Vec<Spanned<Value>>>>,
        key: &str,
        noun: &str,
        item: impl Fn(&Spanned<Value>, &str) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out: Vec<(T, u32)> = Vec::new();
        for (i, value) in list.map_or(&[][..], |l| l.get_ref()).iter().enumerate() {
            let key = format!("{key}[{i}]");
            let t = item(value, &key)?;
            if let Some((_, first_line)) = out.iter().find(|(seen, _)| *seen == t) {
                let problem = Problem::Duplicate {
                    what: format!("{noun} {t}"),
                    first_line: *first_line,
                };
                return Err(self.invalid(Some(value.span()), &key, problem));
            }
            out.push((t, self.line(value.span())));
        }
        Ok(out.into_iter().map(|(t, _)| t).collect())
    }

    fn connections(&self, raw: &RawConnections) -> Result<Connections> {
        let d = Connections::default();
        let max = Connections::MAX_TIMEOUT;
        let max_entries = self.int(
            &raw.max_entries,
            "connections.max_entries",
            1,
            Connections::MAX_MAX_ENTRIES,
        )?;
        let tcp = self.int(&raw.tcp_timeout, "connections.tcp_timeout", 1, max)?;
        let tcpfin = self.int(&raw.tcpfin_timeout, "connections.tcpfin_timeout", 1, max)?;
        let udp = self.int(&raw.udp_timeout, "connections.udp_timeout", 1, max)?;
        let ftp_ports = match &raw.ftp_ports {
            None => d.ftp_ports.clone(),
            Some(list) => {
                self.unique_list(Some(list), "connections.ftp_ports", "port", |item, key| {
                    self.int_value(item, key, 1u16, u16::MAX)
                })?
            }
        };
        Ok(Connections {
            ftp_ports,
            max_entries: max_entries.unwrap_or(d.max_entries),
            tcp_timeout: tcp.unwrap_or(d.tcp_timeout),
            tcpfin_timeout: tcpfin.unwrap_or(d.tcpfin_timeout),
            udp_timeout: udp.unwrap_or(d.udp_timeout),
        })
    }

    fn control(&self, raw: &RawControl) -> Result<Control> {
        let expected = format!("a Unix socket path of 1..={MAX_SOCKET_PATH} bytes");
        let socket = self.string(&raw.socket, "control.socket", &expected, |s| {
            (!s.is_empty() && s.len() <= MAX_SOCKET_PATH && !s.contains('\0'))
                .then(|| PathBuf::from(s))
        })?;
        Ok(Control {
            socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        })
    }

    fn services(
        &self,
        raw: &[Spanned<RawService>],
        dataplane: &Dataplane,
    ) -> Result<Vec<ServiceConfig>> {
        let mut first_line = HashMap::new();
        let mut services = Vec::with_capacity(raw.len());
        for (i, table) in raw.iter().enumerate() {
            let key = format!("services[{i}]");
            let service = self.service(table, &key, dataplane)?;
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

    fn service(
        &self,
        table: &Spanned<RawService>,
        key: &str,
        dataplane: &Dataplane,
    ) -> Result<ServiceConfig> {
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
        let mut service = ServiceConfig {
            proto,
            vip,
            scheduler: scheduler.to_owned(),
            persistence_timeout,
            persistence_netmask: persistence_netmask.unwrap_or(Ipv4Addr::BROADCAST),
            scheduler_flags,
            mh_table_size,
            reals: Vec::new(),
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
            let parsed = self.real(real, &key, vip, dataplane)?;
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
        Ok(service)
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
        dataplane: &Dataplane,
    ) -> Result<RealConfig> {
        let raw = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let addr = self.socket_addr(&raw.addr, &k("addr"))?.ok_or_else(|| {
            let expected = "the real server's address and port, e.g. \"198.18.2.11:80\"";
            self.missing(Some(table.span()), &k("addr"), expected)
        })?;
        let modes = [
            ("dr", Forward::Dr),
            ("tun", Forward::Tun),
            ("nat", Forward::Nat),
        ];
        let forward = self
            .choice(&raw.forward, &k("forward"), &modes)?
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
        };
        rules::check_real(vip, &real, dataplane.tunnel_source).map_err(|(field, problem)| {
            let (name, leaf) = match field {
                Field::Forward => ("forward", &raw.forward),
                Field::LowerThreshold => ("lower_threshold", &raw.lower_threshold),
                Field::UpperThreshold => ("upper_threshold", &raw.upper_threshold),
                Field::Weight => ("weight", &raw.weight),
                _ => ("addr", &raw.addr),
            };
            self.invalid(leaf.as_ref().map(Spanned::span), &k(name), problem)
        })?;
        Ok(real)
    }
}

// ---- helpers ---------------------------------------------------------------

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_column(text: &str, pos: usize) -> (u32, u32) {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (clamp(line), clamp(column))
}

/// The key path of the smallest key or value in `doc` whose span holds `pos`.
///
/// Spans of tables written as `[header]` cover only the header, so the walk
/// cannot prune by containment; configuration files are small.
fn key_at(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    fn consider(span: Range<usize>, path: &str, pos: usize, best: &mut Option<(usize, String)>) {
        let holds = span.contains(&pos) || (span.is_empty() && span.start == pos);
        if holds && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
            *best = Some((span.len(), path.to_owned()));
        }
    }
    fn walk_value(
        value: &Spanned<DeValue<'_>>,
        path: &str,
        pos: usize,
        best: &mut Option<(usize, String)>,
    ) {
        consider(value.span(), path, pos, best);
        match value.get_ref() {
            DeValue::Table(table) => walk_table(table, path, pos, best),
            DeValue::Array(array) => {
                for (i, item) in array.iter().enumerate() {
                    walk_value(item, &format!("{path}[{i}]"), pos, best);
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        table: &DeTable<'_>,
        prefix: &str,
        pos: usize,
        best: &mut Option<(usize, String)>,
    ) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            consider(key.span(), &path, pos, best);
            walk_value(value, &path, pos, best);
        }
    }
    let mut best = None;
    walk_table(doc, "", pos, &mut best);
    best.map(|(_, path)| path)
}

/// A value as the operator wrote it, for "got ..." in messages.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "a list".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// `one of "a", "b", "c"`.
fn one_of<'a>(names: impl Iterator<Item = &'a &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    format!("one of {}", quoted.join(", "))
}

/// As Linux `dev_valid_name`: 1..IFNAMSIZ bytes, not `.` or `..`, no `/`,
/// `:` or whitespace.
fn is_ifname(name: &str) -> bool {
    (1..=MAX_IFNAME).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Not unspecified, multicast or the IPv4 broadcast address.
fn is_unicast(ip: IpAddr) -> bool {
    !ip.is_unspecified()
        && !ip.is_multicast()
        && match ip {
            IpAddr::V4(v4) => !v4.is_broadcast(),
            IpAddr::V6(_) => true,
        }
}
