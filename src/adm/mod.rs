//! `xdpvsadm`'s command line: ipvsadm's, parsed as ipvsadm 1.2x/1.31 parses
//! it (`parse_options`, `process_options`, `generic_opt_check` in
//! ipvsadm.c), into a [`Request`] for the control socket; and the reply
//! rendered as ipvsadm prints it.
//!
//! What ipvsadm's parser does, this one does: the first option must be the
//! command; short options may be bundled (`-Ln`); a long option takes its
//! argument as `--opt=value` or `--opt value`; `-p` takes an optional
//! timeout (the next word, unless it starts with `-`; 300 if absent);
//! `host[:port]` accepts names, `/etc/services` names and `[v6]:port`; a
//! real server without a port gets the service's; `-g` and `-i` servers
//! always get the service's port; options are checked against ipvsadm's
//! table of legal command/option combinations. Errors have ipvsadm's words
//! and exit status: 2 for a command line ipvsadm rejects itself, 255 for
//! an unknown option (popt's error) or an operation the director refuses.
//!
//! Differences, all refusals with a message: fwmark services (`-f`, `-6`),
//! the sync daemon (`--start-daemon`, `--stop-daemon`, `--daemon`,
//! `--mcast-*`, `--syncid`, `--sync-maxlen`), one-packet scheduling
//! (`-o`), persistence engines (`--pe`) and SCTP do not exist in xdpvs.
//! `-R` applies its rules all or none, where ipvsadm applies them one by
//! one. One option is added: `--socket PATH`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::rules::SCHED_FLAG_NAMES;
use crate::config::{DEFAULT_SCHEDULER, DEFAULT_SOCKET, Forward, Protocol, SchedFlags};
use crate::ctrl::proto::{
    self, DestSpec, MAX_RESPONSE, Reply, Request, Response, ServiceKey, ServiceSpec, ServiceView,
};
use listing::{Format, Names};

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: u32 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`: `-p` without a value.
const DEFAULT_PERSISTENCE: u32 = 300;
/// How long `xdpvsadm` waits for the daemon's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a command line was refused, or a request failed: one line for
/// stderr, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmError {
    pub message: String,
    pub status: u8,
}

impl AdmError {
    /// ipvsadm's `fail(2, ...)`.
    fn fail(message: impl Into<String>) -> AdmError {
        AdmError {
            message: message.into(),
            status: 2,
        }
    }

    /// ipvsadm's `tryhelp_exit(argv[0], -1)`.
    fn tryhelp() -> AdmError {
        AdmError {
            message: "Try `xdpvsadm -h' or 'xdpvsadm --help' for more information.".into(),
            status: 255,
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--socket`, or [`DEFAULT_SOCKET`].
    pub socket: PathBuf,
    pub action: Action,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the request, print the reply as `view` says.
    Send { request: Request, view: View },
    /// `-R`: read rules from stdin ([`parse_rules`]) and send them as one
    /// [`Request::Restore`].
    Restore,
    /// `-h`: print [`usage`].
    Help,
    /// `-v`.
    Version,
}

/// How a reply is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct View {
    /// `-n`.
    pub numeric: bool,
    /// `-S`: rules rather than the table.
    pub save: bool,
    /// `--nosort`: the daemon's order.
    pub nosort: bool,
    /// `--stats`, `--rate`, ... and `--exact`.
    pub listing: listing::Options,
    /// `--persistent-conn` (also changes `-c`'s heading).
    pub persistent_conn: bool,
}

// ---- ipvsadm's option table --------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// The row of ipvsadm's `commands_v_options` for the options we have,
    /// in [`OPTS`] order: `+` compulsory, `x` illegal, `1` at most one of
    /// them, `.` optional.
    fn row(self) -> &'static [u8; OPT_COUNT] {
        // Columns: -n -c svc -s -p -M -r fwd -w -x -y --timeout --stats
        // --rate --thresholds --persistent-conn --nosort --exact -b --socket.
        match self {
            Cmd::Add | Cmd::Edit => b"xx+...xxxxxxxxxxxx..",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxx.",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxx.",
            Cmd::List => b".11xxxxxxxx1......x.",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+....xxxxxxxx.",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxx.",
            Cmd::Save => b".xxxxxxxxxxxxxxxxxx.",
            Cmd::Zero => b"xx.xxxxxxxxxxxxxxxx.",
        }
    }
}

const OPT_COUNT: usize = 20;

/// ipvsadm's `optnames`, for the options we have, in table order.
const OPTS: [&str; OPT_COUNT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "timeout",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "exact",
    "sched-flags",
    // Not an ipvsadm option: never in a command row, so always legal.
    "socket",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

/// What an option is, for the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Opt(Opt),
    Fwd(Forward),
    Sort,
    Socket,
    /// Exists in ipvsadm, not in xdpvs: refused with this reason.
    Unsupported(&'static str),
}

/// ipvsadm's popt table (1.31), plus `--socket`.
const TABLE: &[(&str, Option<char>, Arg, Tag)] = &[
    ("add-service", Some('A'), Arg::None, Tag::Cmd(Cmd::Add)),
    ("edit-service", Some('E'), Arg::None, Tag::Cmd(Cmd::Edit)),
    ("delete-service", Some('D'), Arg::None, Tag::Cmd(Cmd::Del)),
    ("clear", Some('C'), Arg::None, Tag::Cmd(Cmd::Flush)),
    ("list", Some('L'), Arg::None, Tag::Cmd(Cmd::List)),
    ("list", Some('l'), Arg::None, Tag::Cmd(Cmd::List)),
    ("zero", Some('Z'), Arg::None, Tag::Cmd(Cmd::Zero)),
    ("add-server", Some('a'), Arg::None, Tag::Cmd(Cmd::AddDest)),
    ("edit-server", Some('e'), Arg::None, Tag::Cmd(Cmd::EditDest)),
    (
        "delete-server",
        Some('d'),
        Arg::None,
        Tag::Cmd(Cmd::DelDest),
    ),
    ("set", None, Arg::None, Tag::Cmd(Cmd::Timeout)),
    ("help", Some('h'), Arg::None, Tag::Help),
    ("version", Some('v'), Arg::None, Tag::Version),
    ("restore", Some('R'), Arg::None, Tag::Cmd(Cmd::Restore)),
    ("save", Some('S'), Arg::None, Tag::Cmd(Cmd::Save)),
    ("tcp-service", Some('t'), Arg::Required, Tag::Tcp),
    ("udp-service", Some('u'), Arg::Required, Tag::Udp),
    (
        "scheduler",
        Some('s'),
        Arg::Required,
        Tag::Opt(Opt::Scheduler),
    ),
    (
        "persistent",
        Some('p'),
        Arg::Optional,
        Tag::Opt(Opt::Persistent),
    ),
    ("netmask", Some('M'), Arg::Required, Tag::Opt(Opt::Netmask)),
    (
        "real-server",
        Some('r'),
        Arg::Required,
        Tag::Opt(Opt::Server),
    ),
    ("masquerading", Some('m'), Arg::None, Tag::Fwd(Forward::Nat)),
    ("ipip", Some('i'), Arg::None, Tag::Fwd(Forward::Tun)),
    ("gatewaying", Some('g'), Arg::None, Tag::Fwd(Forward::Dr)),
    ("weight", Some('w'), Arg::Required, Tag::Opt(Opt::Weight)),
    (
        "u-threshold",
        Some('x'),
        Arg::Required,
        Tag::Opt(Opt::UThreshold),
    ),
    (
        "l-threshold",
        Some('y'),
        Arg::Required,
        Tag::Opt(Opt::LThreshold),
    ),
    ("numeric", Some('n'), Arg::None, Tag::Opt(Opt::Numeric)),
    (
        "connection",
        Some('c'),
        Arg::None,
        Tag::Opt(Opt::Connection),
    ),
    ("timeout", None, Arg::None, Tag::Opt(Opt::Timeout)),
    ("stats", None, Arg::None, Tag::Opt(Opt::Stats)),
    ("rate", None, Arg::None, Tag::Opt(Opt::Rate)),
    ("thresholds", None, Arg::None, Tag::Opt(Opt::Thresholds)),
    (
        "persistent-conn",
        None,
        Arg::None,
        Tag::Opt(Opt::PersistentConn),
    ),
    ("nosort", None, Arg::None, Tag::Opt(Opt::NoSort)),
    ("sort", None, Arg::None, Tag::Sort),
    ("exact", Some('X'), Arg::None, Tag::Opt(Opt::Exact)),
    (
        "sched-flags",
        Some('b'),
        Arg::Required,
        Tag::Opt(Opt::SchedFlags),
    ),
    ("socket", None, Arg::Required, Tag::Socket),
    (
        "fwmark-service",
        Some('f'),
        Arg::Required,
        Tag::Unsupported("fwmark services (-f) are not supported by xdpvs; use -t or -u"),
    ),
    (
        "ipv6",
        Some('6'),
        Arg::None,
        Tag::Unsupported("fwmark services (-f, -6) are not supported by xdpvs; use -t or -u"),
    ),
    (
        "sctp-service",
        None,
        Arg::Required,
        Tag::Unsupported("SCTP services are not supported by xdpvs; use -t or -u"),
    ),
    (
        "ops",
        Some('o'),
        Arg::None,
        Tag::Unsupported("one-packet scheduling (-o) is not supported by xdpvs"),
    ),
    (
        "pe",
        None,
        Arg::Required,
        Tag::Unsupported("persistence engines (--pe) are not supported by xdpvs"),
    ),
    (
        "start-daemon",
        None,
        Arg::Required,
        Tag::Unsupported("the connection sync daemon is not supported by xdpvs"),
    ),
    (
        "stop-daemon",
        None,
        Arg::Required,
        Tag::Unsupported("the connection sync daemon is not supported by xdpvs"),
    ),
    (
        "daemon",
        None,
        Arg::None,
        Tag::Unsupported("the connection sync daemon is not supported by xdpvs"),
    ),
    (
        "mcast-interface",
        None,
        Arg::Required,
        Tag::Unsupported("the connection sync daemon is not supported by xdpvs"),
    ),
    (
        "syncid",
        None,
        Arg::Required,
        Tag::Unsupported("the connection sync daemon is not supported by xdpvs"),
    ),
];

/// One option with its argument, as popt hands them out.
struct Item {
    tag: Tag,
    /// As written, for messages.
    spelled: String,
    arg: Option<String>,
}

/// popt's tokenizer: options with their arguments, and the leftover
/// arguments.
fn tokenize(args: &[String]) -> Result<(Vec<Item>, Vec<String>), AdmError> {
    let unknown = |spelled: &str| AdmError {
        message: format!("{spelled}: unknown option"),
        status: 255,
    };
    let missing = |spelled: &str| AdmError {
        message: format!("{spelled}: missing argument"),
        status: 255,
    };
    let mut items = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    // The next word as an optional argument: popt takes it unless it
    // starts with '-'.
    let optional_next = |i: &mut usize| -> Option<String> {
        let next = args.get(*i + 1)?;
        if next.starts_with('-') {
            return None;
        }
        *i += 1;
        Some(next.clone())
    };
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            rest.extend(args[i + 1..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, _, kind, tag)) = TABLE.iter().find(|e| e.0 == name) else {
                return Err(unknown(a));
            };
            let spelled = format!("--{name}");
            let arg = match (kind, inline) {
                (Arg::None, Some(_)) => return Err(unknown(a)),
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    i += 1;
                    Some(args.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                }
                (Arg::Optional, None) => optional_next(&mut i),
            };
            items.push(Item { tag, spelled, arg });
        } else if a.len() > 1 && a.starts_with('-') {
            // Bundled short options; one that takes an argument takes the
            // rest of the word, or the next word.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let spelled = format!("-{c}");
                let Some(&(_, _, kind, tag)) = TABLE.iter().find(|e| e.1 == Some(c)) else {
                    return Err(unknown(&spelled));
                };
                let tail: String = chars[j + 1..].iter().collect();
                let arg = match kind {
                    Arg::None => None,
                    _ if !tail.is_empty() => {
                        j = chars.len();
                        Some(tail)
                    }
                    Arg::Required => {
                        i += 1;
                        Some(args.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                    }
                    Arg::Optional => optional_next(&mut i),
                };
                items.push(Item { tag, spelled, arg });
                j += 1;
            }
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    Ok((items, rest))
}

/// A command line being parsed (`struct ipvs_command_entry` and the
/// option bits).
struct Entry {
    cmd: Cmd,
    options: u32,
    proto: Protocol,
    vip: Option<SocketAddr>,
    scheduler: Option<String>,
    persistence: u32,
    netmask: Ipv4Addr,
    dest: Option<SocketAddr>,
    forward: Forward,
    weight: u32,
    upper: u32,
    lower: u32,
    flags: Option<String>,
    view: View,
}

impl Entry {
    /// `set_option`.
    fn set(&mut self, opt: Opt) -> Result<(), AdmError> {
        let bit = 1 << opt as u32;
        if self.options & bit != 0 {
            return Err(AdmError::fail(format!(
                "multiple '{}' options specified",
                OPTS[opt as usize]
            )));
        }
        self.options |= bit;
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.options & (1 << opt as u32) != 0
    }

    /// `generic_opt_check`.
    fn check(&self) -> Result<(), AdmError> {
        let row = self.cmd.row();
        let mut first_exclusive = None;
        for (j, &rule) in row.iter().enumerate() {
            let set = self.options & (1 << j) != 0;
            if !set {
                if rule == b'+' {
                    return Err(AdmError::fail(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        OPTS[j],
                        self.cmd.name()
                    )));
                }
                continue;
            }
            match rule {
                b'x' => {
                    return Err(AdmError::fail(format!(
                        "Illegal '{}' option with the '{}' command",
                        OPTS[j],
                        self.cmd.name()
                    )));
                }
                b'1' => match first_exclusive {
                    None => first_exclusive = Some(j),
                    Some(last) => {
                        return Err(AdmError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            OPTS[j],
                            OPTS[last],
                            self.cmd.name()
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }
}

/// `string_to_number`: `strtol` over the whole string, within `min..=max`.
fn number(s: &str, min: u32, max: u32) -> Option<u32> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    if neg {
        return (n == 0 && min == 0).then_some(0);
    }
    u32::try_from(n).ok().filter(|n| (min..=max).contains(n))
}

/// `parse_timeout`.
fn timeout(s: &str, min: u32, max: u32) -> Result<u32, AdmError> {
    number(s, min, max)
        .ok_or_else(|| AdmError::fail(format!("invalid timeout value `{s}' specified")))
}

/// `/etc/services`: (name or alias, protocol) → port, and back.
struct Services {
    by_name: HashMap<(String, Protocol), u16>,
    by_port: HashMap<(u16, Protocol), String>,
}

fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let mut s = Services {
            by_name: HashMap::new(),
            by_port: HashMap::new(),
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let proto = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => continue,
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            // getservbyport returns the first entry.
            s.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_owned());
            for n in std::iter::once(name).chain(words) {
                s.by_name.entry((n.to_owned(), proto)).or_insert(port);
            }
        }
        s
    })
}

/// `parse_service`: `host[:port]` or `[v6]:port`; the port is `None` when
/// not given.
fn host_port(buf: &str, proto: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(inner) = buf.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        (h, Some(after.strip_prefix(':')?))
    } else if buf.parse::<std::net::Ipv6Addr>().is_ok() {
        (buf, None)
    } else {
        match buf.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (buf, None),
        }
    };
    let ip: IpAddr = if let Ok(v6) = host.parse::<std::net::Ipv6Addr>() {
        IpAddr::V6(v6)
    } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
        IpAddr::V4(v4)
    } else {
        // `host_to_addr`: the resolver, IPv4 only.
        (host, 0)
            .to_socket_addrs()
            .ok()?
            .map(|a| a.ip())
            .find(IpAddr::is_ipv4)?
    };
    let port = match port {
        None => None,
        Some(p) => Some(match number(p, 0, 65535) {
            Some(n) => n as u16,
            None => *services().by_name.get(&(p.to_owned(), proto))?,
        }),
    };
    Some((ip, port))
}

/// `parse_netmask`.
fn netmask(s: &str) -> Option<Ipv4Addr> {
    if let Ok(m) = s.parse() {
        return Some(m);
    }
    (s, 0).to_socket_addrs().ok()?.find_map(|a| match a.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    })
}

/// `parse_sched_flags`.
fn sched_flags(scheduler: &str, arg: &str) -> Result<SchedFlags, AdmError> {
    let mut bits = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let Some(&(_, bit, only)) = SCHED_FLAG_NAMES.iter().find(|e| e.0 == flag) else {
            return Err(AdmError::fail(format!("invalid scheduler flag `{flag}'")));
        };
        if only.is_some_and(|s| s != scheduler) {
            return Err(AdmError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
        bits |= bit;
    }
    Ok(SchedFlags(bits))
}

/// Parses a command line, without the program name. `reading_stdin` is set
/// for the lines of `-R`, where `-R` itself is refused (as ipvsadm does,
/// to avoid an endless loop).
fn parse_args(args: &[String], reading_stdin: bool) -> Result<Invocation, AdmError> {
    let (items, rest) = tokenize(args)?;
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut items: Vec<Item> = items
        .into_iter()
        .filter(|it| {
            if it.tag == Tag::Socket {
                socket = PathBuf::from(it.arg.clone().unwrap_or_default());
                false
            } else {
                true
            }
        })
        .collect();
    if items.is_empty() && rest.is_empty() {
        // `ipvsadm` alone lists the table.
        return Ok(Invocation {
            socket,
            action: Action::Send {
                request: Request::List { service: None },
                view: View::default(),
            },
        });
    }
    if items.is_empty() {
        return Err(AdmError::tryhelp());
    }
    let first = items.remove(0);
    let cmd = match first.tag {
        Tag::Cmd(c) => c,
        Tag::Help => {
            return Ok(Invocation {
                socket,
                action: Action::Help,
            });
        }
        Tag::Version => {
            return Ok(Invocation {
                socket,
                action: Action::Version,
            });
        }
        Tag::Unsupported(why) => return Err(AdmError::fail(why)),
        _ => return Err(AdmError::tryhelp()),
    };
    let mut e = Entry {
        cmd,
        options: 0,
        proto: Protocol::Tcp,
        vip: None,
        scheduler: None,
        persistence: 0,
        netmask: Ipv4Addr::BROADCAST,
        dest: None,
        forward: Forward::Dr,
        weight: 1,
        upper: 0,
        lower: 0,
        flags: None,
        view: View::default(),
    };
    for it in items {
        let arg = it.arg.as_deref().unwrap_or("");
        match it.tag {
            Tag::Tcp | Tag::Udp => {
                e.set(Opt::Service)?;
                e.proto = if it.tag == Tag::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let (ip, port) = host_port(arg, e.proto).ok_or_else(|| {
                    AdmError::fail("illegal virtual server address[:port] specified")
                })?;
                e.vip = Some(SocketAddr::new(ip, port.unwrap_or(0)));
            }
            Tag::Opt(Opt::Scheduler) => {
                e.set(Opt::Scheduler)?;
                e.scheduler = Some(arg.to_owned());
            }
            Tag::Opt(Opt::Persistent) => {
                e.set(Opt::Persistent)?;
                e.persistence = match &it.arg {
                    None => DEFAULT_PERSISTENCE,
                    Some(a) => timeout(a, 1, MAX_TIMEOUT)?,
                };
            }
            Tag::Opt(Opt::Netmask) => {
                e.set(Opt::Netmask)?;
                e.netmask = netmask(arg).ok_or_else(|| {
                    AdmError::fail("illegal virtual server persistent mask specified")
                })?;
            }
            Tag::Opt(Opt::Server) => {
                e.set(Opt::Server)?;
                let (ip, port) = host_port(arg, e.proto).ok_or_else(|| {
                    AdmError::fail("illegal real server address[:port] specified")
                })?;
                // The service's port if none is given, as far as the
                // service is known yet.
                let port = port.unwrap_or_else(|| e.vip.map_or(0, |v| v.port()));
                e.dest = Some(SocketAddr::new(ip, port));
            }
            Tag::Fwd(f) => {
                e.set(Opt::Forward)?;
                e.forward = f;
            }
            Tag::Opt(Opt::Weight) => {
                e.set(Opt::Weight)?;
                e.weight = number(arg, 0, 65535)
                    .ok_or_else(|| AdmError::fail("illegal weight specified"))?;
            }
            Tag::Opt(Opt::UThreshold) => {
                e.set(Opt::UThreshold)?;
                e.upper = number(arg, 0, i32::MAX as u32)
                    .ok_or_else(|| AdmError::fail("illegal u_threshold specified"))?;
            }
            Tag::Opt(Opt::LThreshold) => {
                e.set(Opt::LThreshold)?;
                e.lower = number(arg, 0, i32::MAX as u32)
                    .ok_or_else(|| AdmError::fail("illegal l_threshold specified"))?;
            }
            Tag::Opt(Opt::SchedFlags) => {
                e.set(Opt::SchedFlags)?;
                e.flags = Some(arg.to_owned());
            }
            Tag::Opt(o) => {
                e.set(o)?;
                match o {
                    Opt::Numeric => e.view.numeric = true,
                    Opt::Stats => e.view.listing.format = Format::Stats,
                    Opt::Rate => e.view.listing.format = Format::Rate,
                    Opt::Thresholds => e.view.listing.format = Format::Thresholds,
                    Opt::PersistentConn => e.view.persistent_conn = true,
                    Opt::NoSort => e.view.nosort = true,
                    Opt::Exact => e.view.listing.exact = true,
                    _ => {}
                }
            }
            Tag::Sort => {}
            Tag::Unsupported(why) => return Err(AdmError::fail(why)),
            Tag::Cmd(_) | Tag::Help | Tag::Version | Tag::Socket => {
                return Err(AdmError::fail(format!("invalid option `{}'", it.spelled)));
            }
        }
    }
    // ipvsadm takes the three --set values from the leftover words.
    let mut rest = rest.into_iter();
    let mut timeouts = [0; 3];
    if cmd == Cmd::Timeout {
        let vals: Vec<String> = rest.by_ref().take(3).collect();
        if vals.len() < 3 {
            return Err(AdmError::fail("--set option requires 3 timeout values"));
        }
        for (t, v) in timeouts.iter_mut().zip(&vals) {
            *t = timeout(v, 0, MAX_TIMEOUT)?;
        }
    }
    if let Some(extra) = rest.next() {
        return Err(AdmError::fail(format!("unexpected argument {extra}")));
    }
    let scheduler = e
        .scheduler
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned());
    // ipvsadm parses -b after the loop, against the final scheduler.
    let flags = match &e.flags {
        Some(f) => sched_flags(&scheduler, f)?,
        None => SchedFlags::default(),
    };
    e.check()?;

    let key = e.vip.map(|vip| ServiceKey {
        proto: e.proto,
        vip,
    });
    let need_key = || key.expect("the option check demands a service");
    let spec = || {
        let k = need_key();
        ServiceSpec {
            proto: k.proto,
            vip: k.vip,
            scheduler: scheduler.clone(),
            persistence_timeout: e.persistence,
            persistence_netmask: e.netmask,
            flags,
        }
    };
    let dest = || {
        let k = need_key();
        let mut addr = e.dest.expect("the option check demands a real server");
        // DR and TUN cannot change the port: the service's, always.
        if e.forward != Forward::Nat {
            addr.set_port(k.vip.port());
        }
        DestSpec {
            service: k,
            addr,
            forward: e.forward,
            weight: e.weight,
            upper_threshold: e.upper,
            lower_threshold: e.lower,
        }
    };
    if matches!(cmd, Cmd::Add | Cmd::Edit) && need_key().vip.port() == 0 && e.persistence == 0 {
        return Err(AdmError::fail(
            "Zero port specified for non-persistent service",
        ));
    }
    let request = match cmd {
        Cmd::Add => Request::AddService(spec()),
        Cmd::Edit => Request::EditService(spec()),
        Cmd::Del => Request::DelService(need_key()),
        Cmd::Flush => Request::Clear,
        Cmd::AddDest => Request::AddDest(dest()),
        Cmd::EditDest => Request::EditDest(dest()),
        // Deleting needs no forwarding method: the port is as given.
        Cmd::DelDest => Request::DelDest {
            service: need_key(),
            dest: e.dest.expect("the option check demands a real server"),
        },
        Cmd::Timeout => Request::SetTimeouts {
            tcp: timeouts[0],
            tcpfin: timeouts[1],
            udp: timeouts[2],
        },
        Cmd::Zero => Request::Zero { service: key },
        Cmd::Save => {
            e.view.save = true;
            Request::Save
        }
        Cmd::Restore => {
            if reading_stdin {
                return Err(AdmError::tryhelp());
            }
            return Ok(Invocation {
                socket,
                action: Action::Restore,
            });
        }
        Cmd::List => {
            let listing_opts = e.has(Opt::Stats) || e.has(Opt::Rate) || e.has(Opt::Thresholds);
            if ((e.has(Opt::Connection) || e.has(Opt::Timeout)) && listing_opts)
                || (e.has(Opt::Timeout) && e.has(Opt::PersistentConn))
            {
                return Err(AdmError::fail("options conflicts in the list command"));
            }
            if e.view.persistent_conn && e.view.listing.format == Format::Plain {
                e.view.listing.format = Format::PersistentConn;
            }
            if e.has(Opt::Connection) {
                Request::ListConns
            } else if key.is_some() {
                Request::List { service: key }
            } else if e.has(Opt::Timeout) {
                Request::GetTimeouts
            } else {
                Request::List { service: None }
            }
        }
    };
    Ok(Invocation {
        socket,
        action: Action::Send {
            request,
            view: e.view,
        },
    })
}

/// Parses `xdpvsadm`'s arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, AdmError> {
    parse_args(args, false)
}

/// The rules `-R` reads, as ipvsadm's `config_stream_read` splits them: one
/// command per line, words separated by blanks, a leading `ipvsadm` (or
/// `xdpvsadm`) word ignored; blank lines and `#` comments skipped. Only
/// table edits may appear (`-A -E -D -C -a -e -d --set`); the first line
/// that is not one, or that ipvsadm would reject, stops everything.
pub fn parse_rules(text: &str) -> Result<Vec<Request>, AdmError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .filter(|w| *w != "ipvsadm" && *w != "xdpvsadm")
            .map(str::to_owned)
            .collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let inv = parse_args(&words, true)?;
        match inv.action {
            Action::Send { request, .. }
                if matches!(
                    request,
                    Request::AddService(_)
                        | Request::EditService(_)
                        | Request::DelService(_)
                        | Request::Clear
                        | Request::AddDest(_)
                        | Request::EditDest(_)
                        | Request::DelDest { .. }
                        | Request::SetTimeouts { .. }
                ) =>
            {
                out.push(request)
            }
            _ => {
                return Err(AdmError::fail(format!(
                    "only -A -E -D -C -a -e -d --set can be restored: {}",
                    line.trim()
                )));
            }
        }
    }
    Ok(out)
}

/// ipvsadm's order (`ipvs_cmp_services`, `ipvs_cmp_dests`): IPv4 before
/// IPv6, TCP before UDP, then address and port.
fn sort(services: &mut [ServiceView]) {
    let key = |a: &SocketAddr| (a.is_ipv6(), a.ip(), a.port());
    services.sort_by_key(|s| (key(&s.vip).0, s.proto, key(&s.vip)));
    for s in services {
        s.dests.sort_by_key(|d| key(&d.addr));
    }
}

/// A reply as ipvsadm prints it.
pub fn render(reply: &Reply, view: &View, names: &dyn Names) -> String {
    match reply {
        Reply::Done => String::new(),
        Reply::Table { size, services } => {
            let mut services = services.clone();
            if !view.nosort || view.save {
                sort(&mut services);
            }
            if view.save {
                listing::save_with(&services, names)
            } else {
                listing::list_with(*size, &services, &view.listing, names)
            }
        }
        Reply::Service(s) => {
            let mut s = vec![(**s).clone()];
            if !view.nosort {
                sort(&mut s);
            }
            listing::list_one(&s[0], &view.listing, names)
        }
        Reply::Timeouts { tcp, tcpfin, udp } => listing::timeouts(*tcp, *tcpfin, *udp),
        Reply::Conns(c) => listing::conns(c, view.persistent_conn, names),
    }
}

/// Names as ipvsadm shows them without `-n`: the resolver's host name
/// (`gethostbyaddr`), the `/etc/services` name, else the number.
#[derive(Debug, Default)]
pub struct Resolver {
    hosts: RefCell<HashMap<IpAddr, String>>,
}

impl Names for Resolver {
    fn addr_port(&self, addr: SocketAddr, proto: Protocol) -> String {
        let host = self
            .hosts
            .borrow_mut()
            .entry(addr.ip())
            .or_insert_with(|| {
                dns_lookup::lookup_addr(&addr.ip()).unwrap_or_else(|_| addr.ip().to_string())
            })
            .clone();
        let port = services()
            .by_port
            .get(&(addr.port(), proto))
            .cloned()
            .unwrap_or_else(|| addr.port().to_string());
        match addr {
            SocketAddr::V4(_) => format!("{host}:{port}"),
            SocketAddr::V6(_) => format!("[{host}]:{port}"),
        }
    }
}

/// Sends `req` to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Response, AdmError> {
    let down = |what: &str, e: std::io::Error| AdmError {
        message: format!(
            "Can't {what} the xdpvs control socket {}: {e}; is the xdpvs daemon running (and are you allowed to use its socket)?",
            socket.display()
        ),
        status: 2,
    };
    let mut s = UnixStream::connect(socket).map_err(|e| down("connect to", e))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(|e| down("use", e))?;
    s.write_all(&proto::encode_request(req))
        .map_err(|e| down("write to", e))?;
    let mut line = Vec::new();
    BufReader::new(s)
        .take(MAX_RESPONSE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| down("read from", e))?;
    if line.is_empty() {
        return Err(AdmError {
            message: format!(
                "the xdpvs daemon at {} closed the connection without answering",
                socket.display()
            ),
            status: 2,
        });
    }
    proto::decode_response(&line).map_err(|e| AdmError {
        message: format!("bad answer from {}: {e}", socket.display()),
        status: 2,
    })
}

/// `-h`: ipvsadm's usage, less what xdpvs does not have.
pub fn usage() -> String {
    let p = "xdpvsadm";
    format!(
        "xdpvsadm {version} (ipvsadm-compatible, IPVS {ipvs})\n\
Usage:\n  \
{p} -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]\n  \
{p} -D -t|u service-address\n  \
{p} -C\n  \
{p} -R\n  \
{p} -S [-n]\n  \
{p} -a|e -t|u service-address -r server-address [options]\n  \
{p} -d -t|u service-address -r server-address\n  \
{p} -L|l [options]\n  \
{p} -Z [-t|u service-address]\n  \
{p} --set tcp tcpfin udp\n  \
{p} -h\n\n\
Commands:\n\
Either long or short options are allowed.\n  \
--add-service     -A        add virtual service with options\n  \
--edit-service    -E        edit virtual service with options\n  \
--delete-service  -D        delete virtual service\n  \
--clear           -C        clear the whole table\n  \
--restore         -R        restore rules from stdin\n  \
--save            -S        save rules to stdout\n  \
--add-server      -a        add real server with options\n  \
--edit-server     -e        edit real server with options\n  \
--delete-server   -d        delete real server\n  \
--list            -L|-l     list the table\n  \
--zero            -Z        zero counters in a service or all services\n  \
--set tcp tcpfin udp        set connection timeout values\n  \
--help            -h        display this help message\n\n\
Options:\n  \
--tcp-service  -t service-address   service-address is host[:port]\n  \
--udp-service  -u service-address   service-address is host[:port]\n  \
--scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|mh,\n                                      \
the default scheduler is {DEFAULT_SCHEDULER}.\n  \
--persistent   -p [timeout]         persistent service\n  \
--netmask      -M netmask           persistent granularity mask\n  \
--sched-flags  -b flags             scheduler flags (comma-separated)\n  \
--real-server  -r server-address    server-address is host (and port)\n  \
--gatewaying   -g                   gatewaying (direct routing) (default)\n  \
--ipip         -i                   ipip encapsulation (tunneling)\n  \
--masquerading -m                   masquerading (NAT)\n  \
--weight       -w weight            capacity of real server\n  \
--u-threshold  -x uthreshold        upper threshold of connections\n  \
--l-threshold  -y lthreshold        lower threshold of connections\n  \
--connection   -c                   output of current IPVS connections\n  \
--timeout                           output of timeout (tcp tcpfin udp)\n  \
--stats                             output of statistics information\n  \
--rate                              output of rate information\n  \
--exact                             expand numbers (display exact values)\n  \
--thresholds                        output of thresholds information\n  \
--persistent-conn                   output of persistent connection info\n  \
--nosort                            disable sorting output of service/server entries\n  \
--sort                              does nothing, for backwards compatibility\n  \
--numeric      -n                   numeric output of addresses and ports\n  \
--socket PATH                       the xdpvs control socket (default {DEFAULT_SOCKET})\n",
        version = env!("CARGO_PKG_VERSION"),
        ipvs = listing::IPVS_VERSION,
    )
}

pub mod listing;

#[cfg(test)]
mod tests;
