//! keepalived's `virtual_server` blocks as xdpvs `[[services]]` tables.
//!
//! keepalived's defaults cascade (virtual server → real server → checker,
//! `keepalived.conf(5)`); the converter resolves them the same way and
//! writes each check's `retry` and `delay_before_retry` explicitly, since
//! keepalived's defaults for them differ by checker (MISC_CHECK retries 0
//! times, DNS_CHECK 3 and waits `delay_loop`, HTTP_GET/SSL_GET wait 3 s).
//! A statement is read in two passes per block, settings first and then
//! the blocks inside, because keepalived applies a virtual server's
//! settings to its real servers wherever in the block they are written.
//!
//! Every statement that does not become a key is named in a [`Note`] with
//! its file and line: a whole block that is not a virtual server in one
//! line, an unsupported key inside a virtual server on its own.
//! Each service and real server is judged by the same [`rules`] the
//! configuration file is, so that what is printed is accepted.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use toml::Value;

use super::parse::{At, Node, Note};
use crate::config::rules::{self, Field};
use crate::config::{DEFAULT_SCHEDULER, Forward, Protocol, RealConfig, SCHEDULERS, ServiceConfig};
use crate::sched::SCHED_FLAG_NAMES;

/// A virtual server group larger than this (after range expansion) is
/// refused: it would print that many services.
pub const MAX_GROUP_MEMBERS: usize = 4096;

/// A table to print: where it came from and its keys, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub from: At,
    pub what: String,
    pub keys: Vec<(&'static str, Value)>,
}

impl Table {
    fn new(from: &At, what: String) -> Table {
        Table {
            from: from.clone(),
            what,
            keys: Vec::new(),
        }
    }

    fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.keys.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key, value)),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| *k == key)
    }
}

/// A converted real server and its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct RealOut {
    pub table: Table,
    pub checks: Vec<Table>,
}

/// A converted virtual service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOut {
    pub table: Table,
    pub reals: Vec<RealOut>,
}

/// Converts the top-level statements; what is not converted is pushed to
/// `notes`.
///
/// Every statement the converter dispatched (to a key or to a note) is
/// added to `read`; a statement outside it and outside every noted block
/// was dropped, which `super::finish` turns into a note of its own.
pub fn convert(nodes: &[Node], notes: &mut Vec<Note>, read: &mut HashSet<At>) -> Vec<ServiceOut> {
    let mut c = Converter {
        notes,
        read,
        groups: HashMap::new(),
    };
    for n in nodes.iter().filter(|n| n.key() == "virtual_server_group") {
        c.group(n);
    }
    let mut out: Vec<ServiceOut> = Vec::new();
    let mut seen: HashMap<(&'static str, SocketAddr), At> = HashMap::new();
    for n in nodes {
        c.read.insert(n.at.clone());
        match n.key() {
            "virtual_server_group" => {}
            "virtual_server" => {
                for s in c.virtual_server(n) {
                    let proto = s.proto;
                    if let Some(first) = seen.get(&(proto, s.vip)) {
                        let why = format!(
                            "{} {} is already defined at {first} (this one is not converted)",
                            proto.to_uppercase(),
                            s.vip
                        );
                        c.note(&n.at, why);
                        continue;
                    }
                    seen.insert((proto, s.vip), n.at.clone());
                    out.push(s.out);
                }
            }
            "SSL" => c.note(
                &n.at,
                "SSL: client certificates and CA for SSL_GET are not supported (ignored); \
                 see verify_certificate and ca_file of https checks",
            ),
            key if key.starts_with('$') => c.note(
                &n.at,
                format!(
                    "{}: parameter definitions are not supported (ignored; their uses are \
                     not substituted)",
                    n.words.join(" ")
                ),
            ),
            _ => {
                let what = n.words.join(" ");
                c.note(&n.at, format!("{what}: not a virtual server (ignored)"))
            }
        }
    }
    out
}

/// A service with the key it is unique by.
struct Converted {
    proto: &'static str,
    vip: SocketAddr,
    out: ServiceOut,
}

/// A group member: an address and port (0 when none is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    ip: IpAddr,
    port: u16,
}

struct Converter<'n> {
    notes: &'n mut Vec<Note>,
    read: &'n mut HashSet<At>,
    groups: HashMap<String, Vec<Member>>,
}

/// What a real server or checker inherits (keepalived.conf(5): "the
/// virtual server setting is the default for real servers, and the real
/// server setting is the default for checkers").
#[derive(Debug, Clone, Default)]
struct Inherited {
    delay_loop: Option<u32>,
    connect_timeout: Option<u32>,
    retry: Option<u32>,
    delay_before_retry: Option<u32>,
    alpha: Option<bool>,
    virtualhost: Option<String>,
}

impl Inherited {
    /// Takes a setting shared by virtual servers, real servers and
    /// checkers; false when `n` is not one.
    fn read(&mut self, c: &mut Converter<'_>, n: &Node) -> bool {
        match n.key() {
            "delay_loop" => self.delay_loop = c.timer(n).or(self.delay_loop),
            "connect_timeout" => self.connect_timeout = c.timer(n).or(self.connect_timeout),
            "retry" | "nb_get_retry" => self.retry = c.uint(n, 0, u32::MAX).or(self.retry),
            "delay_before_retry" => {
                self.delay_before_retry = c.timer(n).or(self.delay_before_retry)
            }
            "alpha" => self.alpha = c.boolean(n).or(self.alpha),
            "virtualhost" => self.virtualhost = c.string(n).or(self.virtualhost.take()),
            _ => return false,
        }
        true
    }
}

/// A real server before it is placed in a service (its port and forward
/// depend on the VIP).
#[derive(Debug, Clone)]
struct Real {
    at: At,
    ip: IpAddr,
    port: Option<u16>,
    forward: Forward,
    table: Table,
    checks: Vec<Table>,
    weight: u32,
    upper: u32,
    lower: u32,
}

/// Words of keepalived's boolean values.
const TRUE: &[&str] = &["on", "true", "yes"];
const FALSE: &[&str] = &["off", "false", "no"];

impl Converter<'_> {
    fn note(&mut self, at: &At, message: impl Into<String>) {
        self.notes.push(Note {
            at: at.clone(),
            message: message.into(),
        });
    }

    /// `KEY: why` at the statement.
    fn refuse(&mut self, n: &Node, why: impl std::fmt::Display) {
        let what = n.words.join(" ");
        self.note(&n.at, format!("{what}: {why}"));
    }

    fn unsupported(&mut self, n: &Node, what: &str) {
        self.refuse(n, format!("{what} (not converted)"));
    }

    /// The one argument of `n`, or a note.
    fn arg<'a>(&mut self, n: &'a Node) -> Option<&'a str> {
        match n.args() {
            [a] => Some(a),
            [] => {
                self.refuse(n, "a value is missing (ignored)");
                None
            }
            [a, ..] => {
                self.refuse(n, "only the first value is used; the rest are ignored");
                Some(a)
            }
        }
    }

    fn uint(&mut self, n: &Node, lo: u32, hi: u32) -> Option<u32> {
        let a = self.arg(n)?;
        match a.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                self.refuse(n, format!("expected an integer {lo}..={hi} (ignored)"));
                None
            }
        }
    }

    /// A keepalived `<TIMER>`: seconds, possibly fractional; xdpvs counts
    /// whole seconds, so a fraction is rounded up (and named).
    fn timer(&mut self, n: &Node) -> Option<u32> {
        let a = self.arg(n)?;
        let Some(v) = a.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0) else {
            self.refuse(n, "expected a time in seconds (ignored)");
            return None;
        };
        let whole = v.ceil();
        if whole > f64::from(u32::MAX) {
            self.refuse(n, "time too large (ignored)");
            return None;
        }
        if whole != v {
            self.refuse(n, format!("xdpvs counts whole seconds: {whole} used"));
        }
        Some(whole as u32)
    }

    /// A keepalived `<BOOL>`, where a bare keyword means true.
    fn boolean(&mut self, n: &Node) -> Option<bool> {
        match n.args() {
            [] => Some(true),
            [a] if TRUE.contains(&a.to_lowercase().as_str()) => Some(true),
            [a] if FALSE.contains(&a.to_lowercase().as_str()) => Some(false),
            _ => {
                self.refuse(n, "expected on|off|true|false|yes|no (ignored)");
                None
            }
        }
    }

    fn string(&mut self, n: &Node) -> Option<String> {
        self.arg(n).map(str::to_owned)
    }

    /// A script statement (`notify_up`, `quorum_up`): the command, and
    /// the user it would run as, which xdpvs does not take per script.
    fn script(&mut self, n: &Node) -> Option<String> {
        match n.args() {
            [] => {
                self.refuse(n, "a command is missing (ignored)");
                None
            }
            [cmd] => Some(cmd.clone()),
            [cmd, ..] => {
                let why = "a user (and group) per script is not supported: the command runs \
                           as xdpvs's user";
                self.refuse(n, why);
                Some(cmd.clone())
            }
        }
    }

    fn ip(&mut self, n: &Node, word: &str) -> Option<IpAddr> {
        match word.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.refuse(n, format!("{word:?} is not an IP address (not converted)"));
                None
            }
        }
    }

    fn port(&mut self, n: &Node, word: Option<&String>) -> Option<Option<u16>> {
        match word {
            None => Some(None),
            Some(w) => match w.parse::<u16>() {
                Ok(p) => Some(Some(p)),
                Err(_) => {
                    self.refuse(n, format!("{w:?} is not a port (not converted)"));
                    None
                }
            },
        }
    }

    // ---- virtual_server_group -------------------------------------------

    fn group(&mut self, n: &Node) {
        let [name] = n.args() else {
            self.refuse(n, "expected one group name (ignored)");
            return;
        };
        let mut members = Vec::new();
        for m in n.children() {
            self.read.insert(m.at.clone());
            if m.block.is_some() {
                self.unsupported(m, "a block inside virtual_server_group");
                continue;
            }
            if m.key() == "fwmark" {
                self.unsupported(
                    m,
                    "fwmark members are not supported: xdpvs matches address and port",
                );
                continue;
            }
            let Some(port) = self.port(m, m.words.get(1)) else {
                continue;
            };
            if m.words.len() > 2 {
                self.unsupported(m, "expected an address (or range) and a port");
                continue;
            }
            match expand_range(m.key()) {
                Ok(ips) if members.len() + ips.len() > MAX_GROUP_MEMBERS => {
                    let why =
                        format!("the group would hold more than {MAX_GROUP_MEMBERS} addresses");
                    self.unsupported(m, &why);
                }
                Ok(ips) => members.extend(ips.into_iter().map(|ip| Member {
                    ip,
                    port: port.unwrap_or(0),
                })),
                Err(why) => self.unsupported(m, &why),
            }
        }
        if self.groups.insert(name.clone(), members).is_some() {
            self.refuse(n, "a second group of this name replaces the first");
        }
    }

    // ---- virtual_server ---------------------------------------------------

    fn virtual_server(&mut self, n: &Node) -> Vec<Converted> {
        let members: Vec<Member> = match n.args() {
            [f, ..] if f == "fwmark" => {
                self.refuse(
                    n,
                    "fwmark services are not supported: xdpvs matches the virtual address and \
                     port (not converted)",
                );
                return Vec::new();
            }
            [g, name] if g == "group" => match self.groups.get(name) {
                Some(m) if m.is_empty() => {
                    self.refuse(n, "the group has no address xdpvs can use (not converted)");
                    return Vec::new();
                }
                Some(m) => m.clone(),
                None => {
                    self.refuse(n, "no virtual_server_group of this name (not converted)");
                    return Vec::new();
                }
            },
            [ip] | [ip, _] => {
                let Some(ip) = self.ip(n, ip) else {
                    return Vec::new();
                };
                let Some(port) = self.port(n, n.words.get(2)) else {
                    return Vec::new();
                };
                vec![Member {
                    ip,
                    port: port.unwrap_or(0),
                }]
            }
            _ => {
                self.refuse(
                    n,
                    "expected IP [PORT], fwmark N or group NAME (not converted)",
                );
                return Vec::new();
            }
        };

        // Pass 1: the settings.
        let mut inherited = Inherited::default();
        let mut vs = Vs::default();
        for s in n.children().iter().filter(|s| s.block.is_none()) {
            self.read.insert(s.at.clone());
            if inherited.read(self, s) {
                continue;
            }
            self.vs_setting(s, &mut vs);
        }
        let proto = vs.proto.unwrap_or("tcp");
        let scheduler = vs
            .scheduler
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned());
        let forward = vs.forward.unwrap_or(Forward::Nat);
        let flags: Vec<&'static str> = vs
            .flags
            .iter()
            .filter_map(|(s, name)| {
                let restricted = SCHED_FLAG_NAMES
                    .iter()
                    .find(|(n, ..)| n == name)
                    .and_then(|f| f.2);
                match restricted {
                    Some(only) if only != scheduler => {
                        self.refuse(s, format!("only for the {only} scheduler (ignored)"));
                        None
                    }
                    _ => Some(*name),
                }
            })
            .collect();

        // Pass 2: the real servers.
        let mut reals = Vec::new();
        for s in n.children().iter().filter(|s| s.block.is_some()) {
            self.read.insert(s.at.clone());
            match s.key() {
                "real_server" => {
                    if let Some(r) = self.real_server(s, forward, &inherited) {
                        reals.push(r);
                    }
                }
                _ => self.unsupported(s, "unknown block in virtual_server"),
            }
        }

        let mut out = Vec::new();
        for m in members {
            let vip = SocketAddr::new(m.ip, m.port);
            let mut service = ServiceConfig::new(
                if proto == "udp" {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                vip,
                &scheduler,
            );
            service.persistence_timeout = vs.persistence_timeout.unwrap_or(0);
            if let Some(mask) = vs.netmask.filter(|_| vip.is_ipv4()) {
                service.persistence_netmask = mask;
            }
            if let Err((_, problem)) = rules::check_service(&service) {
                let why = format!("{problem} (service {vip} not converted)");
                self.refuse(n, why);
                continue;
            }
            let mut table = Table::new(&n.at, format!("virtual_server {} {}", m.ip, m.port));
            table.set("proto", proto);
            table.set("vip", vip.to_string());
            table.set("scheduler", scheduler.clone());
            if service.persistence_timeout != 0 {
                table.set(
                    "persistence_timeout",
                    i64::from(service.persistence_timeout),
                );
            }
            if let (Some(mask), Some(s)) = (vs.netmask, &vs.netmask_node) {
                if vip.is_ipv4() {
                    table.set("persistence_netmask", mask.to_string());
                } else {
                    self.refuse(s, "IPv6 granularity is not supported (ignored)");
                }
            }
            if !flags.is_empty() {
                table.set(
                    "scheduler_flags",
                    Value::Array(flags.iter().map(|f| Value::from(*f)).collect()),
                );
            }
            if let Some(d) = inherited.delay_loop {
                table.set("delay_loop", i64::from(d));
            }
            if let Some(a) = inherited.alpha {
                table.set("alpha", a);
            }
            if let Some(v) = &inherited.virtualhost {
                table.set("virtualhost", v.clone());
            }
            if let Some(i) = vs.inhibit {
                table.set("inhibit_on_failure", i);
            }
            if let Some((at, ip, port)) = &vs.sorry {
                let port = port.unwrap_or(vip.port());
                let fwd = vs.sorry_forward.unwrap_or(forward);
                let port = if fwd == Forward::Nat || vip.port() == 0 {
                    port
                } else {
                    vip.port()
                };
                let real = RealConfig::new(SocketAddr::new(*ip, port), fwd, 1);
                match rules::check_real(vip, &real) {
                    Ok(()) => {
                        let mut t = toml::Table::new();
                        t.insert("addr".into(), real.addr.to_string().into());
                        t.insert("forward".into(), fwd.config_name().into());
                        t.insert("weight".into(), 1.into());
                        table.set("sorry_server", Value::Table(t));
                        if vs.sorry_inhibit {
                            table.set("sorry_server_inhibit", true);
                        }
                    }
                    Err((_, problem)) => {
                        self.note(at, format!("sorry_server: {problem} (not converted)"));
                    }
                }
            }
            for (key, v) in [("quorum", vs.quorum), ("hysteresis", vs.hysteresis)] {
                if let Some(v) = v {
                    table.set(key, i64::from(v));
                }
            }
            for (key, v) in [
                ("quorum_up", &vs.quorum_up),
                ("quorum_down", &vs.quorum_down),
            ] {
                if let Some(v) = v {
                    table.set(key, v.clone());
                }
            }
            let mut placed = Vec::new();
            for r in &reals {
                if let Some(r) = self.place(r, vip) {
                    if placed
                        .iter()
                        .any(|p: &RealOut| p.table.keys[0] == r.table.keys[0])
                    {
                        self.note(
                            &r.table.from,
                            format!(
                                "{} twice in service {vip} (the second is not converted)",
                                r.table.what
                            ),
                        );
                        continue;
                    }
                    placed.push(r);
                }
            }
            if placed.is_empty() {
                self.refuse(
                    n,
                    format!("service {vip} has no real server that converts (not converted)"),
                );
                continue;
            }
            out.push(Converted {
                proto,
                vip,
                out: ServiceOut {
                    table,
                    reals: placed,
                },
            });
        }
        out
    }

    /// One setting of a virtual server.
    fn vs_setting(&mut self, s: &Node, vs: &mut Vs) {
        match s.key() {
            "lb_algo" | "lvs_sched" => {
                if let Some(a) = self.arg(s) {
                    if SCHEDULERS.contains(&a) {
                        vs.scheduler = Some(a.to_owned());
                    } else {
                        let why = format!(
                            "xdpvs has no {a:?} scheduler (one of {}); wlc is used",
                            SCHEDULERS.join(" ")
                        );
                        self.refuse(s, why);
                    }
                }
            }
            "lb_kind" | "lvs_method" => vs.forward = self.forward(s).or(vs.forward),
            "protocol" => match self.arg(s).map(str::to_uppercase).as_deref() {
                Some("TCP") => vs.proto = Some("tcp"),
                Some("UDP") => vs.proto = Some("udp"),
                Some(_) => self.refuse(s, "xdpvs balances TCP and UDP only; TCP is used"),
                None => {}
            },
            "persistence_timeout" => {
                vs.persistence_timeout = if s.args().is_empty() {
                    Some(360) // keepalived's (and ipvsadm -p's) default
                } else {
                    self.uint(s, 1, ServiceConfig::MAX_PERSISTENCE_TIMEOUT)
                };
            }
            "persistence_granularity" => {
                if let Some(a) = self.arg(s) {
                    match a.parse::<Ipv4Addr>() {
                        Ok(m) if rules::is_contiguous(m) => {
                            vs.netmask = Some(m);
                            vs.netmask_node = Some(s.clone());
                        }
                        _ if a.parse::<u8>().is_ok() => {
                            self.refuse(s, "IPv6 granularity is not supported (ignored)")
                        }
                        _ => self.refuse(s, "expected a contiguous IPv4 netmask (ignored)"),
                    }
                }
            }
            name if SCHED_FLAG_NAMES.iter().any(|(f, ..)| *f == name) => {
                if !s.args().is_empty() {
                    self.refuse(s, "takes no value (the value is ignored)");
                }
                let name = SCHED_FLAG_NAMES
                    .iter()
                    .find(|(f, ..)| *f == name)
                    .expect("found")
                    .0;
                vs.flags.push((s.clone(), name));
            }
            "inhibit_on_failure" => vs.inhibit = self.boolean(s).or(vs.inhibit),
            "sorry_server" => {
                let args = s.args();
                if args.is_empty() || args.len() > 2 {
                    self.refuse(s, "expected IP [PORT] (ignored)");
                    return;
                }
                let Some(ip) = self.ip(s, &args[0]) else {
                    return;
                };
                let Some(port) = self.port(s, args.get(1)) else {
                    return;
                };
                vs.sorry = Some((s.at.clone(), ip, port));
            }
            "sorry_server_inhibit" => vs.sorry_inhibit = self.boolean(s).unwrap_or(false),
            "sorry_server_lvs_method" => vs.sorry_forward = self.forward(s).or(vs.sorry_forward),
            "quorum" => vs.quorum = self.uint(s, 1, u32::MAX),
            "hysteresis" => vs.hysteresis = self.uint(s, 0, u32::MAX),
            "quorum_up" => vs.quorum_up = self.script(s),
            "quorum_down" => vs.quorum_down = self.script(s),
            "ops" => self.unsupported(s, "one-packet scheduling is not supported"),
            "persistence_engine" => {
                self.unsupported(s, "persistence engines (sip) are not supported")
            }
            "ha_suspend" => self.unsupported(
                s,
                "xdpvs does not follow the VIP's presence on an interface",
            ),
            "smtp_alert" => {
                self.unsupported(s, "no e-mail alerts in xdpvs (state changes are logged)")
            }
            "snmp_name" => self.unsupported(s, "no SNMP in xdpvs (see [metrics])"),
            "omega" => self.unsupported(s, "notify scripts are not run at shutdown"),
            "warmup" => self.unsupported(s, "no random start delay of checks"),
            "ip_family" => self.unsupported(s, "only needed for fwmark services"),
            "weight" => self.unsupported(s, "a virtual server's own weight is not supported"),
            _ => self.unsupported(s, "unknown or unsupported in virtual_server"),
        }
    }

    /// `lb_kind` / `lvs_method`: NAT, DR or TUN (IPIP only).
    fn forward(&mut self, s: &Node) -> Option<Forward> {
        let f = match s.args().first().map(String::as_str) {
            Some("NAT") => Forward::Nat,
            Some("DR") => Forward::Dr,
            Some("TUN") => Forward::Tun,
            _ => {
                self.refuse(s, "expected NAT, DR or TUN (ignored)");
                return None;
            }
        };
        let rest = &s.args()[1..];
        if !rest.is_empty() && rest != ["type", "ipip"] {
            self.refuse(s, "xdpvs tunnels with IPIP only: TUN (ipip) is used");
        }
        Some(f)
    }

    // ---- real_server --------------------------------------------------------

    fn real_server(
        &mut self,
        n: &Node,
        vs_forward: Forward,
        vs_inherited: &Inherited,
    ) -> Option<Real> {
        let args = n.args();
        if args.is_empty() || args.len() > 2 {
            self.refuse(n, "expected IP [PORT] (not converted)");
            return None;
        }
        let ip = self.ip(n, &args[0])?;
        let port = self.port(n, args.get(1))?;
        let mut inherited = vs_inherited.clone();
        let mut table = Table::new(&n.at, format!("real_server {}", args.join(" ")));
        let (mut forward, mut weight, mut upper, mut lower) = (vs_forward, 1, 0, 0);
        for s in n.children().iter().filter(|s| s.block.is_none()) {
            self.read.insert(s.at.clone());
            if inherited.read(self, s) {
                continue;
            }
            match s.key() {
                "weight" => weight = self.uint(s, 0, RealConfig::MAX_WEIGHT).unwrap_or(weight),
                "lvs_method" => forward = self.forward(s).unwrap_or(forward),
                "uthreshold" => upper = self.uint(s, 0, rules::MAX_THRESHOLD).unwrap_or(upper),
                "lthreshold" => lower = self.uint(s, 0, rules::MAX_THRESHOLD).unwrap_or(lower),
                "inhibit_on_failure" => {
                    if let Some(b) = self.boolean(s) {
                        table.set("inhibit_on_failure", b);
                    }
                }
                "notify_up" => {
                    if let Some(cmd) = self.script(s) {
                        table.set("notify_up", cmd);
                    }
                }
                "notify_down" => {
                    if let Some(cmd) = self.script(s) {
                        table.set("notify_down", cmd);
                    }
                }
                "smtp_alert" => {
                    self.unsupported(s, "no e-mail alerts in xdpvs (state changes are logged)")
                }
                "snmp_name" => self.unsupported(s, "no SNMP in xdpvs (see [metrics])"),
                "warmup" => self.unsupported(s, "no random start delay of checks"),
                _ => self.unsupported(s, "unknown or unsupported in real_server"),
            }
        }
        let mut checks = Vec::new();
        for s in n.children().iter().filter(|s| s.block.is_some()) {
            self.read.insert(s.at.clone());
            if let Some(c) = self.checker(s, &inherited, vs_inherited) {
                checks.push(c);
            }
        }
        Some(Real {
            at: n.at.clone(),
            ip,
            port,
            forward,
            table,
            checks,
            weight,
            upper,
            lower,
        })
    }

    /// A real server in the service at `vip`: its port (the VIP's when
    /// none is given, as ipvsadm; DR and TUN cannot change the port, so a
    /// different one only directs the checks), judged by the rules.
    fn place(&mut self, r: &Real, vip: SocketAddr) -> Option<RealOut> {
        let mut port = r.port.unwrap_or(vip.port());
        let mut checks = r.checks.clone();
        if r.forward != Forward::Nat && vip.port() != 0 && port != vip.port() {
            let why = format!(
                "{} {port}: {} does not change the port, so the real server is \
                 {}:{} for clients; its checks still connect to port {port}",
                r.table
                    .what
                    .split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
                r.forward.config_name().to_uppercase(),
                r.ip,
                vip.port()
            );
            self.note(&r.at, why);
            for c in checks.iter_mut().filter(|c| !c.has("connect_port")) {
                if c.keys
                    .iter()
                    .any(|(k, v)| *k == "kind" && v.as_str() != Some("script"))
                {
                    c.set("connect_port", i64::from(port));
                }
            }
            port = vip.port();
        }
        let mut real = RealConfig::new(SocketAddr::new(r.ip, port), r.forward, r.weight);
        real.upper_threshold = r.upper;
        real.lower_threshold = r.lower;
        if let Err((field, problem)) = rules::check_real(vip, &real) {
            let key = match field {
                Field::LowerThreshold => "lthreshold: ",
                Field::Weight => "weight: ",
                _ => "",
            };
            let why = format!(
                "real_server {}: {key}{problem} (not converted into service {vip})",
                r.table.what
            );
            self.note(&r.at, why);
            return None;
        }
        let mut table = Table::new(&r.at, r.table.what.clone());
        table.set("addr", real.addr.to_string());
        table.set("forward", r.forward.config_name());
        table.set("weight", i64::from(real.weight));
        if real.upper_threshold != 0 {
            table.set("upper_threshold", i64::from(real.upper_threshold));
        }
        if real.lower_threshold != 0 {
            table.set("lower_threshold", i64::from(real.lower_threshold));
        }
        table.keys.extend(r.table.keys.iter().cloned());
        Some(RealOut { table, checks })
    }

    // ---- checkers -------------------------------------------------------------

    fn checker(&mut self, n: &Node, inherited: &Inherited, vs: &Inherited) -> Option<Table> {
        let (kind, default_retry, default_delay) = match n.key() {
            "TCP_CHECK" => ("tcp", 1, Some(1)),
            "HTTP_GET" => ("http", 1, Some(3)),
            "SSL_GET" => ("https", 1, Some(3)),
            "MISC_CHECK" => ("script", 0, Some(1)),
            "UDP_CHECK" => ("udp", 1, Some(1)),
            "DNS_CHECK" => ("dns", 3, None),
            "SMTP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                let why = format!(
                    "xdpvs has no {} checker; the real server is converted without this check",
                    n.key()
                );
                self.refuse(n, why);
                return None;
            }
            _ => {
                self.unsupported(n, "unknown block in real_server");
                return None;
            }
        };
        let mut t = Table::new(&n.at, n.key().to_owned());
        t.set("kind", kind);
        let mut own = inherited.clone();
        let mut urls = Vec::new();
        let mut url_hosts: Vec<Option<String>> = Vec::new();
        for s in n.children() {
            self.read.insert(s.at.clone());
            if s.block.is_none() && own.read(self, s) {
                continue;
            }
            match (kind, s.key()) {
                (_, "connect_ip") | (_, "bindto") => {
                    if let Some(ip) = self.arg(s).and_then(|a| self.ip(s, a)) {
                        let key = if s.key() == "bindto" {
                            "bindto"
                        } else {
                            "connect_ip"
                        };
                        t.set(key, ip.to_string());
                    }
                }
                (_, "connect_port") | (_, "bind_port") => {
                    if let Some(p) = self.uint(s, 1, 65535) {
                        let key = if s.key() == "bind_port" {
                            "bind_port"
                        } else {
                            "connect_port"
                        };
                        t.set(key, i64::from(p));
                    }
                }
                (_, "bind_if") => self.unsupported(s, "checks choose their interface by route"),
                (_, "fwmark") => self.unsupported(s, "checks do not mark their packets"),
                (_, "warmup") => self.unsupported(s, "no random start delay of checks"),
                (_, "log_all_failures") => {
                    self.unsupported(s, "every state change is logged; repeated failures are not")
                }
                ("http" | "https", "url") => {
                    if let Some((url, host)) = self.url(s, kind) {
                        urls.push(Value::Table(url));
                        url_hosts.push(host);
                    }
                }
                ("http" | "https", "http_protocol") => self.unsupported(
                    s,
                    "the HTTP version is xdpvs's own (HTTP/1.1 with Connection: close)",
                ),
                ("http" | "https", "fast_recovery") => {
                    self.unsupported(s, "all URLs are checked in each round")
                }
                ("https", "enable_sni") => {
                    if let Some(b) = self.boolean(s) {
                        t.set("sni", b);
                    }
                }
                ("https", "sni_name") => self.unsupported(
                    s,
                    "the SNI name is the check's virtualhost; set virtualhost instead",
                ),
                ("https", "tls_compliant") => {
                    self.unsupported(s, "TLS close_notify handling is the TLS library's")
                }
                ("script", "misc_path") => {
                    if let Some(cmd) = self.arg(s) {
                        t.set("command", cmd.to_owned());
                    }
                }
                ("script", "misc_timeout") => {
                    if let Some(v) = self.uint(s, 0, u32::MAX) {
                        t.set("timeout", i64::from(v));
                    }
                }
                ("script", "misc_dynamic") => {
                    if let Some(b) = self.boolean(s) {
                        t.set("dynamic", b);
                    }
                }
                ("script", "user") => match s.args() {
                    [u] => t.set("user", u.clone()),
                    [u, ..] => {
                        t.set("user", u.clone());
                        self.refuse(
                            s,
                            "the group is not supported: the user's own group is used",
                        );
                    }
                    [] => self.refuse(s, "a user name is missing (ignored)"),
                },
                ("udp", "payload") => match hex_string(s.args()) {
                    Some(h) => t.set("payload", h),
                    None => self.refuse(s, "expected hexadecimal digits (ignored)"),
                },
                ("udp", "require_reply") => {
                    t.set("require_reply", true);
                    if !s.args().is_empty() {
                        self.refuse(s, "the reply's content is not compared: any reply passes");
                    }
                }
                ("udp", "min_reply_length" | "max_reply_length") => {
                    self.unsupported(s, "the reply's length is not checked")
                }
                ("dns", "type") => {
                    if let Some(a) = self.arg(s) {
                        t.set("query_type", a.to_uppercase());
                    }
                }
                ("dns", "name") => {
                    if let Some(a) = self.arg(s) {
                        t.set("query_name", a.to_owned());
                    }
                }
                _ => self.unsupported(s, &format!("unknown or unsupported in {}", n.key())),
            }
        }
        // The keys every kind shares, resolved through the cascade; the
        // service's own values are on the service.
        if own.delay_loop != vs.delay_loop {
            t.set("interval", i64::from(own.delay_loop.unwrap_or(60)));
        }
        if let Some(ct) = own.connect_timeout {
            t.set("connect_timeout", i64::from(ct));
        }
        t.set("retry", i64::from(own.retry.unwrap_or(default_retry)));
        let delay = own
            .delay_before_retry
            .or(default_delay)
            .unwrap_or(own.delay_loop.unwrap_or(60));
        t.set("delay_before_retry", i64::from(delay));
        if own.alpha != vs.alpha {
            t.set("alpha", own.alpha.unwrap_or(false));
        }
        if kind == "http" || kind == "https" {
            // A URL's own virtualhost, when every URL of the check has the
            // same one, is the check's; else the nearest level's.
            let first = url_hosts.first().cloned().flatten();
            let host = if url_hosts.iter().all(|h| *h == first) {
                first.or(own.virtualhost.clone())
            } else {
                self.refuse(
                    n,
                    "URLs with different virtualhosts: the check's (or the real server's) \
                     is used for all",
                );
                own.virtualhost.clone()
            };
            if let Some(h) = host.filter(|h| Some(h) != vs.virtualhost.as_ref()) {
                t.set("virtualhost", h);
            }
            if kind == "https" && !t.has("sni") {
                // keepalived sends SNI only with enable_sni.
                t.set("sni", false);
            }
            if urls.is_empty() {
                let root = toml::Table::from_iter([("path".to_owned(), Value::from("/"))]);
                urls.push(Value::Table(root));
                self.refuse(n, "no url block: GET / with status 200-299 is checked");
            }
            t.set("urls", Value::Array(urls));
        }
        if kind == "script" && !t.has("command") {
            self.refuse(n, "misc_path is missing (check not converted)");
            return None;
        }
        if kind == "dns" {
            t.set("rcode", "NOERROR");
            if !t.has("query_type") {
                t.set("query_type", "SOA");
            }
            if !t.has("query_name") {
                t.set("query_name", ".");
            }
        }
        if kind == "script" && !t.has("timeout") {
            // keepalived kills the script after delay_loop seconds.
            t.set("timeout", i64::from(own.delay_loop.unwrap_or(60)));
        }
        Some(t)
    }

    /// A `url { }` block: the URL's table and its own virtualhost.
    fn url(&mut self, n: &Node, kind: &str) -> Option<(toml::Table, Option<String>)> {
        let mut url = toml::Table::new();
        let mut host = None;
        for s in n.children() {
            self.read.insert(s.at.clone());
            match s.key() {
                "path" => {
                    if let Some(p) = self.arg(s) {
                        url.insert("path".into(), p.into());
                    }
                }
                "digest" => match self.arg(s) {
                    Some(d) if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        url.insert("digest".into(), d.to_lowercase().into());
                    }
                    Some(_) => {
                        self.refuse(s, "expected an MD5 digest, 32 hexadecimal digits (ignored)")
                    }
                    None => {}
                },
                "status_code" => {
                    let mut codes = Vec::new();
                    for a in s.args() {
                        match status_item(a) {
                            Some(v) => codes.push(v),
                            None => self.refuse(
                                s,
                                format!("{a:?} is not a status code or range (ignored)"),
                            ),
                        }
                    }
                    if !codes.is_empty() {
                        url.insert("status".into(), Value::Array(codes));
                    }
                }
                "virtualhost" => host = self.string(s),
                "regex" => {
                    if let Some(r) = self.arg(s) {
                        url.insert("regex".into(), r.into());
                    }
                }
                "regex_no_match" => self.unsupported(s, "a regex can only be required to match"),
                "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                    self.unsupported(s, "regex options are not supported")
                }
                "tls_compliant" if kind == "https" => {
                    self.unsupported(s, "TLS close_notify handling is the TLS library's")
                }
                _ => self.unsupported(s, "unknown or unsupported in url"),
            }
        }
        if !url.contains_key("path") {
            self.refuse(n, "a url without a path (not converted)");
            return None;
        }
        Some((url, host))
    }
}

/// A virtual server's own settings (pass 1).
#[derive(Default)]
struct Vs {
    proto: Option<&'static str>,
    scheduler: Option<String>,
    forward: Option<Forward>,
    persistence_timeout: Option<u32>,
    netmask: Option<Ipv4Addr>,
    netmask_node: Option<Node>,
    flags: Vec<(Node, &'static str)>,
    inhibit: Option<bool>,
    sorry: Option<(At, IpAddr, Option<u16>)>,
    sorry_inhibit: bool,
    sorry_forward: Option<Forward>,
    quorum: Option<u32>,
    hysteresis: Option<u32>,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
}

/// A status_code item: `200` or `200-299` (as the schema's integer or
/// "A-B" string).
fn status_item(a: &str) -> Option<Value> {
    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    match a.split_once('-') {
        None => code(a).map(|c| Value::from(i64::from(c))),
        Some((lo, hi)) => {
            let (lo, hi) = (code(lo)?, code(hi)?);
            (lo <= hi).then(|| Value::from(format!("{lo}-{hi}")))
        }
    }
}

/// keepalived's free-form hex string (`Ab12f 3 456`): each word is read in
/// pairs of digits from the left, a last single digit standing for `0X`;
/// as one run of lower-case pairs.
fn hex_string(words: &[String]) -> Option<String> {
    let mut out = String::new();
    for w in words {
        if !w.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let w = w.to_lowercase();
        let mut chunks = w.as_bytes().chunks(2);
        for c in chunks.by_ref() {
            if c.len() == 1 {
                out.push('0');
            }
            out.push_str(std::str::from_utf8(c).ok()?);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A group member's addresses: `A`, `A-N` (the last IPv4 byte, or the
/// last IPv6 group in hex, runs to N), `A-B` (two full addresses),
/// `A/len` (every address of the prefix).
fn expand_range(spec: &str) -> Result<Vec<IpAddr>, String> {
    let bad = || format!("{spec:?} is not an address or address range");
    let span = |lo: u128, hi: u128, v4: bool| -> Result<Vec<IpAddr>, String> {
        if hi < lo {
            return Err(format!("{spec:?}: the range ends before it starts"));
        }
        if hi - lo >= MAX_GROUP_MEMBERS as u128 {
            return Err(format!("{spec:?}: more than {MAX_GROUP_MEMBERS} addresses"));
        }
        Ok((lo..=hi)
            .map(|n| {
                if v4 {
                    IpAddr::V4(Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(n))
                }
            })
            .collect())
    };
    let num = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    if let Some((addr, len)) = spec.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = len.parse().ok().filter(|l| *l <= bits).ok_or_else(bad)?;
        let host = bits - len;
        if host >= 13 {
            return Err(format!("{spec:?}: more than {MAX_GROUP_MEMBERS} addresses"));
        }
        let lo = num(ip) >> host << host;
        return span(lo, lo + (1u128 << host) - 1, ip.is_ipv4());
    }
    let Some((first, last)) = spec.rsplit_once('-') else {
        return spec.parse::<IpAddr>().map(|ip| vec![ip]).map_err(|_| bad());
    };
    let ip: IpAddr = first.parse().map_err(|_| bad())?;
    if let Ok(end) = last.parse::<IpAddr>() {
        if end.is_ipv4() != ip.is_ipv4() {
            return Err(bad());
        }
        return span(num(ip), num(end), ip.is_ipv4());
    }
    let lo = num(ip);
    let (mask, end) = match ip {
        IpAddr::V4(_) => (0xff, last.parse::<u8>().map(u128::from).map_err(|_| bad())?),
        IpAddr::V6(_) => (
            0xffff,
            u16::from_str_radix(last, 16)
                .map(u128::from)
                .map_err(|_| bad())?,
        ),
    };
    span(lo, (lo & !mask) | end, ip.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_as_keepalived_writes_them() {
        let ips = |s: &str| -> Vec<String> {
            expand_range(s)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            ips("198.18.1.1-3"),
            ["198.18.1.1", "198.18.1.2", "198.18.1.3"]
        );
        assert_eq!(
            ips("198.18.1.255-198.18.2.1"),
            ["198.18.1.255", "198.18.2.0", "198.18.2.1"]
        );
        assert_eq!(
            ips("198.18.1.9/30"),
            ["198.18.1.8", "198.18.1.9", "198.18.1.10", "198.18.1.11"]
        );
        assert_eq!(
            ips("2001:db8::9-b"),
            ["2001:db8::9", "2001:db8::a", "2001:db8::b"]
        );
        assert_eq!(ips("2001:db8::1"), ["2001:db8::1"]);
        assert!(expand_range("198.18.1.5-3").is_err());
        assert!(expand_range("198.18.0.0/8").is_err());
        assert!(expand_range("not-an-ip").is_err());
        assert!(expand_range("198.18.1.1-2001:db8::1").is_err());
    }

    #[test]
    fn hex_strings_pair_from_the_left() {
        let w = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        // keepalived.conf(5)'s own example.
        assert_eq!(
            hex_string(&w("Ab12f 3 456 546443123")).as_deref(),
            Some("ab120f0345065464431203")
        );
        assert_eq!(hex_string(&w("zz")), None);
    }

    #[test]
    fn status_codes_and_ranges() {
        assert_eq!(status_item("200"), Some(Value::from(200)));
        assert_eq!(status_item("300-399"), Some(Value::from("300-399")));
        assert_eq!(status_item("399-300"), None);
        assert_eq!(status_item("2000"), None);
    }
}
