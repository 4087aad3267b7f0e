//! ns per scheduling decision, for every scheduler in the registry.
//!
//! Each scheduler is built (`Sched::build`, as the control side does) for
//! 10 and 1000 real servers of equal weight but a few heavier and lighter
//! ones, whose counters hold some active and inactive connections, and is
//! then asked for a server for new connections from 1024 clients in turn
//! (so hashing schedulers do not hit one entry). Nothing is bound: every
//! decision sees the same counters. `build/<name>/1000` times the
//! control-side construction for 1000 servers; `wrr_long_period` times wrr
//! on weights whose period is too long to tabulate, where it walks the
//! list as IPVS does.
//!
//! Run: `cargo bench --bench sched`. Quick run:
//! `cargo bench --bench sched -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xdpvs::dest::{Dest, DestCounters, DestRef, Forward};
use xdpvs::sched::{Dests, Flow, Params, REGISTRY, Sched};

const SIZES: [usize; 2] = [10, 1000];

/// `n` real servers in list order; server `i` weighs `weight(i)` and holds
/// `1 + i % 5` active and `i * 7 % 11` inactive connections: none is idle,
/// so nq does not stop at the first server but compares them all.
fn servers(n: usize, weight: impl Fn(usize) -> u32) -> (Vec<u32>, Vec<Option<Dest>>) {
    let all = (0..n)
        .map(|i| {
            let counters = Arc::new(DestCounters::default());
            let (active, inactive) = (1 + i % 5, i * 7 % 11);
            (0..active + inactive).for_each(|_| counters.bind());
            (0..active).for_each(|_| counters.set_active(true));
            let addr = Ipv4Addr::from(0xc612_0000 + i as u32 + 11);
            Some(Dest {
                r: DestRef::new(i as u32, 0),
                addr: IpAddr::V4(addr),
                port: 80,
                fwd: Forward::Dr,
                weight: weight(i),
                last_weight: weight(i),
                upper_threshold: 0,
                lower_threshold: 0,
                mac: Some([2, 0, 0, 0, 2, i as u8]),
                tx_port: 0,
                src: None,
                src6: None,
                in_service: true,
                counters,
            })
        })
        .collect();
    ((0..n as u32).collect(), all)
}

/// 10 everywhere but one in a hundred at 20 and one at 5.
fn mostly_equal(i: usize) -> u32 {
    match i % 100 {
        3 => 20,
        7 => 5,
        _ => 10,
    }
}

fn flows() -> Vec<Flow> {
    (0..1024u32)
        .map(|i| Flow {
            client: IpAddr::V4(Ipv4Addr::from(
                0x0a00_0000 + i.wrapping_mul(2654435761) % (1 << 24),
            )),
            cport: 1024 + (i * 40503 % 60000) as u16,
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
            vport: 80,
            now: 0,
        })
        .collect()
}

/// Times one decision of `sched`, cycling through `flows`.
fn decide(b: &mut criterion::Bencher<'_>, sched: &Sched, dests: &Dests<'_>, flows: &[Flow]) {
    let mut i = 0;
    b.iter(|| {
        i = (i + 1) & (flows.len() - 1);
        black_box(sched.schedule(dests, &flows[i]))
    });
}

fn schedule(c: &mut Criterion) {
    let flows = flows();
    let params = Params::default();
    let mut g = c.benchmark_group("schedule");
    for n in SIZES {
        let (order, all) = servers(n, mostly_equal);
        let dests = Dests::new(&order, &all);
        for &(name, _) in REGISTRY {
            let sched = Sched::build(name, &dests, &params).unwrap();
            g.bench_function(BenchmarkId::new(name, n), |b| {
                decide(b, &sched, &dests, &flows)
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("build");
    let (order, all) = servers(1000, mostly_equal);
    let dests = Dests::new(&order, &all);
    for &(name, _) in REGISTRY {
        g.bench_function(BenchmarkId::new(name, 1000), |b| {
            b.iter_with_large_drop(|| Sched::build(name, &dests, &params).unwrap())
        });
    }
    g.finish();

    // 990 servers at 1001 and 10 at 65535 (gcd 1): a period of 1.6 M
    // decisions, past wrr's table, so a decision walks ~40 servers.
    let mut g = c.benchmark_group("wrr_long_period");
    let (order, all) = servers(1000, |i| if i % 100 == 3 { 65535 } else { 1001 });
    let dests = Dests::new(&order, &all);
    let sched = Sched::build("wrr", &dests, &params).unwrap();
    g.bench_function(BenchmarkId::new("wrr", 1000), |b| {
        decide(b, &sched, &dests, &flows)
    });
    g.finish();
}

criterion_group!(benches, schedule);
criterion_main!(benches);
