use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::*;
use crate::config::SchedFlags;
use crate::ctrl::proto::{ConnView, CounterView, DestView, Rates, Totals};
use crate::stats::WorkerStats;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn numeric() -> View {
    View {
        numeric: true,
        json: true,
        ..View::default()
    }
}

/// Names as a resolver would give them, without asking one.
struct Fake;

impl Names for Fake {
    fn addr_port(&self, addr: SocketAddr, proto: Protocol) -> String {
        format!("host-{}:{proto}-{}", addr.ip(), addr.port())
    }
}

fn web() -> ServiceView {
    ServiceView {
        proto: Protocol::Tcp,
        vip: sa("198.18.1.1:80"),
        scheduler: "sh".into(),
        flags: SchedFlags(SchedFlags::FLAG1 | SchedFlags::FLAG2),
        persistence_timeout: 300,
        persistence_netmask: Ipv4Addr::new(255, 255, 255, 0),
        stats: Totals {
            conns: 1523,
            inpkts: 98231,
            outpkts: 87120,
            inbytes: 11234567,
            outbytes: 998_877_665_443,
        },
        rates: Rates {
            cps: 12,
            inpps: 340,
            outpps: 301,
            inbps: 45678,
            outbps: 1234567,
        },
        dests: vec![DestView {
            addr: sa("198.18.2.11:8080"),
            forward: Forward::Nat,
            weight: 3,
            upper_threshold: 100,
            lower_threshold: 50,
            active: 17,
            inactive: 230,
            persistent: 4,
            stats: Totals {
                conns: 800,
                ..Totals::default()
            },
            rates: Rates {
                cps: 7,
                ..Rates::default()
            },
        }],
    }
}

fn parsed(text: &str) -> Value {
    assert!(text.ends_with("}\n"), "{text}");
    serde_json::from_str(text).unwrap()
}

#[test]
fn a_table_is_one_services_document_with_every_field() {
    let reply = Reply::Table {
        size: 4096,
        services: vec![web()],
    };
    let text = render(&reply, &numeric(), &Fake);
    // The members in the documented order, numbers exact (no K/M/G).
    assert!(
        text.starts_with(
            "{\n  \"version\": 1,\n  \"kind\": \"services\",\n  \"conn_table_size\": 4096,\n"
        ),
        "{text}"
    );
    assert_eq!(
        parsed(&text),
        json!({
            "version": 1,
            "kind": "services",
            "conn_table_size": 4096,
            "services": [{
                "protocol": "tcp",
                "address": "198.18.1.1",
                "port": 80,
                "scheduler": "sh",
                "sched_flags": ["sh-fallback", "sh-port"],
                "persistence_timeout": 300,
                "persistence_netmask": "255.255.255.0",
                "stats": {"conns": 1523, "inpkts": 98231, "outpkts": 87120,
                          "inbytes": 11234567, "outbytes": 998_877_665_443u64},
                "rates": {"cps": 12, "inpps": 340, "outpps": 301,
                          "inbps": 45678, "outbps": 1234567},
                "reals": [{
                    "address": "198.18.2.11",
                    "port": 8080,
                    "forward": "nat",
                    "weight": 3,
                    "upper_threshold": 100,
                    "lower_threshold": 50,
                    "active_conns": 17,
                    "inactive_conns": 230,
                    "persistent_conns": 4,
                    "stats": {"conns": 800, "inpkts": 0, "outpkts": 0,
                              "inbytes": 0, "outbytes": 0},
                    "rates": {"cps": 7, "inpps": 0, "outpps": 0,
                              "inbps": 0, "outbps": 0},
                }],
            }],
        })
    );
    // --stats, --rate, --exact... change nothing in it.
    for format in [listing::Format::Stats, listing::Format::Rate] {
        let mut view = numeric();
        view.listing.format = format;
        view.listing.exact = true;
        assert_eq!(render(&reply, &view, &Fake), text);
    }
}

#[test]
fn without_n_each_address_gets_its_name_too() {
    let view = View {
        json: true,
        ..View::default()
    };
    let v = parsed(&render(&Reply::Service(Box::new(web())), &view, &Fake));
    // One service: no table size, as `-L -t` prints no version line.
    assert!(v.get("conn_table_size").is_none(), "{v}");
    let s = &v["services"][0];
    assert_eq!(s["name"], "host-198.18.1.1:TCP-80");
    assert_eq!(s["address"], "198.18.1.1");
    assert_eq!(s["reals"][0]["name"], "host-198.18.2.11:TCP-8080");
    // With -n there are none.
    let v = parsed(&render(&Reply::Service(Box::new(web())), &numeric(), &Fake));
    assert!(v["services"][0].get("name").is_none(), "{v}");
}

#[test]
fn not_persistent_and_ipv6_services_have_null_persistence() {
    let mut plain = web();
    plain.persistence_timeout = 0;
    plain.flags = SchedFlags(0);
    let mut v6 = web();
    v6.vip = sa("[2001:db8::1]:443");
    let reply = Reply::Table {
        size: 1,
        services: vec![plain, v6],
    };
    let v = parsed(&render(&reply, &numeric(), &Fake));
    let s = &v["services"];
    assert_eq!(s[0]["persistence_timeout"], Value::Null);
    assert_eq!(s[0]["persistence_netmask"], Value::Null);
    assert_eq!(s[0]["sched_flags"], json!([]));
    assert_eq!(s[1]["address"], "2001:db8::1");
    assert_eq!(s[1]["port"], 443);
    assert_eq!(s[1]["persistence_timeout"], 300);
    assert_eq!(s[1]["persistence_netmask"], Value::Null);
}

#[test]
fn connections_and_timeouts() {
    let conns = Reply::Conns(vec![ConnView {
        proto: Protocol::Udp,
        client: sa("198.18.0.5:40000"),
        virt: sa("198.18.1.1:53"),
        dest: sa("198.18.2.11:53"),
        state: "UDP".into(),
        expires: 299,
    }]);
    assert_eq!(
        parsed(&render(&conns, &numeric(), &Fake)),
        json!({
            "version": 1,
            "kind": "connections",
            "connections": [{
                "protocol": "udp",
                "client": {"address": "198.18.0.5", "port": 40000},
                "virtual": {"address": "198.18.1.1", "port": 53},
                "real": {"address": "198.18.2.11", "port": 53},
                "state": "UDP",
                "expires": 299,
            }],
        })
    );
    assert_eq!(
        parsed(&render(&Reply::Conns(Vec::new()), &numeric(), &Fake)),
        json!({"version": 1, "kind": "connections", "connections": []})
    );
    let t = Reply::Timeouts {
        tcp: 900,
        tcpfin: 120,
        udp: 300,
    };
    assert_eq!(
        parsed(&render(&t, &numeric(), &Fake)),
        json!({"version": 1, "kind": "timeouts",
               "timeouts": {"tcp": 900, "tcpfin": 120, "udp": 300}})
    );
    assert_eq!(render(&Reply::Done, &numeric(), &Fake), "");
}

/// Two workers' statistics as the daemon sends them.
fn two_workers() -> Vec<CounterView> {
    use crate::frame::DropReason;
    use crate::stats::Counter;
    let mut a = WorkerStats::default();
    let mut b = WorkerStats::default();
    a.add(Counter::Rx, 10);
    for _ in 0..3 {
        a.count_drop(DropReason::Malformed);
    }
    b.count_drop(DropReason::TableFull);
    b.count_drop(DropReason::Malformed);
    b.add(Counter::TxRingFull, 5);
    crate::ctrl::control::counter_views(&[a, b])
}

#[test]
fn drops_and_counters_documents() {
    let c = Reply::Counters(two_workers());
    let view = View {
        drops: true,
        ..numeric()
    };
    let v = parsed(&render(&c, &view, &Fake));
    assert_eq!(v["kind"], "drops");
    assert_eq!(v["workers"], 2);
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), crate::frame::DropReason::COUNT);
    assert_eq!(reasons[0]["name"], "malformed");
    assert_eq!(reasons[0]["per_worker"], json!([3, 1]));
    assert_eq!(reasons[0]["total"], 4);
    assert_eq!(v["reasons_per_worker"], json!([3, 2]));
    assert_eq!(v["reasons_total"], 5);
    let losses = v["losses"].as_array().unwrap();
    assert_eq!(losses.len(), listing::LOSSES.len());
    let ring = losses.iter().find(|l| l["name"] == "tx_ring_full").unwrap();
    assert_eq!(ring["per_worker"], json!([0, 5]));
    // Not a drop: not in the document.
    assert!(losses.iter().all(|l| l["name"] != "rx"));

    let v = parsed(&render(&c, &numeric(), &Fake));
    assert_eq!(v["kind"], "counters");
    let rx = &v["counters"][1];
    assert_eq!(rx["name"], "rx");
    assert_eq!(rx["per_worker"], json!([10, 0]));
    assert_eq!(rx["total"], 10);
    assert_eq!(rx["gauge"], false);
    assert_eq!(
        v["counters"].as_array().unwrap().len(),
        WorkerStats::default().entries().count()
    );
}

/// Every member name of `v`, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn the_documented_schema_is_the_one_printed() {
    let doc = include_str!("../../../docs/json.md");
    assert!(
        doc.contains(&format!("This page describes **version {VERSION}**")),
        "docs/json.md names another version"
    );
    let named = View {
        json: true,
        ..View::default()
    };
    let drops = View {
        drops: true,
        ..numeric()
    };
    let conn = ConnView {
        proto: Protocol::Tcp,
        client: sa("198.18.0.5:40000"),
        virt: sa("198.18.1.1:80"),
        dest: sa("198.18.2.11:80"),
        state: "ESTABLISHED".into(),
        expires: 899,
    };
    let mut all = Vec::new();
    for (reply, view) in [
        (
            Reply::Table {
                size: 1,
                services: vec![web()],
            },
            named,
        ),
        (Reply::Conns(vec![conn]), named),
        (
            Reply::Timeouts {
                tcp: 1,
                tcpfin: 2,
                udp: 3,
            },
            named,
        ),
        (Reply::Counters(two_workers()), numeric()),
        (Reply::Counters(two_workers()), drops),
    ] {
        let v = parsed(&render(&reply, &view, &Fake));
        // Every kind has its section.
        let kind = v["kind"].as_str().unwrap();
        assert!(
            doc.contains(&format!("## `{kind}`")),
            "no section for {kind}"
        );
        keys(&v, &mut all);
    }
    all.sort();
    all.dedup();
    for k in all {
        assert!(
            doc.contains(&format!("\"{k}\"")) || doc.contains(&format!("`{k}`")),
            "docs/json.md does not mention {k:?}"
        );
    }
}
