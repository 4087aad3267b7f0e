//! `--json`: a reply as one JSON document, for scripts (not ipvsadm's; its
//! own formats are untouched).
//!
//! The schema is documented in `docs/json.md`, and fixed here by the
//! structs below (field order included); every document is an object
//! whose first two members are `"version"` ([`VERSION`], raised whenever
//! a field changes meaning or goes away; new fields may appear within a
//! version) and `"kind"`: `services` (`-L`, `-L -t|-u`), `connections`
//! (`-L -c`), `timeouts` (`-L --timeout`), `counters` (`--counters`),
//! `drops` (`--drops`).
//!
//! Numbers are exact (no K/M/G as `-L --stats` prints them), addresses
//! numeric and split into `address` and `port`; without `-n`, each also
//! gets a `name`: `host:port` as the table would print it. A document
//! always has every field its kind has: the `--stats`, `--rate`,
//! `--thresholds` and `--persistent-conn` views are all in one `services`
//! document, so those options change nothing in it.

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::{Forward, Protocol};
use crate::ctrl::proto::{ConnView, CounterView, DestView, Rates, Reply, ServiceView, Totals};

use super::invocation::View;
use super::listing::{self, Names};

/// The schema's version, the `"version"` of every document.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Doc<T: Serialize> {
    version: u32,
    kind: &'static str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct Services {
    /// The connection table's size (`-L`'s `(size=N)`); absent for one
    /// service (`-L -t|-u`), as ipvsadm prints no version line there.
    #[serde(skip_serializing_if = "Option::is_none")]
    conn_table_size: Option<u32>,
    services: Vec<Service>,
}

#[derive(Serialize)]
struct Service {
    protocol: Protocol,
    address: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    scheduler: String,
    /// `-b`, by name, as `-S` writes them.
    sched_flags: Vec<String>,
    /// `-p` seconds; `null` when not persistent.
    persistence_timeout: Option<u32>,
    /// `-M`; `null` when not persistent or for IPv6.
    persistence_netmask: Option<String>,
    stats: Totals,
    rates: Rates,
    reals: Vec<Real>,
}

#[derive(Serialize)]
struct Real {
    address: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `dr`, `tun` or `nat` (the configuration file's names).
    forward: &'static str,
    weight: u32,
    upper_threshold: u32,
    lower_threshold: u32,
    active_conns: u32,
    inactive_conns: u32,
    persistent_conns: u32,
    stats: Totals,
    rates: Rates,
}

#[derive(Serialize)]
struct Endpoint {
    address: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize)]
struct Conns {
    connections: Vec<Conn>,
}

#[derive(Serialize)]
struct Conn {
    protocol: Protocol,
    client: Endpoint,
    #[serde(rename = "virtual")]
    virt: Endpoint,
    real: Endpoint,
    state: String,
    /// Seconds until it expires.
    expires: u32,
}

#[derive(Serialize)]
struct Timeouts {
    timeouts: TimeoutValues,
}

#[derive(Serialize)]
struct TimeoutValues {
    tcp: u32,
    tcpfin: u32,
    udp: u32,
}

#[derive(Serialize)]
struct Counters<'a> {
    workers: usize,
    counters: Vec<Counter<'a>>,
}

#[derive(Serialize)]
struct Counter<'a> {
    name: &'a str,
    help: &'a str,
    /// A level (table occupancy), not a count that only grows.
    gauge: bool,
    per_worker: &'a [u64],
    total: u64,
}

#[derive(Serialize)]
struct Drops<'a> {
    workers: usize,
    /// The pipeline's drops, one per [`DropReason`](crate::frame::DropReason).
    reasons: Vec<Counter<'a>>,
    /// Their sum, per worker.
    reasons_per_worker: Vec<u64>,
    reasons_total: u64,
    /// Frames lost outside the pipeline's verdicts ([`listing::LOSSES`]).
    losses: Vec<Counter<'a>>,
}

/// A document of `kind`, pretty-printed, ending in a newline.
fn doc<T: Serialize>(kind: &'static str, body: T) -> String {
    let mut s = serde_json::to_string_pretty(&Doc {
        version: VERSION,
        kind,
        body,
    })
    .expect("listings always serialize");
    s.push('\n');
    s
}

/// `reply` as its JSON document (empty for [`Reply::Done`]). Services
/// come in the order given (the caller sorts).
pub fn render(reply: &Reply, view: &View, names: &dyn Names) -> String {
    let named = |a: SocketAddr, p: Protocol| (!view.numeric).then(|| names.addr_port(a, p));
    match reply {
        Reply::Done => String::new(),
        Reply::Table { size, services } => doc(
            "services",
            Services {
                conn_table_size: Some(*size),
                services: services.iter().map(|s| service(s, &named)).collect(),
            },
        ),
        Reply::Service(s) => doc(
            "services",
            Services {
                conn_table_size: None,
                services: vec![service(s, &named)],
            },
        ),
        Reply::Timeouts { tcp, tcpfin, udp } => doc(
            "timeouts",
            Timeouts {
                timeouts: TimeoutValues {
                    tcp: *tcp,
                    tcpfin: *tcpfin,
                    udp: *udp,
                },
            },
        ),
        Reply::Conns(c) | Reply::ConnsPart(c) => doc(
            "connections",
            Conns {
                connections: c.iter().map(|c| conn(c, &named)).collect(),
            },
        ),
        Reply::Counters(c) if view.drops => {
            let (reasons, losses) = listing::split_drops(c);
            let workers = workers(c);
            let reasons_per_worker: Vec<u64> = (0..workers)
                .map(|w| reasons.iter().map(|r| r.workers[w]).sum())
                .collect();
            doc(
                "drops",
                Drops {
                    workers,
                    reasons_total: reasons_per_worker.iter().sum(),
                    reasons: reasons.into_iter().map(counter).collect(),
                    reasons_per_worker,
                    losses: losses.into_iter().map(counter).collect(),
                },
            )
        }
        Reply::Counters(c) => doc(
            "counters",
            Counters {
                workers: workers(c),
                counters: c.iter().map(counter).collect(),
            },
        ),
    }
}

fn workers(c: &[CounterView]) -> usize {
    c.first().map_or(0, |v| v.workers.len())
}

fn counter(v: &CounterView) -> Counter<'_> {
    Counter {
        name: &v.name,
        help: &v.help,
        gauge: v.gauge,
        per_worker: &v.workers,
        total: v.workers.iter().sum(),
    }
}

fn endpoint(
    a: SocketAddr,
    p: Protocol,
    named: &dyn Fn(SocketAddr, Protocol) -> Option<String>,
) -> Endpoint {
    Endpoint {
        address: a.ip().to_string(),
        port: a.port(),
        name: named(a, p),
    }
}

fn service(s: &ServiceView, named: &dyn Fn(SocketAddr, Protocol) -> Option<String>) -> Service {
    let persistent = s.persistence_timeout != 0;
    let flags = listing::sched_flag_names(s);
    Service {
        protocol: s.proto,
        address: s.vip.ip().to_string(),
        port: s.vip.port(),
        name: named(s.vip, s.proto),
        scheduler: s.scheduler.clone(),
        sched_flags: if flags.is_empty() {
            Vec::new()
        } else {
            flags.split(',').map(str::to_owned).collect()
        },
        persistence_timeout: persistent.then_some(s.persistence_timeout),
        persistence_netmask: (persistent && s.vip.is_ipv4())
            .then(|| s.persistence_netmask.to_string()),
        stats: s.stats,
        rates: s.rates,
        reals: s.dests.iter().map(|d| real(d, s.proto, named)).collect(),
    }
}

fn real(d: &DestView, p: Protocol, named: &dyn Fn(SocketAddr, Protocol) -> Option<String>) -> Real {
    Real {
        address: d.addr.ip().to_string(),
        port: d.addr.port(),
        name: named(d.addr, p),
        forward: forward(d.forward),
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        active_conns: d.active,
        inactive_conns: d.inactive,
        persistent_conns: d.persistent,
        stats: d.stats,
        rates: d.rates,
    }
}

fn forward(f: Forward) -> &'static str {
    f.config_name()
}

fn conn(c: &ConnView, named: &dyn Fn(SocketAddr, Protocol) -> Option<String>) -> Conn {
    Conn {
        protocol: c.proto,
        client: endpoint(c.client, c.proto, named),
        virt: endpoint(c.virt, c.proto, named),
        real: endpoint(c.dest, c.proto, named),
        state: c.state.clone(),
        expires: c.expires,
    }
}

#[cfg(test)]
mod tests;
