//! Maglev with `mh_seed`: two processes (this test binary re-run as a
//! child) given the same real servers in different add orders send every
//! client to the same real server. This is what lets ECMP directors agree
//! without talking to each other.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;

use xdpvs::dest::{Dest, DestCounters, DestRef, Forward};
use xdpvs::sched::{Dests, Flow, Params, Sched};

const CHILD: &str = "XDPVS_MH_ORDER_CHILD";
const REALS: [u8; 5] = [11, 12, 13, 14, 15];

/// The child's work: the chosen real server for 512 clients, one a line.
fn choices(order: &[u8], seed: Option<u64>) -> Vec<String> {
    let all: Vec<Option<Dest>> = order
        .iter()
        .map(|&host| {
            Some(Dest {
                r: DestRef::new(u32::from(host), 0),
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, host)),
                port: 80,
                fwd: Forward::Dr,
                weight: u32::from(host % 3) + 1,
                last_weight: u32::from(host % 3) + 1,
                upper_threshold: 0,
                lower_threshold: 0,
                mac: Some([2, 0, 0, 0, 2, host]),
                tx_port: 0,
                src: None,
                src6: None,
                in_service: true,
                counters: Arc::new(DestCounters::default()),
            })
        })
        .collect();
    let list: Vec<u32> = (0..all.len() as u32).collect();
    let dests = Dests::new(&list, &all);
    let params = Params {
        mh_table_size: 4093,
        mh_seed: seed,
        ..Params::default()
    };
    let mh = Sched::build("mh", &dests, &params).expect("mh is registered");
    (0..512u32)
        .map(|c| {
            let flow = Flow {
                client: IpAddr::V4(Ipv4Addr::new(198, 19, (c >> 8) as u8, c as u8)),
                cport: 1024 + c as u16,
                vip: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
                vport: 80,
                now: 0,
            };
            let real = mh.schedule(&dests, &flow).map(|p| dests.at(p).addr);
            format!("choice {c} {real:?}")
        })
        .collect()
}

/// Runs as the child when the parent sets [`CHILD`] ("order;seed").
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (order, seed) = spec.split_once(';').expect("order;seed");
    let order: Vec<u8> = order.split(',').map(|h| h.parse().unwrap()).collect();
    let seed = seed.parse().ok();
    // The harness's "test child ... " has no newline yet.
    println!();
    for line in choices(&order, seed) {
        println!("{line}");
    }
}

fn run_child(order: &[u8], seed: &str) -> Vec<String> {
    let order: Vec<String> = order.iter().map(u8::to_string).collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{};{seed}", order.join(",")))
        .output()
        .expect("the child runs");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("choice "))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 512, "{:?}", out.status);
    lines
}

#[test]
fn seeded_directors_agree_whatever_the_add_order() {
    let mut reversed = REALS;
    reversed.reverse();
    let shuffled = [13, 11, 15, 12, 14];
    let a = run_child(&REALS, "42");
    assert_eq!(a, run_child(&reversed, "42"));
    assert_eq!(a, run_child(&shuffled, "42"));
    // Without a seed the list order shapes the table, as in IPVS.
    assert_ne!(run_child(&REALS, "none"), run_child(&reversed, "none"));
}
