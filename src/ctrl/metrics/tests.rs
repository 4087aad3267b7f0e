use std::collections::HashSet;

use super::*;
use crate::config::{Forward, SchedFlags};
use crate::ctrl::proto::{DestView, Rates};
use crate::frame::DropReason;
use crate::stats::Counter;

fn totals(base: u64) -> Totals {
    Totals {
        conns: base,
        inpkts: base * 10,
        outpkts: base * 9,
        inbytes: base * 1000,
        outbytes: base * 900,
    }
}

fn scrape() -> Scrape {
    let dest = |addr: &str, weight: u32, base: u64| DestView {
        addr: addr.parse().unwrap(),
        forward: Forward::Nat,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        active: 3,
        inactive: 4,
        persistent: 2,
        stats: totals(base),
        rates: Rates::default(),
    };
    let mut w0 = WorkerStats::default();
    w0.add(Counter::Rx, 100);
    w0.set(Counter::Conns, 7);
    w0.set(Counter::ConnsCapacity, 1024);
    w0.count_drop(DropReason::TableFull);
    let mut w1 = WorkerStats::default();
    w1.add(Counter::HandoffSent, 5);
    Scrape {
        services: vec![ServiceView {
            proto: Protocol::Tcp,
            vip: "198.18.1.1:80".parse().unwrap(),
            scheduler: "wlc".to_owned(),
            flags: SchedFlags::default(),
            persistence_timeout: 300,
            persistence_netmask: "255.255.255.255".parse().unwrap(),
            stats: totals(3),
            rates: Rates::default(),
            dests: vec![
                dest("198.18.2.11:8080", 2, 1),
                dest("[2001:db8::1]:80", 1, 2),
            ],
        }],
        retired: totals(1),
        workers: vec![w0, w1],
        interfaces: vec![InterfaceInfo {
            name: "veth\"0".to_owned(),
            native: true,
            program: Some(ProgramCounts {
                redirected: 11,
                passed: 12,
                redirect_failed: 1,
            }),
        }],
        sockets: vec![SocketInfo {
            worker: 1,
            interface: "veth\"0".to_owned(),
            queue: 1,
            zero_copy: false,
        }],
        daemon: DaemonInfo {
            start_time: 1.5e9,
            uptime: 12.25,
            reloads: 2,
            reload_failures: 1,
            requests: 9,
            request_errors: 3,
        },
    }
}

/// The text format's structure: each family's `# HELP` and `# TYPE` once,
/// before its samples, which follow together; counters named `_total`,
/// nothing else; every sample a number.
fn check_format(text: &str) -> HashSet<String> {
    let mut families = HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(rest.len() > name.len() + 1, "{name}: no help");
            let ty = lines.next().unwrap();
            let (n, t) = ty
                .strip_prefix("# TYPE ")
                .and_then(|r| r.split_once(' '))
                .unwrap_or_else(|| panic!("{name}: no TYPE after HELP: {ty}"));
            assert_eq!(n, name);
            assert!(t == "counter" || t == "gauge", "{ty}");
            assert_eq!(t == "counter", name.ends_with("_total"), "{ty}");
            assert!(name.starts_with("xdpvs_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(families.insert(name.clone()), "{name} twice");
            current = Some((name, t.to_owned()));
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let (family, _) = current.as_ref().expect("a sample before any family");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert_eq!(name, family, "{line}: outside its family");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
    }
    families
}

fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn the_exposition_is_well_formed() {
    let text = render(&scrape());
    let families = check_format(&text);
    for f in [
        "xdpvs_connections_total",
        "xdpvs_backend_connections_active",
        "xdpvs_backend_connections_inactive",
        "xdpvs_backend_weight",
        "xdpvs_worker_drops_total",
        "xdpvs_worker_conns",
        "xdpvs_worker_conns_capacity",
        "xdpvs_worker_handoff_dropped_total",
        "xdpvs_worker_kernel_rx_ring_full_total",
        "xdpvs_worker_idle_rounds_total",
        "xdpvs_interface_zero_copy",
        "xdpvs_build_info",
        "xdpvs_reload_failures_total",
    ] {
        assert!(families.contains(f), "{f}");
    }
    // An empty director (no services, no workers yet) is well formed too.
    check_format(&render(&Scrape::default()));
}

#[test]
fn every_worker_counter_and_drop_reason_is_exposed() {
    let text = render(&scrape());
    for e in WorkerStats::default().entries() {
        let series = match e.kind {
            Kind::Drop(_) => format!(
                "xdpvs_worker_drops_total{{worker=\"1\",reason=\"{}\"}}",
                e.name
            ),
            Kind::Counter(_) if e.is_gauge() => format!("xdpvs_worker_{}{{worker=\"1\"}}", e.name),
            Kind::Counter(_) => format!("xdpvs_worker_{}_total{{worker=\"1\"}}", e.name),
        };
        value(&text, &series);
    }
    assert_eq!(value(&text, "xdpvs_worker_rx_total{worker=\"0\"}"), 100.0);
    assert_eq!(value(&text, "xdpvs_worker_conns{worker=\"0\"}"), 7.0);
    assert_eq!(
        value(&text, "xdpvs_worker_conns_capacity{worker=\"0\"}"),
        1024.0
    );
    assert_eq!(
        value(&text, "xdpvs_worker_handoff_sent_total{worker=\"1\"}"),
        5.0
    );
    assert_eq!(
        value(
            &text,
            "xdpvs_worker_drops_total{worker=\"0\",reason=\"table_full\"}"
        ),
        1.0
    );
}

#[test]
fn services_and_backends_carry_node_exporters_labels() {
    let text = render(&scrape());
    let svc = "local_address=\"198.18.1.1\",local_port=\"80\",proto=\"TCP\",local_mark=\"\"";
    assert_eq!(
        value(&text, &format!("xdpvs_service_connections_total{{{svc}}}")),
        3.0
    );
    assert_eq!(
        value(
            &text,
            &format!("xdpvs_service_outgoing_bytes_total{{{svc}}}")
        ),
        2700.0
    );
    let be = "local_address=\"198.18.1.1\",local_port=\"80\",remote_address=\"198.18.2.11\",\
              remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"";
    assert_eq!(
        value(&text, &format!("xdpvs_backend_connections_active{{{be}}}")),
        3.0
    );
    assert_eq!(
        value(
            &text,
            &format!("xdpvs_backend_connections_inactive{{{be}}}")
        ),
        4.0
    );
    assert_eq!(value(&text, &format!("xdpvs_backend_weight{{{be}}}")), 2.0);
    assert_eq!(
        value(
            &text,
            &format!("xdpvs_backend_persistence_templates{{{be}}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            &format!("xdpvs_backend_incoming_packets_total{{{be}}}")
        ),
        10.0
    );
    assert_eq!(
        value(
            &text,
            &format!("xdpvs_backend_info{{{be},forward=\"nat\"}}")
        ),
        1.0
    );
    let v6 = "local_address=\"198.18.1.1\",local_port=\"80\",remote_address=\"2001:db8::1\",\
              remote_port=\"80\",proto=\"TCP\",local_mark=\"\"";
    assert_eq!(
        value(&text, &format!("xdpvs_backend_connections_total{{{v6}}}")),
        2.0
    );
    // The sums count what deleted services had counted.
    assert_eq!(value(&text, "xdpvs_connections_total"), 4.0);
    assert_eq!(value(&text, "xdpvs_incoming_bytes_total"), 4000.0);
}

#[test]
fn interfaces_and_the_daemon() {
    let text = render(&scrape());
    // Label values are escaped.
    assert_eq!(
        value(
            &text,
            "xdpvs_interface_info{interface=\"veth\\\"0\",xdp_mode=\"native\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "xdpvs_interface_zero_copy{interface=\"veth\\\"0\",queue=\"1\",worker=\"1\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&text, "xdpvs_xdp_redirected_total{interface=\"veth\\\"0\"}"),
        11.0
    );
    assert_eq!(value(&text, "xdpvs_uptime_seconds"), 12.25);
    assert_eq!(value(&text, "xdpvs_workers"), 2.0);
    assert_eq!(value(&text, "xdpvs_reloads_total"), 2.0);
    assert_eq!(value(&text, "xdpvs_control_request_errors_total"), 3.0);
    let build = format!(
        "xdpvs_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &build), 1.0);
}

#[test]
fn escapes() {
    assert_eq!(escape("a\\b\n\"c\"", true), "a\\\\b\\n\\\"c\\\"");
    assert_eq!(escape("a\"b", false), "a\"b");
}

#[test]
fn the_grafana_dashboard_asks_for_families_that_exist() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/grafana/xdpvs.json");
    let dashboard = std::fs::read_to_string(path).unwrap();
    let families = check_format(&render(&scrape()));
    let mut asked = 0;
    for (i, _) in dashboard.match_indices("xdpvs_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        assert!(families.contains(&name), "the dashboard asks for {name}");
        asked += 1;
    }
    assert!(asked >= 10, "{asked}");
}
