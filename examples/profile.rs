//! A fixed workload for instruction counting: `ITERS` established packets
//! of 1000 flows through one mode's service, one `process` call each.
//!
//!     cargo build --release --example profile
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/profile dr 200000
//!
//! Instructions per packet: the difference between runs with 400000 and
//! 200000 packets, divided by 200000 (setup cancels out). Modes: dr, tun,
//! nat.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::Frame;
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};
use xdpvs::wire::checksum;

const HEADROOM: usize = 256;

fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, flags: u8) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[34..54];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    f
}

fn main() {
    let mut args = std::env::args().skip(1);
    let forward = match args.next().as_deref() {
        Some("tun") => Forward::Tun,
        Some("nat") => Forward::Nat,
        _ => Forward::Dr,
    };
    let iters: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let vip = Ipv4Addr::new(198, 18, 1, 1);
    let mut t = ServiceTable::new(
        vec![Port {
            mac: [2, 0, 0, 0, 2, 2],
            mtu: 1500,
            complete_checksums: false,
        }],
        Some(Ipv4Addr::new(198, 18, 2, 2)),
        Timeouts::default(),
    );
    let svc = SocketAddr::new(vip.into(), 80);
    t.add_service(&ServiceConfig::new(Protocol::Tcp, svc, "wlc"))
        .expect("service");
    for i in 1..=3u8 {
        let rip = Ipv4Addr::new(198, 18, 2, 10 + i);
        let real = RealConfig {
            addr: SocketAddr::new(rip.into(), 80),
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        t.add_dest(Protocol::Tcp, svc, &real).expect("real server");
        t.set_next_hop(rip.into(), 0, [2, 0, 0, 0, 2, 10 + i]);
    }
    let mut p = Pipeline::new(4096, Arc::new(t.snapshot()), 0);
    let mut buf = vec![0u8; 2048];
    let mut run = |p: &mut Pipeline, f: &[u8; 64], now| {
        buf[HEADROOM..HEADROOM + 64].copy_from_slice(f);
        let mut fr = Frame::new(&mut buf, HEADROOM, 64, 0);
        black_box(p.process(&mut fr, now));
    };
    let frames: Vec<[u8; 64]> = (0..1000u32)
        .map(|n| {
            let src = Ipv4Addr::new(198, 18, 0, (n / 256) as u8);
            let sport = 1000 + n as u16;
            run(&mut p, &frame(src, sport, vip, 0x02), 0);
            frame(src, sport, vip, 0x10)
        })
        .collect();
    let t0 = Instant::now();
    for k in 0..iters {
        run(&mut p, &frames[k % frames.len()], 1);
    }
    eprintln!(
        "{:.1} ns/packet",
        t0.elapsed().as_nanos() as f64 / iters as f64
    );
}
