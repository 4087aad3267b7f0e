//! Load through the director on the namespace test bed: ApacheBench (`ab`,
//! from apache2-utils) from the client, new connection per request, in each
//! mode, beside the same load sent straight to one real server (DR, TUN).
//! Every request must succeed and the director must lose nothing; the
//! rates are printed for the record.
//!
//! Not part of the default run (about a minute of full load on every core);
//! run it by hand, in release mode:
//!
//!     cargo test --release --test load -- --ignored --nocapture
//!
//! On a small machine the client, the three apache2 and the director share
//! the cores, so the figures show the whole bed's limit, not the
//! director's; `scripts/bench.sh` measures the director itself.

#[path = "testbed/mod.rs"]
mod testbed;

mod director;

use director::{Daemon, config, counter};
use testbed::{Host, Mode, Options, Testbed};

/// `ab` from the client; returns requests per second. Panics unless every
/// request succeeded with 200.
fn ab(bed: &Testbed, url: &str, n: usize, c: usize, keepalive: bool) -> f64 {
    let (n, c) = (n.to_string(), c.to_string());
    let mut args = vec!["ab", "-q", "-n", &n, "-c", &c];
    if keepalive {
        args.push("-k");
    }
    args.push(url);
    let out = bed.exec(Host::Client, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ab {url}: {text}");
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name:?} in ab's output:\n{text}"))
            .to_owned()
    };
    assert_eq!(field("Complete requests:"), n, "{text}");
    assert_eq!(field("Failed requests:"), "0", "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    field("Requests per second:").parse().unwrap()
}

#[test]
#[ignore = "a minute of full load; run by hand (see the module docs)"]
fn load_in_every_mode() {
    const N: usize = 20_000;
    for (mode, queues) in [
        (Mode::Dr, 1),
        (Mode::Tun, 1),
        (Mode::Nat, 1),
        (Mode::Nat, 2),
    ] {
        let bed = Testbed::new(Options {
            mode,
            reals: 3,
            director_queues: queues,
        });
        director::warm_neighbours(&bed, 3);
        let label = format!("{mode:?}, {queues} worker(s)");
        if mode != Mode::Nat {
            let direct = format!("http://{}/", bed.real_addr(0));
            let r = ab(&bed, &direct, N, 32, false);
            println!("{label}: straight to rs1, new connection each: {r:.0} requests/s");
        }
        let cfg = bed.tempdir().join("xdpvs.toml");
        std::fs::write(&cfg, config(&bed, &mode, "rr", [1, 1, 1])).unwrap();
        let d = Daemon::start(&bed, &cfg);
        let vip = format!("http://{}/", bed.vip());
        for _ in 0..2 {
            let r = ab(&bed, &vip, N, 32, false);
            println!("{label}: through the VIP, new connection each: {r:.0} requests/s");
        }
        let big = format!("http://{}/big.bin", bed.vip());
        let r = ab(&bed, &big, 200, 4, true);
        println!(
            "{label}: 1 MiB downloads through the VIP, 4 at a time: {:.0} MB/s",
            r * 1.048_576
        );
        let log = d.stop();
        for l in log.lines().filter(|l| l.contains(": rx ")) {
            println!("{label}: {l}");
        }
        assert_eq!(
            counter(&log, "handoff_dropped"),
            0,
            "hand-over lost frames:\n{log}"
        );
        assert_eq!(counter(&log, "rx"), counter(&log, "tx"), "{log}");
    }
}
