//! `xdpvs::netlink` against real kernel tables, in namespaces each test
//! builds for itself (needs root and iproute2; ping for the MAC change).
//!
//!     director ns                 host ns
//!     d0 198.18.0.1/24 ──veth──── h0 198.18.0.2/24
//!     d1 198.18.1.1/24 ──veth──── r0 198.18.1.254/24  router ns
//!                                 r1 198.18.2.254/24 ──veth── f0 198.18.2.2/24  far ns
//!     dn (a veth left down)
//!     route 198.18.2.0/24 via 198.18.1.254
//!
//! The netlink socket is opened on a thread that entered the director's
//! namespace; the `ip` commands name their namespace themselves.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use xdpvs::netlink::{Family, Netlink, NetlinkError, Resolution};

const D0_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0x00, 0x01];
const H0_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0x00, 0x02];
const H0_NEW_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0x00, 0x22];
const R0_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0x01, 0xfe];
const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SILENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
const FAR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const NO_ROUTE: Ipv4Addr = Ipv4Addr::new(198, 19, 9, 9);
const BLACKHOLED: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const LOCAL_D1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// Longest wait for an ARP exchange between veths (it takes well under a
/// millisecond; the margin is for a loaded machine).
const RESOLVE_WITHIN: Duration = Duration::from_secs(3);

fn mac_str(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn ip(args: &[&str]) -> String {
    run("ip", args)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (needs iproute2/iputils-ping): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace deleted (with its interfaces) on drop.
struct Netns(String);

impl Netns {
    fn new(role: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "xdpvs{}nl{}{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`ip netns add` failed (these tests need root): {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("cannot run ip (needs iproute2): {e}"),
        }
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread inside this namespace: sockets it opens live
    /// here, and the test's own thread keeps its namespace.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        thread::scope(|s| {
            let worker = s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            });
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The topology of the module doc. Fields drop (namespaces are deleted) on
/// every exit path, panics included.
struct Bed {
    d: Netns,
    h: Netns,
    r: Netns,
    _f: Netns,
}

impl Bed {
    fn new() -> Bed {
        let bed = Bed {
            d: Netns::new("d"),
            h: Netns::new("h"),
            r: Netns::new("r"),
            _f: Netns::new("f"),
        };
        let (d, h, r, f) = (&bed.d.0[..], &bed.h.0[..], &bed.r.0[..], &bed._f.0[..]);
        #[rustfmt::skip]
        let steps: &[&[&str]] = &[
            &["-n", d, "link", "add", "d0", "numtxqueues", "2", "numrxqueues", "3",
              "address", &mac_str(D0_MAC), "mtu", "1400",
              "type", "veth", "peer", "name", "h0", "netns", h, "address", &mac_str(H0_MAC)],
            &["-n", d, "addr", "add", "198.18.0.1/24", "dev", "d0"],
            &["-n", h, "addr", "add", "198.18.0.2/24", "dev", "h0"],
            &["-n", d, "link", "add", "d1", "type", "veth",
              "peer", "name", "r0", "netns", r, "address", &mac_str(R0_MAC)],
            &["-n", d, "addr", "add", "198.18.1.1/24", "dev", "d1"],
            &["-n", r, "addr", "add", "198.18.1.254/24", "dev", "r0"],
            &["-n", r, "link", "add", "r1", "type", "veth", "peer", "name", "f0", "netns", f],
            &["-n", r, "addr", "add", "198.18.2.254/24", "dev", "r1"],
            &["-n", f, "addr", "add", "198.18.2.2/24", "dev", "f0"],
            &["-n", d, "link", "add", "dn", "numtxqueues", "4", "numrxqueues", "1",
              "type", "veth", "peer", "name", "dnp"],
            &["-n", d, "link", "set", "d0", "up"],
            &["-n", d, "link", "set", "d1", "up"],
            &["-n", h, "link", "set", "h0", "up"],
            &["-n", r, "link", "set", "r0", "up"],
            &["-n", r, "link", "set", "r1", "up"],
            &["-n", f, "link", "set", "f0", "up"],
            &["-n", d, "route", "add", "198.18.2.0/24", "via", "198.18.1.254"],
            &["-n", f, "route", "add", "default", "via", "198.18.2.254"],
            &["-n", d, "route", "add", "blackhole", "198.19.1.0/24"],
        ];
        for step in steps {
            ip(step);
        }
        bed
    }

    /// The index of `dev` in the director's namespace, as `ip` reports it.
    fn ifindex(&self, dev: &str) -> u32 {
        let line = ip(&["-n", &self.d.0, "-o", "link", "show", "dev", dev]);
        line.split(':').next().unwrap().trim().parse().unwrap()
    }
}

/// Resolves `dst` until `done` accepts the answer, at most RESOLVE_WITHIN.
fn poll<A: Family>(
    nl: &mut Netlink,
    dst: A,
    done: impl Fn(&Resolution<A>) -> bool,
) -> Resolution<A> {
    let start = Instant::now();
    loop {
        let r = nl.resolve(dst).unwrap();
        if done(&r) || start.elapsed() > RESOLVE_WITHIN {
            return r;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn resolved<A>(r: &Resolution<A>) -> bool {
    matches!(r, Resolution::Resolved { .. })
}

#[test]
fn interface_reports_index_mac_mtu_queues_and_state() {
    let bed = Bed::new();
    let (d0, dn) = (bed.ifindex("d0"), bed.ifindex("dn"));
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        let i = nl.interface("d0").unwrap();
        assert_eq!(i.name, "d0");
        assert_eq!(i.index, d0);
        assert_eq!(i.mac, D0_MAC);
        assert_eq!(i.mtu, 1400);
        assert_eq!((i.rx_queues, i.tx_queues), (3, 2));
        assert!(i.up, "d0 and its peer are up");

        let down = nl.interface("dn").unwrap();
        assert_eq!(down.index, dn);
        assert_eq!((down.rx_queues, down.tx_queues), (1, 4));
        assert!(!down.up, "dn was never set up");

        for missing in ["nosuchif", "a-name-longer-than-ifnamsiz", ""] {
            match nl.interface(missing) {
                Err(NetlinkError::NoSuchInterface(n)) => assert_eq!(n, missing),
                other => panic!("interface({missing:?}) = {other:?}"),
            }
        }
    });
}

#[test]
fn on_link_neighbour_goes_from_pending_to_resolved() {
    let bed = Bed::new();
    let d0 = bed.ifindex("d0");
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        // Nothing has talked to the host: no entry, so Pending, and only our
        // NTF_USE trigger can make the kernel send the ARP request.
        assert_eq!(
            nl.resolve(HOST).unwrap(),
            Resolution::Pending {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST
            }
        );
        assert_eq!(
            poll(&mut nl, HOST, resolved),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_MAC
            }
        );
    });
}

#[test]
fn destination_behind_a_gateway_resolves_to_the_gateway() {
    let bed = Bed::new();
    let (d0, d1) = (bed.ifindex("d0"), bed.ifindex("d1"));
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        let dsts = [FAR, HOST, NO_ROUTE, FAR];
        let first = nl.resolve_all(&dsts).unwrap();
        let far_pending = Resolution::Pending {
            ifindex: d1,
            src: Some(LOCAL_D1),
            next_hop: GATEWAY,
        };
        assert_eq!(
            first,
            [
                far_pending,
                Resolution::Pending {
                    ifindex: d0,
                    src: Some(LOCAL),
                    next_hop: HOST
                },
                Resolution::Unreachable,
                far_pending
            ]
        );
        let start = Instant::now();
        let mut all = first;
        while !(resolved(&all[0]) && resolved(&all[1])) && start.elapsed() < RESOLVE_WITHIN {
            thread::sleep(Duration::from_millis(20));
            all = nl.resolve_all(&dsts).unwrap();
        }
        let far = Resolution::Resolved {
            ifindex: d1,
            src: Some(LOCAL_D1),
            next_hop: GATEWAY,
            mac: R0_MAC,
        };
        assert_eq!(
            all,
            [
                far,
                Resolution::Resolved {
                    ifindex: d0,
                    src: Some(LOCAL),
                    next_hop: HOST,
                    mac: H0_MAC
                },
                Resolution::Unreachable,
                far
            ]
        );
    });
    // The router was asked; the far host itself never was.
    assert!(
        ip(&["-n", &bed.r.0, "neigh", "show", "dev", "r1"])
            .trim()
            .is_empty()
    );
}

#[test]
fn no_usable_route_is_unreachable() {
    let bed = Bed::new();
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        // No route at all, a blackhole route, and the director's own address.
        assert_eq!(
            nl.resolve_all(&[NO_ROUTE, BLACKHOLED, LOCAL]).unwrap(),
            [Resolution::Unreachable; 3]
        );
    });
}

#[test]
fn silent_neighbour_ends_unreachable_and_recovers_when_it_answers() {
    let bed = Bed::new();
    let d0 = bed.ifindex("d0");
    let limit = Duration::from_secs(1);
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        nl.set_pending_limit(limit);
        let start = Instant::now();
        assert_eq!(
            nl.resolve(SILENT).unwrap(),
            Resolution::Pending {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: SILENT
            }
        );
        // Pending until the limit, then Unreachable (the kernel still probes
        // in between: its entry is INCOMPLETE, not yet FAILED).
        let end = poll(&mut nl, SILENT, |r| *r == Resolution::Unreachable);
        assert_eq!(end, Resolution::Unreachable);
        assert!(
            start.elapsed() >= limit,
            "Unreachable after {:?}",
            start.elapsed()
        );
        // It stays so, though our triggers keep the kernel probing.
        for _ in 0..3 {
            assert_eq!(nl.resolve(SILENT).unwrap(), Resolution::Unreachable);
        }
    });
    let entry = ip(&[
        "-n",
        &bed.d.0,
        "neigh",
        "show",
        &SILENT.to_string(),
        "dev",
        "d0",
    ]);
    assert!(
        entry.contains("INCOMPLETE") || entry.contains("FAILED"),
        "the trigger created a kernel entry: {entry:?}"
    );

    // The address appears on the host: the next probe is answered.
    ip(&["-n", &bed.h.0, "addr", "add", "198.18.0.99/24", "dev", "h0"]);
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        assert_eq!(
            poll(&mut nl, SILENT, resolved),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: SILENT,
                mac: H0_MAC
            }
        );
    });
}

#[test]
fn changed_mac_is_seen_by_the_next_resolve() {
    let bed = Bed::new();
    let d0 = bed.ifindex("d0");
    let (d, h) = (&bed.d.0[..], &bed.h.0[..]);
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        assert_eq!(
            poll(&mut nl, HOST, resolved),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_MAC
            }
        );

        // The host gets a new NIC address and talks to the director: its
        // ARP request carries the new address, and the kernel takes it.
        ip(&[
            "-n",
            h,
            "link",
            "set",
            "h0",
            "address",
            &mac_str(H0_NEW_MAC),
        ]);
        ip(&["-n", h, "neigh", "flush", "dev", "h0"]);
        run(
            "ip",
            &["netns", "exec", h, "ping", "-c1", "-W2", "198.18.0.1"],
        );
        assert_eq!(
            nl.resolve(HOST).unwrap(),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_NEW_MAC
            }
        );

        // An administrator's entry replaces it just as well.
        let manual = [0x02, 0, 0xc6, 0x12, 0x00, 0x33];
        ip(&[
            "-n",
            d,
            "neigh",
            "replace",
            "198.18.0.2",
            "dev",
            "d0",
            "lladdr",
            &mac_str(manual),
        ]);
        assert_eq!(
            nl.resolve(HOST).unwrap(),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: manual
            }
        );
    });
}

#[test]
fn stale_entry_is_confirmed_and_a_silent_mac_change_is_found() {
    let bed = Bed::new();
    let d0 = bed.ifindex("d0");
    let (d, h) = (&bed.d.0[..], &bed.h.0[..]);
    // Confirm quickly: probe a STALE entry after 1 s, unicast probes 100 ms
    // apart (defaults: 5 s and 1 s).
    #[rustfmt::skip]
    run("ip", &["netns", "exec", d, "sysctl", "-q",
        "net.ipv4.neigh.d0.delay_first_probe_time=1", "net.ipv4.neigh.d0.retrans_time_ms=100"]);
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        assert!(resolved(&poll(&mut nl, HOST, resolved)));

        // The host's MAC changes and it says nothing; the director's entry
        // has gone STALE. Still used meanwhile, but confirmation is started:
        // unicast probes to the old MAC go unanswered, the entry fails, and
        // the broadcast request that follows finds the new MAC.
        ip(&[
            "-n",
            h,
            "link",
            "set",
            "h0",
            "address",
            &mac_str(H0_NEW_MAC),
        ]);
        ip(&[
            "-n",
            d,
            "neigh",
            "change",
            "198.18.0.2",
            "dev",
            "d0",
            "nud",
            "stale",
        ]);
        assert_eq!(
            nl.resolve(HOST).unwrap(),
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_MAC
            }
        );
        let start = Instant::now();
        let mut r = nl.resolve(HOST).unwrap();
        while r
            != (Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_NEW_MAC,
            })
            && start.elapsed() < Duration::from_secs(5)
        {
            thread::sleep(Duration::from_millis(50));
            r = nl.resolve(HOST).unwrap();
        }
        assert_eq!(
            r,
            Resolution::Resolved {
                ifindex: d0,
                src: Some(LOCAL),
                next_hop: HOST,
                mac: H0_NEW_MAC
            }
        );
    });
}

/// The source of each route (RTA_PREFSRC), as `ip route get` shows it:
/// the out interface's address, or the route's own `src`; a route change
/// is seen by the next lookup.
#[test]
fn each_route_names_its_source_and_a_change_is_seen() {
    let bed = Bed::new();
    let (d0, d1) = (bed.ifindex("d0"), bed.ifindex("d1"));
    let src_of = |r: Resolution| match r {
        Resolution::Resolved { src, .. } | Resolution::Pending { src, .. } => src,
        Resolution::Unreachable => panic!("routed destinations resolve"),
    };
    let extra = Ipv4Addr::new(198, 18, 1, 9);
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        let r = nl.resolve_all(&[HOST, FAR]).unwrap();
        let srcs: Vec<_> = r.into_iter().map(src_of).collect();
        assert_eq!(srcs, [Some(LOCAL), Some(LOCAL_D1)]);
        // A second address, named as the route's source.
        ip(&["-n", &bed.d.0, "addr", "add", "198.18.1.9/32", "dev", "d1"]);
        ip(&[
            "-n",
            &bed.d.0,
            "route",
            "replace",
            "198.18.2.0/24",
            "via",
            "198.18.1.254",
            "src",
            "198.18.1.9",
        ]);
        assert_eq!(src_of(nl.resolve(FAR).unwrap()), Some(extra));
        // The far network moved behind the host on d0: another interface,
        // another source.
        ip(&[
            "-n",
            &bed.d.0,
            "route",
            "replace",
            "198.18.2.0/24",
            "via",
            "198.18.0.2",
        ]);
        match nl.resolve(FAR).unwrap() {
            Resolution::Resolved { ifindex, src, .. }
            | Resolution::Pending { ifindex, src, .. } => {
                assert_eq!((ifindex, src), (d0, Some(LOCAL)));
            }
            Resolution::Unreachable => panic!("FAR is routed via the host"),
        }
        assert_ne!(d0, d1);
    });
}

/// The director's own addresses, IPv4 and IPv6, every interface's, and a
/// change is seen by the next call.
#[test]
fn local_addresses_are_listed_and_follow_changes() {
    let bed = Bed::new();
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        let v4 = |nl: &mut Netlink| -> Vec<IpAddr> {
            nl.local_addrs()
                .unwrap()
                .into_iter()
                .filter(IpAddr::is_ipv4)
                .collect()
        };
        let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
        let (local, local_d1) = (IpAddr::from(LOCAL), IpAddr::from(LOCAL_D1));
        assert_eq!(v4(&mut nl), [loopback, local, local_d1]);
        let vip = IpAddr::from(Ipv4Addr::new(198, 18, 9, 1));
        ip(&["-n", &bed.d.0, "addr", "add", "198.18.9.1/32", "dev", "lo"]);
        assert_eq!(v4(&mut nl), [loopback, local, local_d1, vip]);
        ip(&["-n", &bed.d.0, "addr", "del", "198.18.0.1/24", "dev", "d0"]);
        assert_eq!(v4(&mut nl), [loopback, local_d1, vip]);
        // IPv6: after the IPv4 ones; an address on lo (a DR VIP) appears
        // and goes.
        let vip6: IpAddr = "2001:db8:9::1".parse().unwrap();
        ip(&[
            "-n",
            &bed.d.0,
            "addr",
            "add",
            "2001:db8:9::1/128",
            "dev",
            "lo",
            "nodad",
        ]);
        let all = nl.local_addrs().unwrap();
        assert!(all.contains(&vip6), "{all:?}");
        let first6 = all.iter().position(IpAddr::is_ipv6).unwrap();
        assert!(all[first6..].iter().all(IpAddr::is_ipv6), "{all:?}");
        ip(&[
            "-n",
            &bed.d.0,
            "addr",
            "del",
            "2001:db8:9::1/128",
            "dev",
            "lo",
        ]);
        assert!(!nl.local_addrs().unwrap().contains(&vip6));
    });
}

/// IPv6 (issue 16): an on-link host resolves by neighbour discovery, a
/// far one to its link-local gateway, each with the source the kernel
/// would use; no route is Unreachable.
#[test]
fn ipv6_destinations_resolve_by_neighbour_discovery() {
    let bed = Bed::new();
    let (d, h, r) = (&bed.d.0[..], &bed.h.0[..], &bed.r.0[..]);
    #[rustfmt::skip]
    let steps: &[&[&str]] = &[
        &["-n", d, "addr", "add", "2001:db8::1/64", "dev", "d0", "nodad"],
        &["-n", h, "addr", "add", "2001:db8::2/64", "dev", "h0", "nodad"],
        &["-n", d, "addr", "add", "2001:db8:1::1/64", "dev", "d1", "nodad"],
        &["-n", r, "addr", "add", "fe80::fe/64", "dev", "r0", "nodad"],
        &["-n", d, "route", "add", "2001:db8:2::/64", "via", "fe80::fe", "dev", "d1"],
    ];
    for step in steps {
        ip(step);
    }
    let (d0, d1) = (bed.ifindex("d0"), bed.ifindex("d1"));
    let v6 = |s: &str| -> Ipv6Addr { s.parse().unwrap() };
    bed.d.enter(|| {
        let mut nl = Netlink::new().unwrap();
        let host = v6("2001:db8::2");
        let first = nl.resolve(host).unwrap();
        let src = Some(v6("2001:db8::1"));
        assert!(
            matches!(first, Resolution::Pending { ifindex, next_hop, src: s }
                if ifindex == d0 && next_hop == host && s == src)
                || matches!(first, Resolution::Resolved { .. }),
            "{first:?}"
        );
        assert_eq!(
            poll(&mut nl, host, resolved),
            Resolution::Resolved {
                ifindex: d0,
                next_hop: host,
                mac: H0_MAC,
                src
            }
        );
        // Behind the link-local gateway: its MAC, from the NDP table.
        let far = v6("2001:db8:2::2");
        assert_eq!(
            poll(&mut nl, far, resolved),
            Resolution::Resolved {
                ifindex: d1,
                next_hop: v6("fe80::fe"),
                mac: R0_MAC,
                src: Some(v6("2001:db8:1::1"))
            }
        );
        assert_eq!(
            nl.resolve(v6("2001:db8:9::9")).unwrap(),
            Resolution::Unreachable
        );
        // The IPv4 entries are untouched by the IPv6 ones.
        assert!(matches!(
            nl.resolve(HOST).unwrap(),
            Resolution::Pending { .. } | Resolution::Resolved { .. }
        ));
    });
}
