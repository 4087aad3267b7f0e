//! ipvsadm's output formats, byte for byte: `-L -n` with `--stats`,
//! `--rate`, `--thresholds`, `--persistent-conn` and `--exact`, and the
//! `-S -n` rules that `-R` reads back.
//!
//! The reference is ipvsadm 1.31's `ipvsadm.c` (`list_all`, `print_title`,
//! `print_service_entry`, `print_largenum`, `print_sched_flags`,
//! `addrport_to_anyname` with `FMT_NUMERIC`). Every layout here was checked
//! against that text; the few places where we deliberately print less than
//! 1.31 would are marked where they happen.
//!
//! Invariants: the functions are pure; services and real servers come out
//! in the order given (the caller sorts, as ipvsadm does without
//! `--nosort`); every line, the last included, ends in `\n`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use crate::config::rules::SCHED_FLAG_NAMES;
use crate::config::{Forward, Protocol, SchedFlags};
use crate::ctrl::proto::{ConnView, CounterView, ServiceView, Totals};
use crate::frame::DropReason;
use crate::stats::Counter;

/// The IPVS version ipvsadm reads from the kernel and prints in the first
/// line; we implement the protocol of that version.
pub const IPVS_VERSION: &str = "1.2.1";

/// Which `-L` layout: plain, `--stats`, `--rate`, `--thresholds`,
/// `--persistent-conn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Plain,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// `--exact`: counters in full instead of K/M/G/T.
    pub exact: bool,
}

/// How addresses are shown: ipvsadm's `addrport_to_anyname`.
pub trait Names {
    /// `a.b.c.d:port` or `[v6]:port` with `-n`; host and service names
    /// where known without it.
    fn addr_port(&self, addr: SocketAddr, proto: Protocol) -> String;
}

/// `-n`: numbers only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Numeric;

impl Names for Numeric {
    fn addr_port(&self, addr: SocketAddr, _: Protocol) -> String {
        addr_port(addr)
    }
}

/// `ipvsadm -L -n [--stats|--rate|--thresholds|--persistent-conn] [--exact]`.
///
/// `conn_table_size` is what ipvsadm shows as `(size=N)`.
pub fn list(conn_table_size: u32, services: &[ServiceView], opts: &Options) -> String {
    list_with(conn_table_size, services, opts, &Numeric)
}

/// [`list`], addresses shown by `names`.
pub fn list_with(
    conn_table_size: u32,
    services: &[ServiceView],
    opts: &Options,
    names: &dyn Names,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "IP Virtual Server version {IPVS_VERSION} (size={conn_table_size})"
    );
    title(&mut out, opts.format);
    for s in services {
        service_lines(&mut out, s, opts, names);
    }
    out
}

/// `ipvsadm -L -t|-u service`: the title and that one service, without
/// the version line (`list_service`).
pub fn list_one(service: &ServiceView, opts: &Options, names: &dyn Names) -> String {
    let mut out = String::new();
    title(&mut out, opts.format);
    service_lines(&mut out, service, opts, names);
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

/// `ipvsadm -L -c` (`list_conn`, `print_conn`): expiry as `mm:ss`, the
/// entries in the order given. With `--persistent-conn` the heading gains
/// ipvsadm's "pe name" and "pe_data" columns; the rows keep the plain
/// layout, as ipvsadm prints them for entries without a persistence
/// engine (we have none).
pub fn conns(entries: &[ConnView], persistent_conn: bool, names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = if persistent_conn {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for c in entries {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            c.proto.to_string(),
            c.state,
            names.addr_port(c.client, c.proto),
            names.addr_port(c.virt, c.proto),
            names.addr_port(c.dest, c.proto),
        );
    }
    out
}

/// `ipvsadm -S -n`: one `-A` line per service, then one `-a` line per real
/// server, as `ipvsadm -R` reads them.
///
/// Like ipvsadm, this does not save `-x`/`-y` thresholds: its `-a` rule
/// line is `-a SVC -r DEST FWD -w WEIGHT` and nothing more. Tunnel servers
/// are written without 1.31's `--tun-type ipip` suffix (printed there only
/// when the kernel reports a tunnel type): IPIP is the only tunnel we have
/// and the shorter line is what every ipvsadm 1.2x and 1.31 accepts.
pub fn save(services: &[ServiceView]) -> String {
    save_with(services, &Numeric)
}

/// [`save`], addresses shown by `names` (`ipvsadm -S` without `-n`).
pub fn save_with(services: &[ServiceView], names: &dyn Names) -> String {
    let mut out = String::new();
    for s in services {
        let svc = format!(
            "{} {}",
            proto_switch(s.proto),
            names.addr_port(s.vip, s.proto)
        );
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if s.persistence_timeout != 0 {
            let _ = write!(out, " -p {}", s.persistence_timeout);
            if let Some(mask) = shown_mask(s) {
                let _ = write!(out, " -M {mask}");
            }
        }
        if has_sched_flags(s.flags) {
            let _ = write!(out, " -b {}", sched_flag_names(s));
        }
        out.push('\n');
        for d in &s.dests {
            let _ = writeln!(
                out,
                "-a {svc} -r {} {} -w {}",
                names.addr_port(d.addr, s.proto),
                fwd_switch(d.forward),
                d.weight
            );
        }
    }
    out
}

/// `print_title`: the two column-heading lines.
fn title(out: &mut String, format: Format) {
    const PROT: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port\n";
    let _ = match format {
        Format::Plain => write!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        ),
        Format::Stats => write!(
            out,
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Format::Rate => write!(
            out,
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Format::Thresholds => write!(
            out,
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n{REMOTE}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Format::PersistentConn => write!(
            out,
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
    };
}

/// `print_service_entry` without `FMT_RULE`: the service line, then one
/// line per real server.
fn service_lines(out: &mut String, s: &ServiceView, opts: &Options, names: &dyn Names) {
    // "%-4s %s", cut at 33 bytes for IPv4 (never reached: the longest IPv4
    // name is 26 bytes, but ipvsadm cuts, so do we).
    let mut svc = format!(
        "{:<4} {}",
        s.proto.to_string(),
        names.addr_port(s.vip, s.proto)
    );
    if s.vip.is_ipv4() {
        cut(&mut svc, 33);
    }
    match opts.format {
        Format::Stats => {
            let _ = write!(out, "{svc:<33}");
            totals(out, &s.stats, opts.exact);
        }
        Format::Rate => {
            let _ = write!(out, "{svc:<33}");
            let r = &s.rates;
            for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                largenum(out, n, opts.exact);
            }
        }
        Format::Plain | Format::Thresholds | Format::PersistentConn => {
            let _ = write!(out, "{svc} {}", s.scheduler);
            if has_sched_flags(s.flags) {
                let _ = write!(out, " ({})", sched_flag_names(s));
            }
            if s.persistence_timeout != 0 {
                let _ = write!(out, " persistent {}", s.persistence_timeout);
                if let Some(mask) = shown_mask(s) {
                    let _ = write!(out, " mask {mask}");
                }
            }
        }
    }
    out.push('\n');

    for d in &s.dests {
        let mut dname = names.addr_port(d.addr, s.proto);
        if d.addr.is_ipv4() {
            cut(&mut dname, 28);
        }
        let _ = match opts.format {
            Format::Plain => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.forward.to_string(),
                d.weight,
                d.active,
                d.inactive
            ),
            Format::Stats => {
                let _ = write!(out, "  -> {dname:<28}");
                totals(out, &d.stats, opts.exact);
                writeln!(out)
            }
            Format::Rate => {
                // ipvsadm prints the first three rates of a real server
                // with a plain "%8llu", not print_largenum.
                let r = &d.rates;
                let _ = write!(
                    out,
                    "  -> {dname:<28} {:>8} {:>8} {:>8}",
                    r.cps, r.inpps, r.outpps
                );
                largenum(out, r.inbps, opts.exact);
                largenum(out, r.outbps, opts.exact);
                writeln!(out)
            }
            Format::Thresholds => writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.upper_threshold, d.lower_threshold, d.active, d.inactive
            ),
            Format::PersistentConn => writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, d.persistent, d.active, d.inactive
            ),
        };
    }
}

/// ipvsadm's `name[n] = '\0'`: at most `n` bytes (never inside a
/// character: names may come from /etc/hosts).
fn cut(s: &mut String, mut n: usize) {
    if s.len() > n {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s.truncate(n);
    }
}

fn totals(out: &mut String, t: &Totals, exact: bool) {
    for n in [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes] {
        largenum(out, n, exact);
    }
}

/// `print_largenum`: a 9-column field (its own leading space included).
/// Below 10^8 the number in full; above, truncated to K (10^3) below 10^9,
/// M (10^6) below 10^11, G (10^9) below 10^14, else T (10^12).
/// `--exact` prints it in full, widening past 8 digits so one space always
/// separates columns.
pub fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let len = n.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{n:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

/// `addrport_to_anyname` with `-n`: `a.b.c.d:port`, `[v6]:port`.
fn addr_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The mask to print after a persistent service, if any: ipvsadm prints it
/// for IPv4 unless it is /32. For IPv6 it prints a prefix length when not
/// /128; our model carries only an IPv4 mask, so IPv6 services show none.
fn shown_mask(s: &ServiceView) -> Option<Ipv4Addr> {
    (s.vip.is_ipv4() && s.persistence_netmask != Ipv4Addr::BROADCAST)
        .then_some(s.persistence_netmask)
}

fn has_sched_flags(f: SchedFlags) -> bool {
    f.0 & (SchedFlags::FLAG1 | SchedFlags::FLAG2 | SchedFlags::FLAG3) != 0
}

/// `print_sched_flags`: comma-separated names in bit order, spelled per
/// scheduler as `-b` spells them ([`SCHED_FLAG_NAMES`]): the scheduler's
/// own names where it has any (sh, mh), else `flag-N`. As in ipvsadm, sh
/// and mh have no name for flag 3, so `sh` with only flag 3 lists as
/// `sh ()` and saves as `-b ` followed by nothing.
pub(super) fn sched_flag_names(s: &ServiceView) -> String {
    let own = |only: Option<&str>| only == Some(s.scheduler.as_str());
    let has_own = SCHED_FLAG_NAMES.iter().any(|&(_, _, only)| own(only));
    let mut names: Vec<(u8, &str)> = SCHED_FLAG_NAMES
        .iter()
        .filter(|&&(_, bit, only)| {
            s.flags.0 & bit != 0 && if has_own { own(only) } else { only.is_none() }
        })
        .map(|&(name, bit, _)| (bit, name))
        .collect();
    names.sort_by_key(|&(bit, _)| bit);
    names
        .iter()
        .map(|&(_, name)| name)
        .collect::<Vec<_>>()
        .join(",")
}

fn proto_switch(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
    }
}

fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "-g",
        Forward::Tun => "-i",
        Forward::Nat => "-m",
    }
}

/// `--counters` (not ipvsadm's): one row per counter, its value in each
/// worker and over all of them (gauges summed too: the table's total
/// occupancy and capacity). Every counter is listed, zeros included, so
/// scripts find each row.
pub fn counters(views: &[CounterView]) -> String {
    let workers = views.first().map_or(0, |v| v.workers.len());
    let width = views.iter().map(|v| v.name.len()).max().unwrap_or(7).max(7);
    let mut out = String::new();
    let _ = write!(out, "{:<width$}", "Counter");
    for w in 0..workers {
        let _ = write!(out, " {:>12}", format!("worker {w}"));
    }
    let _ = writeln!(out, " {:>12}", "total");
    for v in views {
        let _ = write!(out, "{:<width$}", v.name);
        for n in &v.workers {
            let _ = write!(out, " {n:>12}");
        }
        let _ = writeln!(out, " {:>12}", v.workers.iter().sum::<u64>());
    }
    out
}

/// The counters, besides the pipeline's drop reasons, that count frames
/// lost: `--drops` lists them under "Frames lost".
pub const LOSSES: [Counter; 11] = [
    Counter::HandoffDropped,
    Counter::NoTxPort,
    Counter::TxRingFull,
    Counter::NoFreeFrame,
    Counter::InjectOversize,
    Counter::InvalidDescriptors,
    Counter::KernelRxDropped,
    Counter::KernelRxRingFull,
    Counter::KernelRxFillRingEmpty,
    Counter::KernelRxInvalidDescs,
    Counter::KernelTxInvalidDescs,
];

/// The counters' drop reasons and losses ([`LOSSES`]), each in the
/// daemon's order; a counter this build does not know is in neither.
pub(super) fn split_drops(views: &[CounterView]) -> (Vec<&CounterView>, Vec<&CounterView>) {
    let reasons = views
        .iter()
        .filter(|v| DropReason::ALL.iter().any(|r| r.name() == v.name))
        .collect();
    let losses = views
        .iter()
        .filter(|v| LOSSES.iter().any(|c| c.name() == v.name))
        .collect();
    (reasons, losses)
}

/// `--drops` (not ipvsadm's): the pipeline's drops, one row per reason
/// and a row of their sum, then the frames lost elsewhere ([`LOSSES`]),
/// each in every worker and over all of them. Every row is listed, zeros
/// included, so scripts find each one.
pub fn drops(views: &[CounterView]) -> String {
    let workers = views.first().map_or(0, |v| v.workers.len());
    let (reasons, losses) = split_drops(views);
    const SUM: &str = "all reasons";
    let width = reasons
        .iter()
        .chain(&losses)
        .map(|v| v.name.len() + 2)
        .chain([SUM.len() + 2, "Frames dropped".len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let head = |out: &mut String, title: &str| {
        let _ = write!(out, "{title:<width$}");
        for w in 0..workers {
            let _ = write!(out, " {:>12}", format!("worker {w}"));
        }
        let _ = writeln!(out, " {:>12}", "total");
    };
    let row = |out: &mut String, name: &str, values: &[u64]| {
        let _ = write!(out, "  {name:<w$}", w = width - 2);
        for n in values {
            let _ = write!(out, " {n:>12}");
        }
        let _ = writeln!(out, " {:>12}", values.iter().sum::<u64>());
    };
    head(&mut out, "Frames dropped");
    for v in &reasons {
        row(&mut out, &v.name, &v.workers);
    }
    let sums: Vec<u64> = (0..workers)
        .map(|w| reasons.iter().map(|v| v.workers[w]).sum())
        .collect();
    row(&mut out, SUM, &sums);
    head(&mut out, "Frames lost");
    for v in &losses {
        row(&mut out, &v.name, &v.workers);
    }
    out
}

#[cfg(test)]
mod tests;
