//! `/metrics` of a running daemon on the namespace test bed (NAT, so
//! that replies pass the director too): scraped with curl in the
//! director's namespace before and after traffic through the VIP, checked
//! by `promtool check metrics` (Debian package `prometheus`, installed by
//! scripts/setup.sh), and read back value by value: the counters move by
//! what the traffic was, the daemon's own counters by what was done to
//! it (reloads, refused reloads, control requests), `xdpvsadm -Z` leaves
//! them alone, and anything but `GET /metrics` is refused. Needs root.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use director::{Daemon, REQUESTS, config, counts, spread};
use testbed::{Host, Mode, Options, Testbed};

const LISTEN: &str = "127.0.0.1:9477";

/// One scrape, through curl in the director's namespace: (status, body).
fn fetch(bed: &Testbed, args: &[&str], path: &str) -> (u16, String) {
    let url = format!("http://{LISTEN}{path}");
    let mut argv = vec![
        "curl",
        "-sS",
        "--connect-timeout",
        "3",
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ];
    argv.extend_from_slice(args);
    argv.push(&url);
    let out = bed.exec(Host::Director, &argv);
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// `/metrics`, which must be served and pass `promtool check metrics`.
fn scrape(bed: &Testbed) -> String {
    let (code, body) = fetch(bed, &[], "/metrics");
    assert_eq!(code, 200, "{body}");
    promtool(&body);
    body
}

fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every sample of `text`: series (name and labels, as written) → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, v) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no {series} among {:#?}", s.keys()))
}

/// The sum over every series of family `name`.
fn sum(s: &BTreeMap<String, f64>, name: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_follow_traffic_reloads_and_requests() {
    let bed = Testbed::new(Options {
        mode: Mode::Nat,
        reals: 3,
        director_queues: 1,
    });
    let mode = bed.options().mode;
    director::warm_neighbours(&bed, 3);
    let cfg_path = bed.tempdir().join("xdpvs.toml");
    let with_metrics = |weights| {
        format!(
            "{}\n[metrics]\nlisten = \"{LISTEN}\"\n",
            config(&bed, &mode, "rr", weights)
        )
    };
    std::fs::write(&cfg_path, with_metrics([1, 1, 1])).unwrap();
    let daemon = Daemon::start(&bed, &cfg_path);
    assert!(
        daemon
            .log()
            .contains(&format!("xdpvs: metrics on http://{LISTEN}/metrics")),
        "{}",
        daemon.log()
    );

    let before = samples(&scrape(&bed));
    let vip = bed.vip();
    let svc = format!("local_address=\"{vip}\",local_port=\"80\",proto=\"TCP\",local_mark=\"\"");
    assert_eq!(
        get(
            &before,
            &format!("xdpvs_service_connections_total{{{svc}}}")
        ),
        0.0
    );
    assert_eq!(get(&before, "xdpvs_workers"), 1.0);
    let iface = bed.director_iface();
    assert_eq!(
        sum(&before, "xdpvs_interface_info"),
        1.0,
        "one interface: {before:#?}"
    );
    assert!(before.contains_key(&format!(
        "xdpvs_interface_zero_copy{{interface=\"{iface}\",queue=\"0\",worker=\"0\"}}"
    )));

    let third = REQUESTS / 3;
    assert_eq!(
        spread(&bed, REQUESTS),
        counts(&[("rs1", third), ("rs2", third), ("rs3", third)]),
    );
    // The workers publish their block when they go idle.
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(&bed);
    // For the record (`-- --nocapture`): the service and real server families.
    for l in text
        .lines()
        .filter(|l| l.starts_with("xdpvs_service_") || l.starts_with("xdpvs_backend_connections"))
    {
        println!("{l}");
    }
    println!("({} bytes, {} lines)", text.len(), text.lines().count());
    let after = samples(&text);

    let n = REQUESTS as f64;
    assert_eq!(
        get(&after, &format!("xdpvs_service_connections_total{{{svc}}}")),
        n
    );
    assert_eq!(get(&after, "xdpvs_connections_total"), n);
    for i in 0..3 {
        let be = format!(
            "local_address=\"{vip}\",local_port=\"80\",remote_address=\"{}\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"",
            bed.real_addr(i)
        );
        assert_eq!(
            get(&after, &format!("xdpvs_backend_connections_total{{{be}}}")),
            n / 3.0
        );
        assert_eq!(get(&after, &format!("xdpvs_backend_weight{{{be}}}")), 1.0);
        assert_eq!(
            get(
                &after,
                &format!("xdpvs_backend_info{{{be},forward=\"nat\"}}")
            ),
            1.0
        );
    }
    // Each connection is at least a SYN, an ACK and a request in, and a
    // SYN-ACK and a response out (NAT replies pass the director).
    let svc_in = get(
        &after,
        &format!("xdpvs_service_incoming_packets_total{{{svc}}}"),
    );
    let svc_out = get(
        &after,
        &format!("xdpvs_service_outgoing_packets_total{{{svc}}}"),
    );
    assert!(
        svc_in >= 3.0 * n && svc_out >= 2.0 * n,
        "{svc_in} {svc_out}"
    );
    assert!(
        get(
            &after,
            &format!("xdpvs_service_outgoing_bytes_total{{{svc}}}")
        ) > 0.0
    );
    // The worker saw every one of those packets, and created a connection
    // for each; the closed connections still wait in the table.
    let w = "{worker=\"0\"}";
    let rx = get(&after, &format!("xdpvs_worker_rx_total{w}"));
    assert!(rx >= svc_in + svc_out, "rx {rx}");
    assert!(rx > get(&before, &format!("xdpvs_worker_rx_total{w}")));
    assert!(get(&after, &format!("xdpvs_worker_tx_nat_total{w}")) >= svc_in);
    assert!(get(&after, &format!("xdpvs_worker_conns_created_total{w}")) >= n);
    let conns = get(&after, &format!("xdpvs_worker_conns{w}"));
    assert!(conns >= 1.0, "table occupancy {conns}");
    assert!(get(&after, &format!("xdpvs_worker_conns_capacity{w}")) >= conns);
    let rounds = get(&after, &format!("xdpvs_worker_rounds_total{w}"));
    let idle = get(&after, &format!("xdpvs_worker_idle_rounds_total{w}"));
    assert!(rounds > get(&before, &format!("xdpvs_worker_rounds_total{w}")));
    assert!(idle < rounds, "idle {idle} of {rounds} rounds");
    assert!(
        get(
            &after,
            &format!("xdpvs_xdp_redirected_total{{interface=\"{iface}\"}}")
        ) >= svc_in + svc_out
    );
    assert!(get(&after, "xdpvs_uptime_seconds") > get(&before, "xdpvs_uptime_seconds"));

    // The daemon's own counters: a control request, a refused reload, an
    // applied one.
    let requests = get(&after, "xdpvs_control_requests_total");
    director::xdpvsadm_ok(&bed, &["-L", "-n"]);
    std::fs::write(&cfg_path, "[dataplane\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reload refused", Duration::from_secs(10));
    std::fs::write(&cfg_path, with_metrics([2, 1, 1])).unwrap();
    daemon.signal("HUP");
    daemon.wait_for("xdpvs: reloaded", Duration::from_secs(10));
    // -Z zeroes what the listings show, never a Prometheus counter.
    director::xdpvsadm_ok(&bed, &["-Z"]);
    let later = samples(&scrape(&bed));
    assert_eq!(get(&later, "xdpvs_control_requests_total"), requests + 2.0);
    assert_eq!(get(&later, "xdpvs_reload_failures_total"), 1.0);
    assert_eq!(get(&later, "xdpvs_reloads_total"), 1.0);
    assert_eq!(
        get(&later, &format!("xdpvs_service_connections_total{{{svc}}}")),
        n
    );
    let be0 = format!(
        "local_address=\"{vip}\",local_port=\"80\",remote_address=\"{}\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"",
        bed.real_addr(0)
    );
    assert_eq!(get(&later, &format!("xdpvs_backend_weight{{{be0}}}")), 2.0);

    // Only GET (and HEAD) of /metrics.
    assert_eq!(fetch(&bed, &[], "/nothing").0, 404);
    assert_eq!(fetch(&bed, &["-X", "POST"], "/metrics").0, 405);
    assert_eq!(fetch(&bed, &["-I"], "/metrics").0, 200);

    let log = daemon.stop();
    assert!(log.contains("xdpvs: stopping"), "{log}");
}
