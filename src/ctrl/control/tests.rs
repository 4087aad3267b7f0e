//! The whole control path short of the socket: command lines parsed as
//! `xdpvsadm` parses them, handled by [`Control`], rendered as `xdpvsadm`
//! prints the reply.

use super::*;
use crate::adm::listing::Numeric;
use crate::adm::{self, Action, View};
use crate::config::Protocol;
use crate::conn::Timeouts;

const RULES: &str = include_str!("../../../tests/data/ipvsadm-rules.txt");

fn control() -> Control {
    let table = ServiceTable::new(
        Vec::new(),
        Some("198.18.0.2".parse().unwrap()),
        Timeouts::default(),
    );
    Control::new(table, 4096, Instant::now())
}

/// Runs one `xdpvsadm` command line: (stdout, or (stderr, exit status)).
fn run(c: &mut Control, line: &str) -> Result<String, (String, u8)> {
    run_with(c, line, &mut NoConns)
}

fn run_with(
    c: &mut Control,
    line: &str,
    conns: &mut dyn ConnSource,
) -> Result<String, (String, u8)> {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let inv = adm::parse(&args).map_err(|e| (e.message, e.status))?;
    let (request, view) = match inv.action {
        Action::Send { request, view } => (request, view),
        other => panic!("{line}: not a request: {other:?}"),
    };
    match c.handle(request, conns) {
        Response::Ok(reply) => Ok(adm::render(&reply, &view, &Numeric)),
        Response::Err { message, status } => Err((message, status)),
    }
}

fn restore(c: &mut Control, rules: &str) -> Result<String, (String, u8)> {
    let batch = adm::parse_rules(rules).map_err(|e| (e.message, e.status))?;
    match c.handle(Request::Restore(batch), &mut NoConns) {
        Response::Ok(reply) => Ok(adm::render(&reply, &View::default(), &Numeric)),
        Response::Err { message, status } => Err((message, status)),
    }
}

/// Adds traffic to a service's and its servers' counters, as workers do.
fn traffic(c: &Control, vip: &str, conns: u64, pkts: u64, bytes: u64) {
    let vip: SocketAddr = vip.parse().unwrap();
    for s in c.table().services().filter(|s| s.cfg.vip == vip) {
        for d in &s.dests {
            let line = d.counters.stats.line(0).unwrap();
            let svc = d.counters.service_stats.line(0).unwrap();
            for _ in 0..conns {
                line.conn();
                svc.conn();
            }
            for _ in 0..pkts {
                line.inbound(bytes as usize);
                svc.inbound(bytes as usize);
                line.outbound(bytes as usize);
                svc.outbound(bytes as usize);
            }
        }
    }
}

const SAVED: &str = "\
-A -t 198.18.1.1:80 -s wlc
-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1
-A -t 198.18.1.2:443 -s wlc -p 300
-a -t 198.18.1.2:443 -r 198.18.2.21:443 -g -w 1
-A -t 198.18.1.4:0 -s sh -p 3600 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t 198.18.1.4:0 -r 198.18.2.41:0 -g -w 1
-A -t 198.18.1.5:8080 -s wrr
-a -t 198.18.1.5:8080 -r 198.18.2.51:80 -m -w 5
-A -t 198.18.1.6:80 -s lc
-a -t 198.18.1.6:80 -r 198.18.2.61:80 -g -w 3
-a -t 198.18.1.6:80 -r 198.18.2.62:80 -m -w 0
-A -t 198.18.1.7:21 -s rr -p 600
-a -t 198.18.1.7:21 -r 198.18.2.71:21 -g -w 1
-A -t 198.18.1.9:0 -s wlc -p 300 -M 255.255.0.0
-a -t 198.18.1.9:0 -r 198.18.2.91:0 -g -w 4
-A -t 198.18.1.10:25 -s lblc
-a -t 198.18.1.10:25 -r 198.18.2.101:25 -m -w 1
-A -t 198.18.1.11:80 -s mh -b mh-port
-a -t 198.18.1.11:80 -r 198.18.2.111:80 -g -w 1
-A -t 198.18.1.13:443 -s sed -p 300
-a -t 198.18.1.13:443 -r 198.18.2.131:443 -g -w 10
-A -t 198.18.1.14:3306 -s nq
-a -t 198.18.1.14:3306 -r 198.18.2.141:3307 -m -w 2
-A -t 198.18.1.15:80 -s rr
-a -t 198.18.1.15:80 -r 198.18.2.151:80 -g -w 7
-A -u 198.18.1.3:53 -s rr
-a -u 198.18.1.3:53 -r 198.18.2.31:5353 -m -w 1
-A -u 198.18.1.8:514 -s sh
-a -u 198.18.1.8:514 -r 198.18.2.81:514 -m -w 1
-A -u 198.18.1.12:123 -s dh
-a -u 198.18.1.12:123 -r 198.18.2.121:123 -m -w 1
";

#[test]
fn the_corpus_restores_to_the_expected_rules() {
    let mut c = control();
    assert_eq!(restore(&mut c, RULES), Ok(String::new()));
    assert!(c.changed());
    assert!(!c.changed(), "changed() reports a change once");
    assert_eq!(run(&mut c, "-S -n"), Ok(SAVED.to_owned()));
    assert_eq!(
        run(&mut c, "-L --timeout"),
        Ok("Timeout (tcp tcpfin udp): 900 120 300\n".to_owned())
    );
}

#[test]
fn save_clear_restore_save_is_identical() {
    let mut c = control();
    restore(&mut c, RULES).unwrap();
    let saved = run(&mut c, "-S -n").unwrap();
    assert_eq!(run(&mut c, "-C"), Ok(String::new()));
    assert_eq!(run(&mut c, "-S -n"), Ok(String::new()));
    restore(&mut c, &saved).unwrap();
    assert_eq!(run(&mut c, "-S -n"), Ok(saved));
}

fn small() -> Control {
    let mut c = control();
    restore(
        &mut c,
        "-A -t 198.18.1.1:80 -s wlc
         -a -t 198.18.1.1:80 -r 198.18.2.12:80 -i -w 3 -x 100 -y 50
         -a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1
         -A -u 198.18.1.2:53 -s rr
         -a -u 198.18.1.2:53 -r 198.18.2.21:53 -m -w 1
         -A -t 198.18.1.3:0 -s sh -p 300 -M 255.255.255.0 -b sh-port
         -a -t 198.18.1.3:0 -r 198.18.2.31 -g -w 2",
    )
    .unwrap();
    c
}

#[test]
fn every_listing_format() {
    let mut c = small();
    traffic(&c, "198.18.1.1:80", 1523, 98231, 1000);
    for _ in 0..3 {
        // Sorted as ipvsadm sorts: by address, TCP before UDP.
        assert_eq!(
            run(&mut c, "-L -n"),
            Ok("\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.1.1:80 wlc
  -> 198.18.2.11:80               Route   1      0          0         
  -> 198.18.2.12:80               Tunnel  3      0          0         
TCP  198.18.1.3:0 sh (sh-port) persistent 300 mask 255.255.255.0
  -> 198.18.2.31:0                Route   2      0          0         
UDP  198.18.1.2:53 rr
  -> 198.18.2.21:53               Masq    1      0          0         
"
            .to_owned())
        );
        assert_eq!(run(&mut c, "-l -n"), run(&mut c, "--list --numeric"));
        assert_eq!(run(&mut c, "-Ln"), run(&mut c, "-L -n --sort"));
    }
    assert_eq!(
        run(&mut c, "-L -n --stats"),
        Ok("\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.1.1:80                    3046   196462   196462  196462K  196462K
  -> 198.18.2.11:80                   1523    98231    98231 98231000 98231000
  -> 198.18.2.12:80                   1523    98231    98231 98231000 98231000
TCP  198.18.1.3:0                        0        0        0        0        0
  -> 198.18.2.31:0                       0        0        0        0        0
UDP  198.18.1.2:53                       0        0        0        0        0
  -> 198.18.2.21:53                      0        0        0        0        0
"
        .to_owned())
    );
    assert_eq!(
        run(&mut c, "-L -n --stats --exact").unwrap().lines().nth(3),
        Some("TCP  198.18.1.1:80                    3046   196462   196462 196462000 196462000")
    );
    assert_eq!(
        run(&mut c, "-L -n --thresholds"),
        Ok("\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.1.1:80 wlc
  -> 198.18.2.11:80               0          0          0          0         
  -> 198.18.2.12:80               100        50         0          0         
TCP  198.18.1.3:0 sh (sh-port) persistent 300 mask 255.255.255.0
  -> 198.18.2.31:0                0          0          0          0         
UDP  198.18.1.2:53 rr
  -> 198.18.2.21:53               0          0          0          0         
"
        .to_owned())
    );
    assert_eq!(
        run(&mut c, "-L -n --persistent-conn"),
        Ok("\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.1.1:80 wlc
  -> 198.18.2.11:80               1         0           0          0         
  -> 198.18.2.12:80               3         0           0          0         
TCP  198.18.1.3:0 sh (sh-port) persistent 300 mask 255.255.255.0
  -> 198.18.2.31:0                2         0           0          0         
UDP  198.18.1.2:53 rr
  -> 198.18.2.21:53               1         0           0          0         
"
        .to_owned())
    );
    // One service: no version line (ipvsadm's list_service).
    assert_eq!(
        run(&mut c, "-L -n -u 198.18.1.2:53"),
        Ok("\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  198.18.1.2:53 rr
  -> 198.18.2.21:53               Masq    1      0          0         
"
        .to_owned())
    );
    // --nosort: the table's order, servers newest first as IPVS lists them.
    let nosort = run(&mut c, "-L -n --nosort").unwrap();
    let rows: Vec<&str> = nosort.lines().skip(3).map(|l| &l[..20]).collect();
    assert_eq!(
        rows,
        [
            "TCP  198.18.1.1:80 w",
            "  -> 198.18.2.11:80 ",
            "  -> 198.18.2.12:80 ",
            "UDP  198.18.1.2:53 r",
            "  -> 198.18.2.21:53 ",
            "TCP  198.18.1.3:0 sh",
            "  -> 198.18.2.31:0  ",
        ]
    );
}

#[test]
fn rates_are_estimated_as_ipvs_does() {
    let mut c = small();
    let t0 = c.next_tick();
    // Not yet due: nothing sampled.
    traffic(&c, "198.18.1.1:80", 2000, 2000, 500);
    c.tick(t0 - Duration::from_millis(1));
    assert!(run(&mut c, "-L -n --rate").unwrap().contains(
        "TCP  198.18.1.1:80                       0        0        0        0        0"
    ));
    // One sample of 1000/s: a quarter of it, IPVS's first estimate
    // ((2000 << 9) >> 2, read back as (x + 0x1ff) >> 10).
    c.tick(t0);
    let rate = run(&mut c, "-L -n --rate").unwrap();
    assert_eq!(
        rate,
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.1.1:80                     500      500      500   250000   250000
  -> 198.18.2.11:80                    250      250      250   125000   125000
  -> 198.18.2.12:80                    250      250      250   125000   125000
TCP  198.18.1.3:0                        0        0        0        0        0
  -> 198.18.2.31:0                       0        0        0        0        0
UDP  198.18.1.2:53                       0        0        0        0        0
  -> 198.18.2.21:53                      0        0        0        0        0
"
    );
    // A steady rate converges on the rate itself.
    let mut t = t0;
    for _ in 0..60 {
        t += ESTIMATOR_INTERVAL;
        traffic(&c, "198.18.1.1:80", 2000, 2000, 500);
        c.tick(t);
    }
    let rate = run(&mut c, "-L -n --rate").unwrap();
    assert!(
        rate.contains(
            "  -> 198.18.2.11:80                   1000     1000     1000   500000   500000"
        ),
        "{rate}"
    );
    // Several intervals late: one sample, and the next one due a full
    // interval later.
    c.tick(t + ESTIMATOR_INTERVAL * 5);
    assert_eq!(c.next_tick(), t + ESTIMATOR_INTERVAL * 6);
}

#[test]
fn zero_sets_a_baseline_for_one_service_or_all() {
    let mut c = small();
    traffic(&c, "198.18.1.1:80", 10, 20, 100);
    traffic(&c, "198.18.1.2:53", 1, 2, 100);
    let t = c.next_tick();
    c.tick(t);
    c.changed();
    assert_eq!(run(&mut c, "-Z -t 198.18.1.1:80"), Ok(String::new()));
    assert!(!c.changed(), "zeroing changes nothing the workers see");
    let stats = run(&mut c, "-L -n --stats").unwrap();
    assert!(
        stats.contains("TCP  198.18.1.1:80                       0        0"),
        "{stats}"
    );
    assert!(
        stats.contains("UDP  198.18.1.2:53                       1        2"),
        "{stats}"
    );
    let rate = run(&mut c, "-L -n --rate").unwrap();
    assert!(
        rate.contains("  -> 198.18.2.11:80                      0        0"),
        "{rate}"
    );
    traffic(&c, "198.18.1.1:80", 3, 4, 100);
    let stats = run(&mut c, "-L -n --stats").unwrap();
    assert!(
        stats.contains(
            "  -> 198.18.2.11:80                      3        4        4      400      400"
        ),
        "{stats}"
    );
    assert_eq!(run(&mut c, "-Z"), Ok(String::new()));
    let stats = run(&mut c, "-L -n --stats").unwrap();
    assert_eq!(
        stats
            .matches("        0        0        0        0        0\n")
            .count(),
        7,
        "{stats}"
    );
    assert_eq!(
        run(&mut c, "-Z -t 198.18.9.9:80"),
        Err(("No such service".to_owned(), 255))
    );
}

#[test]
fn connection_entries() {
    let mut c = small();
    let mut conns = vec![
        ConnView {
            proto: crate::config::Protocol::Tcp,
            client: "198.19.0.10:40001".parse().unwrap(),
            virt: "198.18.1.1:80".parse().unwrap(),
            dest: "198.18.2.11:80".parse().unwrap(),
            state: "ESTABLISHED".into(),
            expires: 899,
        },
        ConnView {
            proto: crate::config::Protocol::Udp,
            client: "198.19.0.11:5353".parse().unwrap(),
            virt: "198.18.1.2:53".parse().unwrap(),
            dest: "198.18.2.21:53".parse().unwrap(),
            state: "UDP".into(),
            expires: 61,
        },
    ];
    assert_eq!(
        run_with(&mut c, "-L -n -c", &mut conns),
        Ok("\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.19.0.10:40001  198.18.1.1:80      198.18.2.11:80
UDP 01:01  UDP         198.19.0.11:5353   198.18.1.2:53      198.18.2.21:53
"
        .to_owned())
    );
    assert_eq!(
        run_with(&mut c, "-L -n -c --persistent-conn", &mut conns)
            .unwrap()
            .lines()
            .nth(1),
        Some(
            "pro expire state       source             virtual            destination        pe name          pe_data"
        )
    );
}

/// Every refusal: ipvsadm's message, a non-zero status, nothing changed.
#[test]
fn refusals_change_nothing() {
    let mut c = small();
    let before = run(&mut c, "-S -n").unwrap();
    assert!(c.changed());
    let cases: &[(&str, &str, u8)] = &[
        (
            "-a -t 198.18.9.9:80 -r 198.18.2.11",
            "Service not defined",
            255,
        ),
        (
            "-e -t 198.18.9.9:80 -r 198.18.2.11",
            "Service not defined",
            255,
        ),
        (
            "-d -t 198.18.9.9:80 -r 198.18.2.11",
            "Service not defined",
            255,
        ),
        (
            "-e -t 198.18.1.1:80 -r 198.18.2.99",
            "No such destination",
            255,
        ),
        (
            "-d -t 198.18.1.1:80 -r 198.18.2.99",
            "No such destination",
            255,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.11",
            "Destination already exists",
            255,
        ),
        ("-A -t 198.18.1.1:80", "Service already exists", 255),
        ("-E -t 198.18.9.9:80", "No such service", 255),
        ("-D -t 198.18.9.9:80", "No such service", 255),
        ("-L -t 198.18.9.9:80", "No such service", 255),
        (
            "-A -t 198.18.1.9:80 -s nope",
            "Scheduler or persistence engine not found",
            255,
        ),
        (
            "-E -t 198.18.1.1:80 -s fifo",
            "Scheduler or persistence engine not found",
            255,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.13 -w 65536",
            "illegal weight specified",
            2,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.13 -w -1",
            "illegal weight specified",
            2,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.13 -w x",
            "illegal weight specified",
            2,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.13 -x 10 -y 20",
            "l-threshold: expected at most upper_threshold (10; 0 = no limit, which allows only 0 here), got 20",
            255,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.300",
            "illegal real server address[:port] specified",
            2,
        ),
        (
            "-A -t 198.18.1.300:80",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-A -t 198.18.1.9:http-nope",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-A -t 198.18.1.9:70000",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-A -t 198.18.1.9",
            "Zero port specified for non-persistent service",
            2,
        ),
        (
            "-A -t [2001:db8::1]:80",
            "Operation not supported with IPv6",
            255,
        ),
        (
            "-a -t 198.18.1.1:80 -r [2001:db8::2]:80",
            "Operation not supported with specified address family",
            255,
        ),
        (
            "-a -t 198.18.1.1:80 -r 198.18.2.13:0 -m",
            "real-server: expected the real server's port (port 0 is only valid when the service port is 0), got 198.18.2.13:0",
            255,
        ),
        (
            "-A -t 198.18.1.9:80 -M 255.0.255.0 -p",
            "netmask: expected a contiguous IPv4 netmask, e.g. \"255.255.255.0\", got 255.0.255.0",
            255,
        ),
        (
            "-A -t 198.18.1.9:80 -b sh-port",
            "incompatible scheduler flag `sh-port'",
            2,
        ),
        (
            "-A -t 198.18.1.9:80 -b nope",
            "invalid scheduler flag `nope'",
            2,
        ),
        (
            "-A -t 198.18.1.9:80 -p 0",
            "invalid timeout value `0' specified",
            2,
        ),
        (
            "-A -f 1",
            "fwmark services (-f) are not supported by xdpvs; use -t or -u",
            2,
        ),
        (
            "-A -t 198.18.1.9:80 -r 198.18.2.1",
            "Illegal 'real-server' option with the 'add-service' command",
            2,
        ),
        (
            "-a -t 198.18.1.1:80",
            "You need to supply the 'real-server' option for the 'add-server' command",
            2,
        ),
        (
            "-L -c -t 198.18.1.1:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
            2,
        ),
        ("-L -c --stats", "options conflicts in the list command", 2),
        (
            "-A -t 198.18.1.9:80 -s rr -s wlc",
            "multiple 'scheduler' options specified",
            2,
        ),
        ("-A -D -t 198.18.1.9:80", "invalid option `-D'", 2),
        (
            "-n -L",
            "Try `xdpvsadm -h' or 'xdpvsadm --help' for more information.",
            255,
        ),
        ("-L --bogus", "--bogus: unknown option", 255),
        ("-A -t", "-t: missing argument", 255),
        ("--set 1 2", "--set option requires 3 timeout values", 2),
        ("-C extra", "unexpected argument extra", 2),
    ];
    for &(line, message, status) in cases {
        assert_eq!(
            run(&mut c, line),
            Err((message.to_owned(), status)),
            "{line}"
        );
        assert!(!c.changed(), "{line} changed the table");
        assert_eq!(run(&mut c, "-S -n").unwrap(), before, "{line}");
    }
    // Requests that bypass xdpvsadm's checks meet the daemon's.
    let k = ServiceKey {
        proto: crate::config::Protocol::Tcp,
        vip: "198.18.1.1:80".parse().unwrap(),
    };
    let bad = DestSpec {
        service: k,
        addr: "198.18.2.13:80".parse().unwrap(),
        forward: crate::dest::Forward::Dr,
        weight: 65536,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    for (req, message) in [
        (
            Request::AddDest(bad),
            "weight: expected an integer 0..=65535, got 65536",
        ),
        (
            Request::AddDest(DestSpec {
                weight: 1,
                addr: "198.18.2.13:8080".parse().unwrap(),
                ..bad
            }),
            "real-server: expected port 80 (the VIP's port; forward = \"dr\" cannot change the port, only \"nat\" can), got 8080",
        ),
        (
            Request::Restore(vec![Request::Save]),
            "--save cannot be part of a restore",
        ),
        (
            Request::SetTimeouts {
                tcp: u32::MAX,
                tcpfin: 0,
                udp: 0,
            },
            "invalid timeout value `4294967295' specified (at most 2147483)",
        ),
    ] {
        assert_eq!(
            c.handle(req.clone(), &mut NoConns),
            Response::refused(message),
            "{req:?}"
        );
        assert!(!c.changed());
    }
    assert_eq!(run(&mut c, "-S -n").unwrap(), before);
}

#[test]
fn a_restore_applies_all_or_nothing() {
    let mut c = small();
    let before = run(&mut c, "-S -n").unwrap();
    c.changed();
    let rules = "-A -t 198.18.1.20:80 -s rr
                 -a -t 198.18.1.20:80 -r 198.18.2.201:80
                 -D -t 198.18.1.1:80
                 -a -t 198.18.1.20:80 -r 198.18.2.201:80";
    assert_eq!(
        restore(&mut c, rules),
        Err(("Destination already exists".to_owned(), 255))
    );
    assert!(!c.changed());
    assert_eq!(run(&mut c, "-S -n").unwrap(), before);
    // A line ipvsadm would reject stops the batch before it is sent.
    assert_eq!(
        restore(
            &mut c,
            "-A -t 198.18.1.21:80\n-a -t 198.18.1.21:80 -r 198.18.2.1 -w 99999"
        ),
        Err(("illegal weight specified".to_owned(), 2))
    );
    assert_eq!(
        restore(&mut c, "-L -n"),
        Err((
            "only -A -E -D -C -a -e -d --set can be restored: -L -n".to_owned(),
            2
        ))
    );
    assert_eq!(
        restore(&mut c, "-R"),
        Err((
            "Try `xdpvsadm -h' or 'xdpvsadm --help' for more information.".to_owned(),
            255
        ))
    );
    assert_eq!(run(&mut c, "-S -n").unwrap(), before);
}

#[test]
fn edits_keep_counters_and_deleted_servers_lose_them() {
    let mut c = small();
    traffic(&c, "198.18.1.1:80", 5, 0, 0);
    run(&mut c, "-e -t 198.18.1.1:80 -r 198.18.2.11:80 -w 0").unwrap();
    run(&mut c, "-E -t 198.18.1.1:80 -s rr").unwrap();
    let stats = run(&mut c, "-L -n --stats").unwrap();
    assert!(
        stats.contains("  -> 198.18.2.11:80                      5"),
        "{stats}"
    );
    run(&mut c, "-d -t 198.18.1.1:80 -r 198.18.2.11:80").unwrap();
    run(&mut c, "-a -t 198.18.1.1:80 -r 198.18.2.11:80").unwrap();
    let stats = run(&mut c, "-L -n --stats").unwrap();
    assert!(
        stats.contains("  -> 198.18.2.11:80                      0"),
        "{stats}"
    );
    assert!(c.changed());
}

/// Two workers' statistics, as the daemon hands them to `--counters`.
struct TwoWorkers;

impl ConnSource for TwoWorkers {
    fn conns(&mut self) -> Vec<ConnView> {
        Vec::new()
    }

    fn counters(&mut self) -> Vec<WorkerStats> {
        use crate::frame::DropReason;
        use crate::stats::Counter;
        let mut a = WorkerStats::default();
        a.add(Counter::Rx, 10);
        a.count_drop(DropReason::Malformed);
        let mut b = WorkerStats::default();
        b.add(Counter::Rx, 5);
        b.add(Counter::HandoffSent, 3);
        vec![a, b]
    }
}

#[test]
fn counters_lists_every_counter_of_every_worker() {
    let mut c = control();
    let out = run_with(&mut c, "--counters", &mut TwoWorkers).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let words = |name: &str| -> Vec<String> {
        let l = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{out}"));
        l.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Counter", "worker", "0", "worker", "1", "total"]
    );
    assert_eq!(words("rx"), ["10", "5", "15"]);
    assert_eq!(words("handoff_sent"), ["0", "3", "3"]);
    assert_eq!(words("malformed"), ["1", "0", "1"]);
    let rows = crate::stats::Counter::COUNT + crate::frame::DropReason::COUNT;
    assert_eq!(lines.len(), 1 + rows, "one row per counter, zeros too");
    assert!(run(&mut c, "--counters -n").is_err(), "takes no options");
}

#[test]
fn drops_lists_each_reason_and_loss_of_every_worker() {
    let mut c = control();
    let out = run_with(&mut c, "--drops", &mut TwoWorkers).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Frames", "dropped", "worker", "0", "worker", "1", "total"]
    );
    let reasons = crate::frame::DropReason::COUNT;
    // Aligned: every row as wide as the heading.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["malformed", "1", "0", "1"]
    );
    assert_eq!(
        lines[1 + reasons].split_whitespace().collect::<Vec<_>>(),
        ["all", "reasons", "1", "0", "1"]
    );
    assert_eq!(
        lines[2 + reasons].split_whitespace().collect::<Vec<_>>(),
        ["Frames", "lost", "worker", "0", "worker", "1", "total"]
    );
    assert!(
        lines[3 + reasons].starts_with("  handoff_dropped "),
        "{out}"
    );
    assert_eq!(lines.len(), 3 + reasons + adm::listing::LOSSES.len());
    // Counters that are not losses are not in it.
    assert!(
        !out.contains("handoff_sent") && !out.contains(" rx "),
        "{out}"
    );
    assert!(run(&mut c, "--drops -n").is_err(), "takes no options");

    let json = run_with(&mut c, "--drops --json", &mut TwoWorkers).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "drops");
    assert_eq!(v["reasons_per_worker"], serde_json::json!([1, 0]));
}

#[test]
fn json_listings_go_through_the_socket_protocol() {
    let mut c = control();
    run(&mut c, "-A -t 198.18.1.9:80 -s rr").unwrap();
    run(&mut c, "-a -t 198.18.1.9:80 -r 198.18.2.11:80 -m -w 2").unwrap();
    run(&mut c, "-A -t 198.18.1.8:80").unwrap();
    let v: serde_json::Value = serde_json::from_str(&run(&mut c, "-L -n --json").unwrap()).unwrap();
    assert_eq!(v["version"], adm::json::VERSION);
    // Sorted as ipvsadm sorts, unless --nosort.
    assert_eq!(v["services"][0]["address"], "198.18.1.8");
    assert_eq!(v["services"][1]["reals"][0]["forward"], "nat");
    assert_eq!(v["services"][1]["reals"][0]["weight"], 2);
    let v: serde_json::Value =
        serde_json::from_str(&run(&mut c, "-L -n --json --nosort").unwrap()).unwrap();
    assert_eq!(v["services"][0]["address"], "198.18.1.9");
    let one = run(&mut c, "-L -n -t 198.18.1.9:80 --json --stats").unwrap();
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 1);
    let v: serde_json::Value =
        serde_json::from_str(&run(&mut c, "-L -n -c --json").unwrap()).unwrap();
    assert_eq!(v["kind"], "connections");
    let v: serde_json::Value =
        serde_json::from_str(&run(&mut c, "-L --timeout --json").unwrap()).unwrap();
    assert_eq!(v["kind"], "timeouts");
    // Only the listings take it.
    for line in [
        "-S -n --json",
        "-A -t 198.18.1.7:80 --json",
        "-Z --json",
        "-C --json",
    ] {
        let (msg, status) = run(&mut c, line).unwrap_err();
        assert_eq!(status, 2, "{line}");
        assert!(msg.starts_with("Illegal 'json' option"), "{line}: {msg}");
    }
    let (msg, _) = run(&mut c, "-L --json --json").unwrap_err();
    assert_eq!(msg, "multiple 'json' options specified");
}

/// `ipvsadm -a -i` works from commands alone, as with IPVS: no tunnel
/// source is configured, the route to each real server gives it.
#[test]
fn tunnel_real_servers_need_no_tunnel_source() {
    let table = ServiceTable::new(Vec::new(), None, Timeouts::default());
    let mut c = Control::new(table, 4096, Instant::now());
    run(&mut c, "-A -t 198.18.1.2:80 -s rr").unwrap();
    run(&mut c, "-a -t 198.18.1.2:80 -r 198.18.2.21:80 -i -w 1").unwrap();
    run(&mut c, "-e -t 198.18.1.2:80 -r 198.18.2.21:80 -i -w 2").unwrap();
    assert_eq!(
        run(&mut c, "-S -n"),
        Ok("-A -t 198.18.1.2:80 -s rr\n-a -t 198.18.1.2:80 -r 198.18.2.21:80 -i -w 2\n".to_owned())
    );
    assert!(c.table().is_tun_addr("198.18.2.21".parse().unwrap()));
}

#[test]
fn metrics_see_raw_totals_deleted_services_and_requests() {
    let mut c = small();
    let (requests, errors) = c.requests();
    traffic(&c, "198.18.1.1:80", 10, 20, 100);
    traffic(&c, "198.18.1.2:53", 1, 2, 100);
    let conns = |c: &mut Control, vip: &str| {
        let vip: SocketAddr = vip.parse().unwrap();
        c.metrics_views()
            .into_iter()
            .find(|v| v.vip == vip)
            .map(|v| v.stats.conns)
    };
    let before = conns(&mut c, "198.18.1.1:80").unwrap();
    assert!(before > 0);
    // -Z zeroes the listings, not the metrics.
    assert_eq!(run(&mut c, "-Z"), Ok(String::new()));
    assert_eq!(conns(&mut c, "198.18.1.1:80"), Some(before));
    // A deleted service's counts move to the retired sums.
    let udp = conns(&mut c, "198.18.1.2:53").unwrap();
    assert_eq!(c.retired().conns, 0);
    assert_eq!(run(&mut c, "-D -u 198.18.1.2:53"), Ok(String::new()));
    assert_eq!(conns(&mut c, "198.18.1.2:53"), None);
    assert_eq!(c.retired().conns, udp);
    // Every request counts; refusals count as errors too.
    assert!(run(&mut c, "-D -u 198.18.1.2:53").is_err());
    assert_eq!(c.requests(), (requests + 3, errors + 1));
}

/// Issue 13: more than the XDP steering maps hold is refused whole, with
/// a message that says which map; the table stays as it was (so the maps,
/// which the daemon fills from it, do too).
#[test]
fn edits_beyond_the_steering_maps_are_refused_whole() {
    let mut c = control();
    c.set_steer_limits(SteerLimits {
        vips: 4,
        nat_reals: 3,
        vip_addrs: 3,
        nat_real_addrs: 2,
        vips6: 4,
        nat_reals6: 3,
        vip_addrs6: 3,
        nat_real_addrs6: 2,
    });
    for line in [
        "-A -t 198.18.1.1:80 -s rr",
        "-A -t 198.18.1.1:81 -s rr",
        "-A -t 198.18.1.2:80 -s rr",
        "-A -t 198.18.1.3:80 -s rr",
        "-a -t 198.18.1.1:80 -r 198.18.2.11:80 -m",
        "-a -t 198.18.1.1:81 -r 198.18.2.12:81 -m",
        "-a -t 198.18.1.2:80 -r 198.18.2.13:80 -g",
    ] {
        run(&mut c, line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
    }
    let saved = run(&mut c, "-S -n").unwrap();
    let rules = c.table().steer_rules();
    let refused = |c: &mut Control, line: &str, map: &str| {
        let (msg, status) = run(c, line).expect_err(line);
        assert!(
            msg.contains(&format!("its {map} map holds")),
            "{line}: {msg}"
        );
        assert_ne!(status, 0, "{line}");
    };
    // A fifth (proto, VIP, port); a fourth VIP address.
    refused(&mut c, "-A -t 198.18.1.3:81 -s rr", "vips");
    refused(&mut c, "-A -u 198.18.1.4:53 -s rr", "vips");
    run(&mut c, "-A -t 198.18.1.3:80 -s rr").expect_err("exists");
    // A third NAT real server address, added or made so by -e.
    refused(
        &mut c,
        "-a -t 198.18.1.2:80 -r 198.18.2.14:80 -m",
        "nat_real_addrs",
    );
    refused(
        &mut c,
        "-e -t 198.18.1.2:80 -r 198.18.2.13:80 -m",
        "nat_real_addrs",
    );
    // A batch that deletes one service and adds two: each edit fits the
    // moment it is made but the whole does not, so none of it is kept.
    let (msg, _) = restore(
        &mut c,
        "-D -t 198.18.1.3:80\n-A -t 198.18.1.1:82 -s rr\n-A -t 198.18.1.1:83 -s rr\n",
    )
    .expect_err("restore");
    assert!(msg.contains("its vips map holds 4"), "{msg}");
    assert_eq!(run(&mut c, "-S -n").unwrap(), saved);
    assert_eq!(c.table().steer_rules(), rules);
    // A reload of the same kind.
    let mut cfg = String::from("[dataplane]\ninterfaces = [\"eth1\"]\n");
    for port in 80..85 {
        cfg.push_str(&format!(
            "[[services]]\nproto = \"tcp\"\nvip = \"198.18.1.1:{port}\"\n\
             [[services.reals]]\naddr = \"198.18.2.11:{port}\"\nforward = \"dr\"\n"
        ));
    }
    let cfg = crate::config::Config::from_str_named(&cfg, "x.toml").unwrap();
    let e = c.apply_config(&cfg).expect_err("reload");
    assert!(e.to_string().contains("its vips map holds 4"), "{e}");
    assert_eq!(run(&mut c, "-S -n").unwrap(), saved);
    assert_eq!(c.table().steer_rules(), rules);
    // What fits still goes in, and the room freed is usable.
    run(&mut c, "-D -t 198.18.1.3:80").unwrap();
    run(&mut c, "-A -t 198.18.1.1:82 -s rr").unwrap();
    refused(&mut c, "-A -t 198.18.1.1:83 -s rr", "vips");
}

#[test]
fn a_restore_part_that_reaches_the_table_is_refused() {
    let mut c = small();
    let before = run(&mut c, "-S -n").unwrap();
    c.changed();
    let part = Request::RestorePart(adm::parse_rules("-C").unwrap());
    match c.handle(part, &mut NoConns) {
        Response::Err { message, status } => {
            assert!(message.contains("part of a restore"), "{message}");
            assert_eq!(status, 255);
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.changed());
    assert_eq!(run(&mut c, "-S -n").unwrap(), before);
}

/// Health verdicts as `xdpvsadm` sees them: a server taken out is not
/// listed but can still be edited (`-e`, its weight for when it returns)
/// and deleted; an inhibited one is listed at weight 0 and `-S` saves 0.
#[test]
fn health_states_in_listings_and_edits() {
    let mut c = control();
    run(&mut c, "-A -t 198.18.1.1:80 -s rr").unwrap();
    for r in ["198.18.2.11", "198.18.2.12"] {
        run(&mut c, &format!("-a -t 198.18.1.1:80 -r {r} -g -w 2")).unwrap();
    }
    let vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
    let key = |r: &str| (crate::config::Protocol::Tcp, vip, r.parse().unwrap());
    let down = |inhibit| Health {
        up: false,
        weight: None,
        inhibit,
    };
    assert!(c.set_health(key("198.18.2.11:80"), down(false)).is_some());
    assert!(c.changed());
    assert!(c.set_health(key("198.18.2.11:80"), down(false)).is_none());
    assert!(!c.changed(), "the same verdict again changes nothing");
    let saved = run(&mut c, "-S -n").unwrap();
    assert!(!saved.contains("198.18.2.11"), "{saved}");
    assert_eq!(
        run(&mut c, "-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1").unwrap_err(),
        ("Destination already exists".to_owned(), 255)
    );
    run(&mut c, "-e -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 5").unwrap();
    c.set_health(key("198.18.2.11:80"), Health::UP);
    let saved = run(&mut c, "-S -n").unwrap();
    assert!(
        saved.contains("-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 5"),
        "{saved}"
    );
    c.set_health(key("198.18.2.12:80"), down(true));
    let saved = run(&mut c, "-S -n").unwrap();
    assert!(
        saved.contains("-a -t 198.18.1.1:80 -r 198.18.2.12:80 -g -w 0"),
        "{saved}"
    );
    c.set_health(key("198.18.2.11:80"), down(false));
    run(&mut c, "-d -t 198.18.1.1:80 -r 198.18.2.11:80").unwrap();
    assert_eq!(
        run(&mut c, "-d -t 198.18.1.1:80 -r 198.18.2.11:80").unwrap_err(),
        ("No such destination".to_owned(), 255)
    );
}

/// One step of [`tracking_follows_every_edit_as_a_full_pass_would`].
#[derive(Debug, Clone)]
enum Step {
    /// An `xdpvsadm` command line.
    Line(String),
    /// A `-R` of these lines.
    Restore(String),
    /// Traffic through service n's counters.
    Traffic(u8),
    /// A health verdict for real server r of service n.
    Health(u8, u8, bool),
    /// An edit the control side cannot follow.
    TableMut,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let vip = |s: u8| format!("-t 198.18.1.{s}:80");
    let rip = |r: u8| format!("-r 198.18.2.{r}:80");
    prop_oneof![
        4 => (0u8..4).prop_map(move |s| Step::Line(format!("-A {} -s rr", vip(s)))),
        1 => (0u8..4).prop_map(move |s| Step::Line(format!("-D {}", vip(s)))),
        6 => (0u8..4, 0u8..6, prop::sample::select(vec!["-g", "-m", "-i"])).prop_map(
            move |(s, r, f)| Step::Line(format!("-a {} {} {f} -w 1", vip(s), rip(r)))
        ),
        3 => (0u8..4, 0u8..6).prop_map(move |(s, r)| Step::Line(format!("-d {} {}", vip(s), rip(r)))),
        2 => (0u8..4, 0u8..6, 0u32..3).prop_map(
            move |(s, r, w)| Step::Line(format!("-e {} {} -m -w {w}", vip(s), rip(r)))
        ),
        1 => (0u8..4).prop_map(move |s| Step::Line(format!("-E {} -s wlc", vip(s)))),
        1 => (0u8..4).prop_map(move |s| Step::Line(format!("-Z {}", vip(s)))),
        1 => Just(Step::Line("-Z".to_owned())),
        1 => Just(Step::Line("-C".to_owned())),
        1 => (0u8..4, 0u8..6).prop_map(move |(s, r)| Step::Restore(format!(
            "-A {v} -s rr\n-a {v} {} -g -w 1\n", rip(r), v = vip(s)
        ))),
        3 => (0u8..4).prop_map(Step::Traffic),
        2 => (0u8..4, 0u8..6, any::<bool>()).prop_map(|(s, r, up)| Step::Health(s, r, up)),
        1 => Just(Step::TableMut),
    ]
}

/// What a full pass over the table finds: every service's counter set and
/// every real server's, listed or not.
fn every_counter_set(c: &Control) -> (Vec<usize>, Vec<usize>) {
    let (mut services, mut dests) = (Vec::new(), Vec::new());
    for s in c.table().all_counter_sets() {
        services.push(key(s.stats));
        dests.extend(s.dests.into_iter().map(key));
    }
    services.sort_unstable();
    dests.sort_unstable();
    (services, dests)
}

fn sorted_keys<T>(m: &HashMap<usize, T>) -> Vec<usize> {
    let mut k: Vec<usize> = m.keys().copied().collect();
    k.sort_unstable();
    k
}

proptest::proptest! {
    /// Whatever the edits, the counter sets the control side tracks are
    /// exactly those a full pass over the table finds, a deleted
    /// service's counts are in the retired sums as a full pass after every
    /// edit puts them there, an entry that stays keeps its `-Z` baseline,
    /// and no single edit made a full pass.
    #[test]
    fn tracking_follows_every_edit_as_a_full_pass_would(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut c = control();
        // The reference: the service counter sets a full pass after every
        // step saw, and what it retired.
        let mut seen: HashMap<usize, Arc<Stats>> = HashMap::new();
        let mut retired = Totals::default();
        for st in steps {
            let bases: HashMap<usize, Totals> = c
                .services
                .iter()
                .map(|(k, t)| (*k, t.base))
                .chain(c.dests.iter().map(|(k, t)| (*k, t.base)))
                .collect();
            let passes = c.full_tracks;
            let mut single_edit = false;
            let mut zero = false;
            match &st {
                Step::Line(line) => {
                    zero = line.starts_with("-Z");
                    single_edit = !zero && line != "-C";
                    let _ = run(&mut c, line);
                }
                Step::Restore(rules) => {
                    let _ = restore(&mut c, rules);
                }
                Step::Traffic(s) => {
                    let vip: SocketAddr = format!("198.18.1.{s}:80").parse().unwrap();
                    if let Some(cs) = c.table().counter_sets(Protocol::Tcp, vip) {
                        cs.stats.line(0).unwrap().conn();
                        for d in cs.dests {
                            d.stats.line(0).unwrap().conn();
                        }
                    }
                }
                Step::Health(s, r, up) => {
                    let h = Health { up: *up, weight: None, inhibit: false };
                    c.set_health(
                        (
                            Protocol::Tcp,
                            format!("198.18.1.{s}:80").parse().unwrap(),
                            format!("198.18.2.{r}:80").parse().unwrap(),
                        ),
                        h,
                    );
                }
                Step::TableMut => c.table_mut().retain_health(|_| Some(false)),
            }
            if single_edit {
                proptest::prop_assert_eq!(c.full_tracks, passes, "{:?} made a full pass", st);
            }
            proptest::prop_assert_eq!(
                c.steer_rules().clone(),
                c.table().steer_rules(),
                "after {:?}",
                st
            );
            // Listings catch up with what the control side could not follow.
            let _ = c.metrics_views();
            let (services, dests) = every_counter_set(&c);
            proptest::prop_assert_eq!(&sorted_keys(&c.services), &services, "after {:?}", st);
            proptest::prop_assert_eq!(&sorted_keys(&c.dests), &dests, "after {:?}", st);
            let now: HashMap<usize, Arc<Stats>> = c
                .table()
                .all_counter_sets()
                .map(|s| (key(s.stats), Arc::clone(s.stats)))
                .collect();
            for (k, s) in &seen {
                if !now.contains_key(k) {
                    retired = add(retired, s.total());
                }
            }
            seen = now;
            proptest::prop_assert_eq!(c.retired(), retired, "after {:?}", st);
            if !zero {
                for (k, t) in c.services.iter().map(|(k, t)| (k, t.base))
                    .chain(c.dests.iter().map(|(k, t)| (k, t.base)))
                {
                    if let Some(b) = bases.get(k) {
                        proptest::prop_assert_eq!(*b, t, "a baseline changed by {:?}", st);
                    }
                }
            }
        }
    }
}
