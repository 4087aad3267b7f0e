//! Golden outputs. The files under `golden/` were printed by ipvsadm
//! 1.31's own `print_title`, `print_service_entry` and `print_largenum`,
//! compiled unchanged into a harness that fed them the same services as
//! [`realistic`] below (with `--nosort`, since we keep the caller's order).
//! Trailing spaces in them are ipvsadm's (`%-10u` in the last column).

use super::*;
use crate::config::{Forward, Protocol, SchedFlags};
use crate::ctrl::proto::{DestView, Rates, Totals};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn totals(conns: u64, inpkts: u64, outpkts: u64, inbytes: u64, outbytes: u64) -> Totals {
    Totals {
        conns,
        inpkts,
        outpkts,
        inbytes,
        outbytes,
    }
}

fn rates(cps: u64, inpps: u64, outpps: u64, inbps: u64, outbps: u64) -> Rates {
    Rates {
        cps,
        inpps,
        outpps,
        inbps,
        outbps,
    }
}

fn svc(proto: Protocol, vip: &str, sched: &str) -> ServiceView {
    ServiceView {
        proto,
        vip: sa(vip),
        scheduler: sched.to_string(),
        flags: SchedFlags::default(),
        persistence_timeout: 0,
        persistence_netmask: Ipv4Addr::BROADCAST,
        stats: Totals::default(),
        rates: Rates::default(),
        dests: Vec::new(),
    }
}

fn dest(addr: &str, forward: Forward, weight: u32) -> DestView {
    DestView {
        addr: sa(addr),
        forward,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        active: 0,
        inactive: 0,
        persistent: 0,
        stats: Totals::default(),
        rates: Rates::default(),
    }
}

/// Every service shape the listing distinguishes: three forwarding modes,
/// UDP, a persistent sh service with flags and a /24 mask, a persistent mh
/// service with the default mask, flag-3 on a scheduler with no names for
/// it, sh with only flag 3 (ipvsadm prints `()`), and counters across every
/// K/M/G/T boundary.
fn realistic() -> Vec<ServiceView> {
    let mut web = svc(Protocol::Tcp, "198.18.1.1:80", "wlc");
    web.stats = totals(1523, 98231, 87120, 11234567, 998877665);
    web.rates = rates(12, 340, 301, 45678, 1234567);
    let mut d = dest("198.18.2.11:80", Forward::Dr, 1);
    d.active = 17;
    d.inactive = 230;
    d.upper_threshold = 100;
    d.lower_threshold = 50;
    d.stats = totals(800, 50000, 45000, 6000000, 500000000);
    d.rates = rates(7, 180, 160, 24000, 650000);
    web.dests.push(d);
    let mut d = dest("198.18.2.12:8080", Forward::Tun, 3);
    d.active = 5;
    d.inactive = 61;
    d.stats = totals(700, 48231, 42120, 5234567, 498877665);
    d.rates = rates(5, 160, 141, 21678, 584567);
    web.dests.push(d);
    web.dests.push(dest("198.18.2.13:80", Forward::Nat, 0));

    let mut dns = svc(Protocol::Udp, "198.18.1.2:53", "rr");
    let mut d = dest("198.18.2.21:53", Forward::Nat, 1);
    d.inactive = 4;
    dns.dests.push(d);

    let mut sticky = svc(Protocol::Tcp, "198.18.1.3:0", "sh");
    sticky.flags = SchedFlags(SchedFlags::FLAG1 | SchedFlags::FLAG2);
    sticky.persistence_timeout = 300;
    sticky.persistence_netmask = Ipv4Addr::new(255, 255, 255, 0);
    let mut d = dest("198.18.2.31:0", Forward::Dr, 2);
    d.active = 3;
    d.persistent = 2;
    d.upper_threshold = 1000;
    d.lower_threshold = 800;
    sticky.dests.push(d);

    let mut maglev = svc(Protocol::Tcp, "198.18.1.4:443", "mh");
    maglev.flags = SchedFlags(SchedFlags::FLAG2);
    maglev.persistence_timeout = 3600;
    maglev
        .dests
        .push(dest("198.18.2.41:443", Forward::Tun, 65535));

    let mut flag3 = svc(Protocol::Udp, "198.18.1.5:5000", "rr");
    flag3.flags = SchedFlags(SchedFlags::FLAG3);

    let mut sh_flag3 = svc(Protocol::Tcp, "198.18.1.6:22", "sh");
    sh_flag3.flags = SchedFlags(SchedFlags::FLAG3);

    let mut big = svc(Protocol::Tcp, "198.18.1.7:80", "wlc");
    big.stats = totals(
        99_999_999,
        100_000_000,
        999_999_999,
        1_000_000_000,
        99_999_999_999,
    );
    big.rates = rates(
        100_000_000_000,
        99_999_999_999_999,
        100_000_000_000_000,
        u64::MAX,
        123_456_789,
    );
    let mut d = dest("198.18.2.71:80", Forward::Dr, 1);
    d.stats = totals(
        123_456_789_012,
        4_000_000_000,
        5_000_000_000_000,
        987_654_321_098_765,
        1,
    );
    d.rates = rates(
        1_234_567_890,
        100_000_000,
        99_999_999,
        100_000_000,
        99_999_999_999_999,
    );
    big.dests.push(d);

    vec![web, dns, sticky, maglev, flag3, sh_flag3, big]
}

fn listed(format: Format, exact: bool) -> String {
    list(4096, &realistic(), &Options { format, exact })
}

/// Compare line by line first so a failure names the line.
fn assert_golden(got: &str, want: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got, want);
}

#[test]
fn spec_example() {
    let mut s = svc(Protocol::Tcp, "198.18.1.1:80", "wlc");
    s.dests.push(dest("198.18.2.11:80", Forward::Dr, 1));
    let services = [s];
    assert_eq!(
        list(4096, &services, &Options::default()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.1.1:80 wlc\n  \
         -> 198.18.2.11:80               Route   1      0          0         \n"
    );
    assert_eq!(
        save(&services),
        "-A -t 198.18.1.1:80 -s wlc\n\
         -a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 1\n"
    );
}

#[test]
fn empty_table_prints_titles_only() {
    assert_eq!(
        list(1048576, &[], &Options::default()),
        "IP Virtual Server version 1.2.1 (size=1048576)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    assert_eq!(save(&[]), "");
}

#[test]
fn golden_plain() {
    assert_golden(
        &listed(Format::Plain, false),
        include_str!("golden/plain.txt"),
    );
}

#[test]
fn golden_stats() {
    assert_golden(
        &listed(Format::Stats, false),
        include_str!("golden/stats.txt"),
    );
}

#[test]
fn golden_stats_exact() {
    assert_golden(
        &listed(Format::Stats, true),
        include_str!("golden/stats_exact.txt"),
    );
}

#[test]
fn golden_rate() {
    assert_golden(
        &listed(Format::Rate, false),
        include_str!("golden/rate.txt"),
    );
}

#[test]
fn golden_rate_exact() {
    assert_golden(
        &listed(Format::Rate, true),
        include_str!("golden/rate_exact.txt"),
    );
}

#[test]
fn golden_thresholds() {
    assert_golden(
        &listed(Format::Thresholds, false),
        include_str!("golden/thresholds.txt"),
    );
}

#[test]
fn golden_persistent_conn() {
    assert_golden(
        &listed(Format::PersistentConn, false),
        include_str!("golden/persistent.txt"),
    );
}

#[test]
fn golden_save() {
    assert_golden(&save(&realistic()), include_str!("golden/save.txt"));
}

/// `exact` only changes the counters: the other formats are identical.
#[test]
fn exact_leaves_counterless_formats_alone() {
    for f in [Format::Plain, Format::Thresholds, Format::PersistentConn] {
        assert_eq!(listed(f, true), listed(f, false));
    }
}

/// Each value against what ipvsadm 1.31's `print_largenum` printed for it,
/// without and with `FMT_EXACT`.
#[test]
fn largenum_boundaries() {
    let cases: &[(u64, &str, &str)] = &[
        (0, "        0", "        0"),
        (1, "        1", "        1"),
        (12_345_678, " 12345678", " 12345678"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (123_456_789, "  123456K", " 123456789"),
        (999_999_999, "  999999K", " 999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (99_999_999_999, "   99999M", " 99999999999"),
        (100_000_000_000, "     100G", " 100000000000"),
        (99_999_999_999_999, "   99999G", " 99999999999999"),
        (100_000_000_000_000, "     100T", " 100000000000000"),
        (u64::MAX, "18446744T", " 18446744073709551615"),
    ];
    for &(n, short, exact) in cases {
        let mut s = String::new();
        largenum(&mut s, n, false);
        assert_eq!(s, short, "{n}");
        let mut s = String::new();
        largenum(&mut s, n, true);
        assert_eq!(s, exact, "{n} exact");
    }
}

#[test]
fn mask_is_shown_only_when_persistent_and_not_32() {
    let mut s = svc(Protocol::Tcp, "198.18.1.3:443", "wlc");
    s.persistence_netmask = Ipv4Addr::new(255, 255, 0, 0);
    let line = |s: &ServiceView| {
        list(16, std::slice::from_ref(s), &Options::default())
            .lines()
            .nth(3)
            .unwrap()
            .to_string()
    };
    // Not persistent: no mask even if one is set (ipvsadm shows it only
    // under IP_VS_SVC_F_PERSISTENT).
    assert_eq!(line(&s), "TCP  198.18.1.3:443 wlc");
    s.persistence_timeout = 60;
    assert_eq!(
        line(&s),
        "TCP  198.18.1.3:443 wlc persistent 60 mask 255.255.0.0"
    );
    assert_eq!(
        save(std::slice::from_ref(&s)),
        "-A -t 198.18.1.3:443 -s wlc -p 60 -M 255.255.0.0\n"
    );
    s.persistence_netmask = Ipv4Addr::BROADCAST;
    assert_eq!(line(&s), "TCP  198.18.1.3:443 wlc persistent 60");
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let mut s = svc(Protocol::Udp, "[2001:db8::1]:53", "rr");
    s.dests.push(dest("[2001:db8:1::11]:53", Forward::Tun, 1));
    let services = [s];
    let out = list(16, &services, &Options::default());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[3], "UDP  [2001:db8::1]:53 rr");
    assert_eq!(
        lines[4],
        "  -> [2001:db8:1::11]:53          Tunnel  1      0          0         "
    );
    assert_eq!(
        save(&services),
        "-A -u [2001:db8::1]:53 -s rr\n\
         -a -u [2001:db8::1]:53 -r [2001:db8:1::11]:53 -i -w 1\n"
    );
}
