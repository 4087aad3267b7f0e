//! The Prometheus exposition of `/metrics` (text format 0.0.4): what the
//! control thread knows, rendered on request. The workers are never asked:
//! their statistics are read from their published blocks
//! ([`crate::stats::PublishedStats`]), the services' counters from the
//! lines the workers write, so a scrape costs the data path nothing but
//! the cache lines the control thread reads.
//!
//! # Families
//!
//! Services and real servers, with node_exporter's IPVS collector names
//! and labels where they overlap (`node_ipvs_*` → `xdpvs_*`), so that
//! dashboards and alerts written for it carry over. Labels:
//! `local_address`, `local_port`, `proto` (`TCP`, `UDP`), `local_mark`
//! (always empty: no firewall-mark services) and, for real servers,
//! `remote_address`, `remote_port`.
//!
//! | family | type | what |
//! |---|---|---|
//! | `xdpvs_connections_total` | counter | connections scheduled, every service (deleted ones included) |
//! | `xdpvs_incoming_packets_total`, `xdpvs_outgoing_packets_total` | counter | packets client → server, server → client (NAT replies) |
//! | `xdpvs_incoming_bytes_total`, `xdpvs_outgoing_bytes_total` | counter | the same in bytes |
//! | `xdpvs_service_info` | gauge (1) | a service, with its `scheduler` and `persistence_timeout_seconds` |
//! | `xdpvs_service_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total` | counter | per service |
//! | `xdpvs_backend_info` | gauge (1) | a real server, with its `forward` method (`dr`, `tun`, `nat`) |
//! | `xdpvs_backend_connections_active`, `_inactive` | gauge | as `ipvsadm -L` `ActiveConn`, `InActConn` |
//! | `xdpvs_backend_weight` | gauge | the configured weight |
//! | `xdpvs_backend_persistence_templates` | gauge | persistence templates pointing at the server |
//! | `xdpvs_backend_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total` | counter | per real server |
//!
//! Per worker (label `worker`), every counter of [`WorkerStats::entries`]
//! (nothing the statistics block counts is left out): a counter `NAME` of
//! [`crate::stats::Counter`] is `xdpvs_worker_NAME_total`, the gauges
//! `conns` and `conns_capacity` (table occupancy and capacity) are
//! `xdpvs_worker_conns` and `xdpvs_worker_conns_capacity`, and every drop
//! reason is a `reason` label of `xdpvs_worker_drops_total`. Among them:
//! `rx`, `tx`, `handoff_{sent,received,dropped}`, `conns_expired`,
//! `expire_runs` (the expiry work), the AF_XDP ring counters
//! (`rx_ring`, `fill_empty`, `tx_ring_full`, `rx_kicks`, ...), the
//! kernel's `XDP_STATISTICS` (`kernel_*`), and `rounds` and `idle_rounds`,
//! whose ratio is the busy-poll loop's idle fraction:
//! `rate(xdpvs_worker_idle_rounds_total[1m]) / rate(xdpvs_worker_rounds_total[1m])`.
//!
//! Per interface (label `interface`): `xdpvs_interface_info` (1, with
//! `xdp_mode` `native` or `generic`), `xdpvs_interface_zero_copy` (1 or 0
//! per AF_XDP socket, with `queue` and `worker`), and the steering
//! program's own counts `xdpvs_xdp_{redirected,passed,redirect_failed}_total`.
//!
//! The daemon: `xdpvs_build_info` (1, with `version`),
//! `xdpvs_start_time_seconds` (Unix time), `xdpvs_uptime_seconds`,
//! `xdpvs_workers`, `xdpvs_reloads_total`, `xdpvs_reload_failures_total`
//! (SIGHUP reloads refused), `xdpvs_control_requests_total` and
//! `xdpvs_control_request_errors_total` (control socket requests, and
//! those refused).
//!
//! Counters are the raw totals, never reset: `xdpvsadm -Z` zeroes what
//! the listings show, not what Prometheus sees (a counter reset would
//! break `rate()`). A deleted service's series end; its counts stay in
//! the `xdpvs_*_total` sums.

use std::fmt::Write;
use std::net::SocketAddr;

use crate::config::Protocol;
use crate::ctrl::proto::{ServiceView, Totals};
use crate::stats::{Kind, WorkerStats};

/// The media type of the text format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One interface the daemon attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    /// Native (driver) XDP rather than generic (SKB) mode.
    pub native: bool,
    /// The steering program's counts; `None` when they could not be read.
    pub program: Option<ProgramCounts>,
}

/// The steering program's own counters on one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramCounts {
    pub redirected: u64,
    pub passed: u64,
    pub redirect_failed: u64,
}

/// One AF_XDP socket: worker `worker` on queue `queue` of `interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub worker: usize,
    pub interface: String,
    pub queue: u32,
    pub zero_copy: bool,
}

/// The daemon's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DaemonInfo {
    /// Unix time of the start, in seconds.
    pub start_time: f64,
    pub uptime: f64,
    pub reloads: u64,
    pub reload_failures: u64,
    pub requests: u64,
    pub request_errors: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// With raw (never reset) totals: [`crate::ctrl::control::Control::metrics_views`].
    pub services: Vec<ServiceView>,
    /// What deleted services had counted.
    pub retired: Totals,
    /// Each worker's statistics, in worker order.
    pub workers: Vec<WorkerStats>,
    pub interfaces: Vec<InterfaceInfo>,
    pub sockets: Vec<SocketInfo>,
    pub daemon: DaemonInfo,
}

/// The text format's writer: a family's `# HELP` and `# TYPE` lines, then
/// its samples. Families are written whole, each once.
struct Out(String);

#[derive(Clone, Copy)]
enum Type {
    Counter,
    Gauge,
}

impl Out {
    fn family(&mut self, name: &str, ty: Type, help: &str) {
        let ty = match ty {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        };
        let _ = writeln!(self.0, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.0, "# TYPE {name} {ty}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v, true));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The text format's escapes: `\` and newline everywhere, `"` in label
/// values.
fn escape(s: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\n', '"']) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

fn proto_label(p: Protocol) -> &'static str {
    // As node_exporter (from /proc/net/ip_vs) writes it.
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// (name part, help, reader) of one traffic counter.
type Traffic = (&'static str, &'static str, fn(&Totals) -> u64);

/// The five traffic counters.
const TRAFFIC: [Traffic; 5] = [
    ("connections", "connections scheduled", |t| t.conns),
    (
        "incoming_packets",
        "packets from clients (client to server)",
        |t| t.inpkts,
    ),
    (
        "outgoing_packets",
        "packets from real servers (server to client, NAT)",
        |t| t.outpkts,
    ),
    ("incoming_bytes", "bytes from clients", |t| t.inbytes),
    ("outgoing_bytes", "bytes from real servers (NAT)", |t| {
        t.outbytes
    }),
];

/// A service's labels as strings: (local_address, local_port, proto).
fn service_labels(s: &ServiceView) -> [String; 3] {
    [
        s.vip.ip().to_string(),
        s.vip.port().to_string(),
        proto_label(s.proto).to_owned(),
    ]
}

fn addr_labels(a: SocketAddr) -> [String; 2] {
    [a.ip().to_string(), a.port().to_string()]
}

/// The exposition of `s`.
pub fn render(s: &Scrape) -> String {
    let mut out = Out(String::with_capacity(16 * 1024));
    traffic(&mut out, s);
    backends(&mut out, s);
    workers(&mut out, &s.workers);
    interfaces(&mut out, s);
    daemon(&mut out, s);
    out.0
}

fn traffic(out: &mut Out, s: &Scrape) {
    for (part, help, get) in TRAFFIC {
        let name = format!("xdpvs_{part}_total");
        out.family(
            &name,
            Type::Counter,
            &format!("Total {help}, every service."),
        );
        let sum = s
            .services
            .iter()
            .fold(get(&s.retired), |a, v| a.wrapping_add(get(&v.stats)));
        out.sample(&name, &[], sum);
    }
    out.family(
        "xdpvs_service_info",
        Type::Gauge,
        "A virtual service (1), with its scheduler and persistence timeout.",
    );
    for v in &s.services {
        let [a, p, pr] = service_labels(v);
        let timeout = v.persistence_timeout.to_string();
        out.sample(
            "xdpvs_service_info",
            &[
                ("local_address", &a),
                ("local_port", &p),
                ("proto", &pr),
                ("local_mark", ""),
                ("scheduler", &v.scheduler),
                ("persistence_timeout_seconds", &timeout),
            ],
            1,
        );
    }
    for (part, help, get) in TRAFFIC {
        let name = format!("xdpvs_service_{part}_total");
        out.family(&name, Type::Counter, &format!("Total {help}, per service."));
        for v in &s.services {
            let [a, p, pr] = service_labels(v);
            let labels = [
                ("local_address", a.as_str()),
                ("local_port", &p),
                ("proto", &pr),
                ("local_mark", ""),
            ];
            out.sample(&name, &labels, get(&v.stats));
        }
    }
}

fn backends(out: &mut Out, s: &Scrape) {
    type Gauge = fn(&crate::ctrl::proto::DestView) -> u64;
    let gauges: [(&str, &str, Gauge); 4] = [
        (
            "xdpvs_backend_connections_active",
            "The current active connections by local and remote address.",
            |d| d.active.into(),
        ),
        (
            "xdpvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            |d| d.inactive.into(),
        ),
        (
            "xdpvs_backend_weight",
            "The current backend weight by local and remote address.",
            |d| d.weight.into(),
        ),
        (
            "xdpvs_backend_persistence_templates",
            "Persistence templates pointing at the real server.",
            |d| d.persistent.into(),
        ),
    ];
    // One pass per family: the text format wants each family's samples
    // together.
    let each = |out: &mut Out, name: &str, value: &dyn Fn(&crate::ctrl::proto::DestView) -> u64| {
        for v in &s.services {
            let [a, p, pr] = service_labels(v);
            for d in &v.dests {
                let [ra, rp] = addr_labels(d.addr);
                let labels = [
                    ("local_address", a.as_str()),
                    ("local_port", &p),
                    ("remote_address", &ra),
                    ("remote_port", &rp),
                    ("proto", &pr),
                    ("local_mark", ""),
                ];
                out.sample(name, &labels, value(d));
            }
        }
    };
    out.family(
        "xdpvs_backend_info",
        Type::Gauge,
        "A real server (1), with its forwarding method.",
    );
    for v in &s.services {
        let [a, p, pr] = service_labels(v);
        for d in &v.dests {
            let [ra, rp] = addr_labels(d.addr);
            out.sample(
                "xdpvs_backend_info",
                &[
                    ("local_address", &a),
                    ("local_port", &p),
                    ("remote_address", &ra),
                    ("remote_port", &rp),
                    ("proto", &pr),
                    ("local_mark", ""),
                    ("forward", d.forward.config_name()),
                ],
                1,
            );
        }
    }
    for (name, help, get) in gauges {
        out.family(name, Type::Gauge, help);
        each(out, name, &get);
    }
    for (part, help, get) in TRAFFIC {
        let name = format!("xdpvs_backend_{part}_total");
        out.family(
            &name,
            Type::Counter,
            &format!("Total {help}, per real server."),
        );
        each(out, &name, &|d| get(&d.stats));
    }
}

fn workers(out: &mut Out, workers: &[WorkerStats]) {
    let ids: Vec<String> = (0..workers.len()).map(|w| w.to_string()).collect();
    let template = WorkerStats::default();
    for (i, e) in template.entries().enumerate() {
        if matches!(e.kind, Kind::Drop(_)) {
            continue;
        }
        let name = if e.is_gauge() {
            format!("xdpvs_worker_{}", e.name)
        } else {
            format!("xdpvs_worker_{}_total", e.name)
        };
        let ty = if e.is_gauge() {
            Type::Gauge
        } else {
            Type::Counter
        };
        out.family(&name, ty, e.help);
        for (w, stats) in workers.iter().enumerate() {
            let value = stats.entries().nth(i).map_or(0, |e| e.value);
            out.sample(&name, &[("worker", &ids[w])], value);
        }
    }
    let name = "xdpvs_worker_drops_total";
    out.family(
        name,
        Type::Counter,
        "Frames dropped, by reason (xdpvsadm --counters describes each).",
    );
    for (w, stats) in workers.iter().enumerate() {
        for e in stats.entries().filter(|e| matches!(e.kind, Kind::Drop(_))) {
            out.sample(name, &[("worker", &ids[w]), ("reason", e.name)], e.value);
        }
    }
}

fn interfaces(out: &mut Out, s: &Scrape) {
    out.family(
        "xdpvs_interface_info",
        Type::Gauge,
        "An interface the director is attached to (1), with its XDP mode.",
    );
    for i in &s.interfaces {
        let mode = if i.native { "native" } else { "generic" };
        out.sample(
            "xdpvs_interface_info",
            &[("interface", &i.name), ("xdp_mode", mode)],
            1,
        );
    }
    out.family(
        "xdpvs_interface_zero_copy",
        Type::Gauge,
        "Whether an AF_XDP socket runs in zero-copy mode (1) or copy mode (0).",
    );
    for k in &s.sockets {
        let (q, w) = (k.queue.to_string(), k.worker.to_string());
        out.sample(
            "xdpvs_interface_zero_copy",
            &[("interface", &k.interface), ("queue", &q), ("worker", &w)],
            u8::from(k.zero_copy),
        );
    }
    type Get = fn(&ProgramCounts) -> u64;
    let program: [(&str, &str, Get); 3] = [
        (
            "xdpvs_xdp_redirected_total",
            "Packets the XDP steering program redirected to an AF_XDP socket.",
            |p| p.redirected,
        ),
        (
            "xdpvs_xdp_passed_total",
            "Packets the XDP steering program passed to the kernel.",
            |p| p.passed,
        ),
        (
            "xdpvs_xdp_redirect_failed_total",
            "Packets to redirect whose queue had no socket (also counted as passed).",
            |p| p.redirect_failed,
        ),
    ];
    for (name, help, get) in program {
        out.family(name, Type::Counter, help);
        for i in &s.interfaces {
            if let Some(p) = &i.program {
                out.sample(name, &[("interface", &i.name)], get(p));
            }
        }
    }
}

fn daemon(out: &mut Out, s: &Scrape) {
    let d = &s.daemon;
    out.family(
        "xdpvs_build_info",
        Type::Gauge,
        "The running build (1), with its version.",
    );
    out.sample(
        "xdpvs_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    let gauges: [(&str, &str, f64); 3] = [
        (
            "xdpvs_start_time_seconds",
            "When the daemon started, in seconds since the Unix epoch.",
            d.start_time,
        ),
        (
            "xdpvs_uptime_seconds",
            "Seconds since the daemon started.",
            d.uptime,
        ),
        (
            "xdpvs_workers",
            "Worker threads (one per RX queue number).",
            s.workers.len() as f64,
        ),
    ];
    for (name, help, v) in gauges {
        out.family(name, Type::Gauge, help);
        out.sample(name, &[], v);
    }
    let counters: [(&str, &str, u64); 4] = [
        (
            "xdpvs_reloads_total",
            "Configuration reloads (SIGHUP) applied.",
            d.reloads,
        ),
        (
            "xdpvs_reload_failures_total",
            "Configuration reloads refused (nothing changed).",
            d.reload_failures,
        ),
        (
            "xdpvs_control_requests_total",
            "Requests answered on the control socket.",
            d.requests,
        ),
        (
            "xdpvs_control_request_errors_total",
            "Control socket requests refused.",
            d.request_errors,
        ),
    ];
    for (name, help, v) in counters {
        out.family(name, Type::Counter, help);
        out.sample(name, &[], v);
    }
}

#[cfg(test)]
mod tests;
