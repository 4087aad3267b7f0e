//! The reload policy of the module docs, on the table alone.

use std::net::SocketAddr;

use super::*;
use crate::config::{Forward, SchedFlags};
use crate::service::Port;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A service as the tests write it: (vip, scheduler, [(real, weight)]).
type Svc<'a> = (&'a str, &'a str, &'a [(&'a str, u32)]);

/// A service as a table lists it, real servers sorted.
type Shown = (String, String, Vec<(String, u32)>);

/// A file: `services`, all TCP DR, and `[connections]` lines.
fn file(connections: &str, services: &[Svc<'_>]) -> Config {
    let mut text = format!("[dataplane]\ninterfaces = [\"eth1\"]\n[connections]\n{connections}\n");
    for (vip, sched, reals) in services {
        text.push_str(&format!(
            "[[services]]\nproto = \"tcp\"\nvip = \"{vip}\"\nscheduler = \"{sched}\"\n"
        ));
        for (r, w) in *reals {
            text.push_str(&format!(
                "[[services.reals]]\naddr = \"{r}\"\nweight = {w}\n"
            ));
        }
    }
    Config::from_str_named(&text, "t.toml").unwrap()
}

fn table(cfg: &Config) -> ServiceTable {
    let port = Port {
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        complete_checksums: false,
    };
    ServiceTable::from_config(cfg, vec![port], 1).unwrap()
}

fn service(vip: &str, sched: &str) -> ServiceConfig {
    let mut s = ServiceConfig::new(Protocol::Tcp, addr(vip), sched);
    s.scheduler_flags = SchedFlags(0);
    s
}

fn real(a: &str, weight: u32) -> RealConfig {
    RealConfig::new(addr(a), Forward::Dr, weight)
}

/// Every service as (vip, scheduler, [(real, weight)]), reals sorted.
fn shown(t: &ServiceTable) -> Vec<Shown> {
    let mut v: Vec<_> = t
        .services()
        .map(|s| {
            let mut reals: Vec<(String, u32)> = s
                .dests
                .iter()
                .map(|d| (d.cfg.addr.to_string(), d.cfg.weight))
                .collect();
            reals.sort();
            (s.cfg.vip.to_string(), s.cfg.scheduler.clone(), reals)
        })
        .collect();
    v.sort();
    v
}

fn svc(vip: &str, sched: &str, reals: &[(&str, u32)]) -> Shown {
    (
        vip.to_owned(),
        sched.to_owned(),
        reals.iter().map(|(a, w)| ((*a).to_owned(), *w)).collect(),
    )
}

const WEB: &str = "198.18.1.1:80";
const RS1: &str = "198.18.2.11:80";
const RS2: &str = "198.18.2.12:80";

#[test]
fn a_live_added_service_and_real_server_survive_a_reload_that_does_not_touch_them() {
    let old = file("", &[(WEB, "wlc", &[(RS1, 1)])]);
    let mut t = table(&old);
    // Live: a new service, and a second real server for the file's one.
    t.add_service(&service("198.18.1.2:80", "rr")).unwrap();
    t.add_dest(Protocol::Tcp, addr("198.18.1.2:80"), &real(RS2, 3))
        .unwrap();
    t.add_dest(Protocol::Tcp, addr(WEB), &real(RS2, 2)).unwrap();
    // The file gains a service: only that is applied.
    let new = file(
        "",
        &[
            (WEB, "wlc", &[(RS1, 1)]),
            ("198.18.1.3:80", "rr", &[(RS1, 1)]),
        ],
    );
    let said = t.apply_file_change(&old, &new).unwrap();
    assert_eq!(said, Vec::<String>::new());
    assert_eq!(
        shown(&t),
        vec![
            svc(WEB, "wlc", &[(RS1, 1), (RS2, 2)]),
            svc("198.18.1.2:80", "rr", &[(RS2, 3)]),
            svc("198.18.1.3:80", "rr", &[(RS1, 1)]),
        ]
    );
    // The same file again: nothing changes, nothing is said.
    let said = t.apply_file_change(&new, &new).unwrap();
    assert!(said.is_empty(), "{said:?}");
    assert_eq!(shown(&t).len(), 3);
}

#[test]
fn a_service_the_file_changes_overrides_its_live_edit_and_says_so() {
    let old = file("", &[(WEB, "wlc", &[(RS1, 1), (RS2, 1)])]);
    let mut t = table(&old);
    // Live: scheduler and a weight edited.
    t.edit_service(&service(WEB, "sh")).unwrap();
    t.edit_dest(Protocol::Tcp, addr(WEB), &real(RS1, 7))
        .unwrap();
    // The file changes the scheduler and RS1's weight, not RS2.
    let new = file("", &[(WEB, "rr", &[(RS1, 4), (RS2, 1)])]);
    let said = t.apply_file_change(&old, &new).unwrap();
    assert_eq!(shown(&t), vec![svc(WEB, "rr", &[(RS1, 4), (RS2, 1)])]);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].contains("198.18.1.1:80") && said[0].contains("scheduler sh → rr"),
        "{said:?}"
    );
    assert!(
        said[1].contains(RS1) && said[1].contains("weight 7 → 4"),
        "{said:?}"
    );
}

#[test]
fn a_live_edit_of_what_the_file_leaves_alone_is_kept() {
    let old = file(
        "",
        &[
            (WEB, "wlc", &[(RS1, 1), (RS2, 1)]),
            ("198.18.1.2:80", "rr", &[(RS1, 1)]),
        ],
    );
    let mut t = table(&old);
    t.edit_dest(Protocol::Tcp, addr(WEB), &real(RS2, 9))
        .unwrap();
    t.del_service(Protocol::Tcp, addr("198.18.1.2:80")).unwrap();
    // The file changes RS1's weight only.
    let new = file(
        "",
        &[
            (WEB, "wlc", &[(RS1, 5), (RS2, 1)]),
            ("198.18.1.2:80", "rr", &[(RS1, 1)]),
        ],
    );
    let said = t.apply_file_change(&old, &new).unwrap();
    assert!(said.is_empty(), "{said:?}");
    // RS2's live weight stays; the live-deleted service stays deleted.
    assert_eq!(shown(&t), vec![svc(WEB, "wlc", &[(RS1, 5), (RS2, 9)])]);
}

#[test]
fn what_the_file_removes_goes_and_a_live_edit_with_it_is_named() {
    let old = file(
        "",
        &[
            (WEB, "wlc", &[(RS1, 1), (RS2, 1)]),
            ("198.18.1.2:80", "rr", &[(RS1, 1)]),
        ],
    );
    let mut t = table(&old);
    t.edit_service(&service("198.18.1.2:80", "wrr")).unwrap();
    let new = file("", &[(WEB, "wlc", &[(RS1, 1)])]);
    let said = t.apply_file_change(&old, &new).unwrap();
    assert_eq!(shown(&t), vec![svc(WEB, "wlc", &[(RS1, 1)])]);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("198.18.1.2:80"), "{said:?}");
}

#[test]
fn a_live_service_the_file_now_defines_takes_the_files_settings() {
    let old = file("", &[(WEB, "wlc", &[(RS1, 1)])]);
    let mut t = table(&old);
    t.add_service(&service("198.18.1.2:80", "sh")).unwrap();
    t.add_dest(Protocol::Tcp, addr("198.18.1.2:80"), &real(RS2, 3))
        .unwrap();
    let new = file(
        "",
        &[
            (WEB, "wlc", &[(RS1, 1)]),
            ("198.18.1.2:80", "rr", &[(RS2, 1)]),
        ],
    );
    let said = t.apply_file_change(&old, &new).unwrap();
    assert_eq!(
        shown(&t),
        vec![
            svc(WEB, "wlc", &[(RS1, 1)]),
            svc("198.18.1.2:80", "rr", &[(RS2, 1)]),
        ]
    );
    assert_eq!(said.len(), 2, "{said:?}");
}

#[test]
fn set_timeouts_are_kept_unless_the_files_timeouts_changed() {
    let old = file("tcp_timeout = 900\nudp_timeout = 300", &[]);
    let mut t = table(&old);
    // Live: --set 100 50 60.
    t.set_timeouts(100, 50, 60);
    let live = |t: &ServiceTable| {
        let x = t.timeouts();
        (
            x.tcp[TcpState::Established as usize],
            x.tcp[TcpState::FinWait as usize],
            x.udp,
        )
    };
    // A reload whose file changed something else keeps all three.
    let same = file(
        "tcp_timeout = 900\nudp_timeout = 300",
        &[(WEB, "wlc", &[(RS1, 1)])],
    );
    assert!(t.apply_file_change(&old, &same).unwrap().is_empty());
    assert_eq!(live(&t), (100, 50, 60));
    // The file's udp_timeout changed: that one is set, and said.
    let new = file(
        "tcp_timeout = 900\nudp_timeout = 30",
        &[(WEB, "wlc", &[(RS1, 1)])],
    );
    let said = t.apply_file_change(&same, &new).unwrap();
    assert_eq!(live(&t), (100, 50, 30));
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("udp_timeout") && said[0].contains("60"),
        "{said:?}"
    );
}

#[test]
fn a_reload_that_fails_part_way_changes_nothing() {
    let old = file("", &[(WEB, "wlc", &[(RS1, 1)])]);
    let mut t = table(&old);
    t.set_timeouts(100, 0, 0);
    // A scheduler the build lacks: the full check refuses the file
    // before anything, timeouts included, is applied.
    let mut bad = file("tcp_timeout = 60", &[(WEB, "wlc", &[(RS1, 2)])]);
    bad.services[0].scheduler = "nope".into();
    assert!(t.apply_file_change(&old, &bad).is_err());
    assert_eq!(shown(&t), vec![svc(WEB, "wlc", &[(RS1, 1)])]);
    assert_eq!(t.timeouts().tcp[TcpState::Established as usize], 100);
}
