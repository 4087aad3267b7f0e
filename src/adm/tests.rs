use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::listing::Format;
use super::resolve::services;
use super::*;
use crate::config::{DEFAULT_SCHEDULER, DEFAULT_SOCKET, Forward, Protocol, SCHEDULERS, SchedFlags};
use crate::ctrl::proto::{DestSpec, Reply, ServiceKey, ServiceSpec, ServiceView};

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

fn request(line: &str) -> Request {
    match parse(&args(line)).unwrap().action {
        Action::Send { request, .. } => request,
        other => panic!("{line}: {other:?}"),
    }
}

fn key(proto: Protocol, vip: &str) -> ServiceKey {
    ServiceKey {
        proto,
        vip: vip.parse().unwrap(),
    }
}

#[test]
fn services_as_ipvsadm_reads_them() {
    let spec = |vip: &str, sched: &str, p: u32, mask: &str, flags: u8| {
        Request::AddService(ServiceSpec {
            proto: Protocol::Tcp,
            vip: vip.parse().unwrap(),
            scheduler: sched.into(),
            persistence_timeout: p,
            persistence_netmask: mask.parse().unwrap(),
            flags: SchedFlags(flags),
        })
    };
    let all = "255.255.255.255";
    assert_eq!(
        request("-A -t 198.18.1.1:80"),
        spec("198.18.1.1:80", "wlc", 0, all, 0)
    );
    // -p: the next word unless it is an option; 300 without one.
    assert_eq!(
        request("-A -t 198.18.1.1:80 -p"),
        spec("198.18.1.1:80", "wlc", 300, all, 0)
    );
    assert_eq!(
        request("-A -t 198.18.1.1:80 -p -s rr"),
        spec("198.18.1.1:80", "rr", 300, all, 0)
    );
    assert_eq!(
        request("-A -t 198.18.1.1:80 -p 60 -s rr"),
        spec("198.18.1.1:80", "rr", 60, all, 0)
    );
    assert_eq!(
        request("-A -t 198.18.1.1:80 -p60"),
        spec("198.18.1.1:80", "wlc", 60, all, 0)
    );
    assert_eq!(
        request("-A -t 198.18.1.1:80 --persistent=60"),
        spec("198.18.1.1:80", "wlc", 60, all, 0)
    );
    // A port-0 service without a port, and /etc/services names.
    assert_eq!(
        request("-A -t 198.18.1.1 -p -M 255.255.255.0"),
        spec("198.18.1.1:0", "wlc", 300, "255.255.255.0", 0)
    );
    if services()
        .by_name
        .contains_key(&("http".to_owned(), Protocol::Tcp))
    {
        assert_eq!(
            request("-A -t 198.18.1.1:http"),
            spec("198.18.1.1:80", "wlc", 0, all, 0)
        );
    }
    assert_eq!(
        request("-E -t 198.18.1.1:80 -s mh -b mh-fallback,mh-port"),
        Request::EditService(ServiceSpec {
            proto: Protocol::Tcp,
            vip: "198.18.1.1:80".parse().unwrap(),
            scheduler: "mh".into(),
            persistence_timeout: 0,
            persistence_netmask: Ipv4Addr::BROADCAST,
            flags: SchedFlags(3),
        })
    );
    assert_eq!(
        request("-D -u [2001:db8::1]:53"),
        Request::DelService(key(Protocol::Udp, "[2001:db8::1]:53"))
    );
}

#[test]
fn real_servers_get_the_service_port_as_ipvsadm_gives_it() {
    let dest = |addr: &str, forward, weight| {
        Request::AddDest(DestSpec {
            service: key(Protocol::Tcp, "198.18.1.1:80"),
            addr: addr.parse().unwrap(),
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        })
    };
    // No port: the service's. DR and TUN: the service's, whatever given.
    assert_eq!(
        request("-a -t 198.18.1.1:80 -r 198.18.2.1"),
        dest("198.18.2.1:80", Forward::Dr, 1)
    );
    assert_eq!(
        request("-a -t 198.18.1.1:80 -r 198.18.2.1:8080 -i -w 0"),
        dest("198.18.2.1:80", Forward::Tun, 0)
    );
    assert_eq!(
        request("-a -t 198.18.1.1:80 -r 198.18.2.1:8080 -m"),
        dest("198.18.2.1:8080", Forward::Nat, 1)
    );
    assert_eq!(
        request("-a -t 198.18.1.1:80 -r 198.18.2.1:8080 -mw 4"),
        dest("198.18.2.1:8080", Forward::Nat, 4)
    );
    // Deleting keeps the port given.
    assert_eq!(
        request("-d -t 198.18.1.1:80 -r 198.18.2.1:8080"),
        Request::DelDest {
            service: key(Protocol::Tcp, "198.18.1.1:80"),
            dest: "198.18.2.1:8080".parse().unwrap(),
        }
    );
}

#[test]
fn list_commands_and_their_views() {
    let send = |line: &str| match parse(&args(line)).unwrap().action {
        Action::Send { request, view } => (request, view),
        other => panic!("{other:?}"),
    };
    let (r, v) = send("-L -n --rate --exact");
    assert_eq!(r, Request::List { service: None });
    assert!(v.numeric && v.listing.exact && v.listing.format == Format::Rate);
    let (r, v) = send("-L --persistent-conn");
    assert_eq!(r, Request::List { service: None });
    assert!(!v.numeric && v.listing.format == Format::PersistentConn);
    assert_eq!(send("-L -n -c").0, Request::ListConns);
    assert_eq!(send("-L --timeout").0, Request::GetTimeouts);
    assert!(send("-S -n").1.save);
    assert_eq!(send("-Z").0, Request::Zero { service: None });
    assert_eq!(
        send("--set 0 60 0").0,
        Request::SetTimeouts {
            tcp: 0,
            tcpfin: 60,
            udp: 0
        }
    );
    // No arguments: the table, with names.
    let inv = parse(&[]).unwrap();
    assert_eq!(inv.socket, PathBuf::from(DEFAULT_SOCKET));
    assert_eq!(
        inv.action,
        Action::Send {
            request: Request::List { service: None },
            view: View::default()
        }
    );
    // --socket anywhere, alone or with a command.
    let inv = parse(&args("--socket /tmp/x.sock")).unwrap();
    assert_eq!(inv.socket, PathBuf::from("/tmp/x.sock"));
    let inv = parse(&args("-C --socket=/tmp/y.sock")).unwrap();
    assert_eq!(inv.socket, PathBuf::from("/tmp/y.sock"));
    assert_eq!(parse(&args("-R")).unwrap().action, Action::Restore);
    assert_eq!(parse(&args("-h")).unwrap().action, Action::Help);
    assert_eq!(parse(&args("--version")).unwrap().action, Action::Version);
}

#[test]
fn the_corpus_parses_line_by_line() {
    let text = include_str!("../../tests/data/ipvsadm-rules.txt");
    let rules = parse_rules(text).unwrap();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(rules.len(), lines);
    assert!(rules.len() >= 35);
    assert_eq!(
        rules.last(),
        Some(&Request::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        })
    );
}

#[test]
fn rendering_sorts_as_ipvsadm() {
    use super::listing::Numeric;
    let svc = |proto, vip: &str| ServiceView {
        proto,
        vip: vip.parse().unwrap(),
        scheduler: "rr".into(),
        flags: SchedFlags(0),
        persistence_timeout: 0,
        persistence_netmask: Ipv4Addr::BROADCAST,
        stats: Default::default(),
        rates: Default::default(),
        dests: Vec::new(),
    };
    let reply = Reply::Table {
        size: 7,
        services: vec![
            svc(Protocol::Udp, "198.18.1.1:53"),
            svc(Protocol::Tcp, "198.18.1.10:80"),
            svc(Protocol::Tcp, "198.18.1.9:80"),
            svc(Protocol::Tcp, "198.18.1.9:22"),
        ],
    };
    let view = View {
        save: true,
        ..View::default()
    };
    assert_eq!(
        render(&reply, &view, &Numeric),
        "-A -t 198.18.1.9:22 -s rr\n-A -t 198.18.1.9:80 -s rr\n\
         -A -t 198.18.1.10:80 -s rr\n-A -u 198.18.1.1:53 -s rr\n"
    );
}

#[test]
fn a_missing_daemon_is_named() {
    let path = std::env::temp_dir().join(format!("xdpvsadm-none-{}.sock", std::process::id()));
    let e = call(&path, &Request::Clear).unwrap_err();
    assert_eq!(e.status, 2);
    assert!(
        e.message.contains(&path.display().to_string()),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("is the xdpvs daemon running"),
        "{}",
        e.message
    );
}

#[test]
fn usage_names_every_scheduler_and_the_default() {
    let text = usage();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("--scheduler"))
        .expect("-s is documented");
    let names = line
        .split("one of ")
        .nth(1)
        .and_then(|l| l.strip_suffix(','))
        .expect("-s lists its schedulers");
    assert_eq!(names.split('|').collect::<Vec<_>>(), SCHEDULERS);
    assert!(text.contains(&format!("the default scheduler is {DEFAULT_SCHEDULER}.\n")));
}
