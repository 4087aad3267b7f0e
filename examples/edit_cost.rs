//! What one `xdpvsadm -a` costs the control thread on a large table, stage
//! by stage, without a daemon, as the daemon's control loop does them: the
//! edit itself ([`Control::handle`], with the steering maps' limits set),
//! the steering keys (`Control::steer_rules`), the new real-server
//! addresses the next-hop resolver is given (`Control::take_new_addrs`,
//! each one's tunnel check), the quorum pass (`Control::update_quorum`),
//! and the snapshot the workers get.
//!
//!     cargo run --release --example edit_cost [SERVICES] [EDITS]
//!
//! SERVICES services of 10 rules each (default 1000: 11 000 rules with
//! the edited service), then EDITS (default 1000) `-a` edits; prints the
//! median and the 90th percentile of each stage in microseconds.

use std::time::Instant;

use xdpvs::adm::{self, Action};
use xdpvs::conn::Timeouts;
use xdpvs::ctrl::control::{Control, NoConns};
use xdpvs::ctrl::proto::Response;
use xdpvs::service::{ServiceTable, SteerLimits};

fn main() {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().map_or(1000, |a| a.parse().expect("SERVICES"));
    let edits: usize = args.next().map_or(1000, |a| a.parse().expect("EDITS"));
    let table = ServiceTable::new(
        Vec::new(),
        Some("198.18.0.2".parse().unwrap()),
        Timeouts::default(),
    );
    let mut control = Control::new(table, 4096, Instant::now());
    // The sizes `bpf/xdpvs_steer.bpf.c` gives its maps.
    control.set_steer_limits(SteerLimits {
        vips: 16384,
        nat_reals: 16384,
        vip_addrs: 16384,
        nat_real_addrs: 16384,
        vips6: 16384,
        nat_reals6: 16384,
        vip_addrs6: 16384,
        nat_real_addrs6: 16384,
    });
    let mut rules = String::new();
    for s in 0..services {
        let vip = format!("198.18.{}.{}:80", 64 + s / 250, 1 + s % 250);
        rules.push_str(&format!("-A -t {vip} -s wrr\n"));
        for r in 0..9 {
            let n = s * 9 + r;
            rules.push_str(&format!(
                "-a -t {vip} -r 198.19.{}.{}:80 -g -w {}\n",
                n / 250,
                1 + n % 250,
                1 + r
            ));
        }
    }
    rules.push_str("-A -t 198.18.9.1:80 -s wlc\n");
    let batch = adm::parse_rules(&rules).expect("rules");
    let t = Instant::now();
    let r = control.handle(xdpvs::ctrl::proto::Request::Restore(batch), &mut NoConns);
    assert!(matches!(r, Response::Ok(_)), "{r:?}");
    println!(
        "restore of {} rules: {} ms",
        services * 10 + 1,
        t.elapsed().as_millis()
    );
    let mut snap = control.table().snapshot();
    // What the restore added is resolved as a whole, as the daemon does.
    assert!(control.take_new_addrs().is_none());
    let mut stages: [Vec<u128>; 5] = Default::default();
    for n in 0..edits {
        let line = format!(
            "-a -t 198.18.9.1:80 -r 198.18.{}.{}:80 -g -w 1",
            100 + n / 250,
            1 + n % 250
        );
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let Action::Send { request, .. } = adm::parse(&args).expect("parse").action else {
            panic!("not a request")
        };
        let t0 = Instant::now();
        let r = control.handle(request, &mut NoConns);
        assert!(matches!(r, Response::Ok(_)), "{r:?}");
        let t1 = Instant::now();
        std::hint::black_box(control.steer_rules());
        let t2 = Instant::now();
        let addrs = control.take_new_addrs().expect("an -a names its address");
        let tun = addrs
            .iter()
            .filter(|&&a| control.table().is_tun_addr(a))
            .count();
        std::hint::black_box((&addrs, tun));
        let t3 = Instant::now();
        std::hint::black_box(control.update_quorum());
        let t4 = Instant::now();
        let next = control.table().next_snapshot_at(&snap, 0);
        let t5 = Instant::now();
        snap = next;
        for (s, d) in stages
            .iter_mut()
            .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
        {
            s.push(d.as_micros());
        }
    }
    for (name, s) in ["edit", "steer_rules", "new_addrs", "quorum", "snapshot"]
        .iter()
        .zip(&mut stages)
    {
        s.sort_unstable();
        println!(
            "{name:>12}: median {} us, p90 {} us",
            s[s.len() / 2],
            s[s.len() * 9 / 10]
        );
    }
}
