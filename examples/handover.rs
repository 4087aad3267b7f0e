//! A fixed workload for instruction counting through the worker loop with
//! two workers (hand-over's steering decision included): established NAT
//! packets of 512 flows that worker 0 owns, received by worker 0 in
//! batches of 32, `ROUNDS` rounds.
//!
//!     cargo build --release --example handover
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/handover steady 20000
//!
//! Instructions per packet: the difference between runs with 40000 and
//! 20000 rounds, divided by 20000 × 32 (setup cancels out). Workloads:
//! `steady` (no steering change), `history` (a persistent service was
//! added on another VIP after the flows were opened, so the snapshot keeps
//! the old rule: the packets of flows whose owner moved go on to it).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::{Frame, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};
use xdpvs::wire::checksum;
use xdpvs::worker::{FrameIo, Shared, Worker, WorkerOptions, owner};

const HEADROOM: usize = 256;
const BATCH: usize = 32;

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

/// A socket that receives `frames` round after round, `BATCH` at a time.
struct Replay {
    frames: Vec<[u8; 64]>,
    next: usize,
    bufs: Vec<Vec<u8>>,
}

impl Replay {
    fn run<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let n = data.len();
        let mut frames: Vec<Frame<'_>> = self
            .bufs
            .iter_mut()
            .zip(data)
            .map(|(b, d)| {
                b[HEADROOM..HEADROOM + d.len()].copy_from_slice(d);
                Frame::new(b, HEADROOM, d.len(), 0)
            })
            .collect();
        let mut verdicts = [Verdict::NotOurs; BATCH];
        f(&mut frames, &mut verdicts[..n]);
        std::hint::black_box(&verdicts);
        n
    }
}

impl FrameIo for Replay {
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        if self.frames.is_empty() {
            return 0;
        }
        let n = max.min(BATCH);
        let batch: Vec<[u8; 64]> = (0..n)
            .map(|i| self.frames[(self.next + i) % self.frames.len()])
            .collect();
        self.next = (self.next + n) % self.frames.len();
        let data: Vec<&[u8]> = batch.iter().map(|f| &f[..]).collect();
        self.run(&data, f)
    }

    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        self.run(&data[..data.len().min(BATCH)], f)
    }

    fn service(&mut self) {}

    fn wait_rx(&mut self, _wake: BorrowedFd<'_>, _timeout_ms: i32) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let history = args.next().as_deref() == Some("history");
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
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
            forward: Forward::Nat,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            health: Default::default(),
        };
        t.add_dest(Protocol::Tcp, svc, &real).expect("real server");
        t.set_next_hop(rip.into(), 0, [2, 0, 0, 0, 2, 10 + i]);
    }
    let snap = Arc::new(t.snapshot());
    let shared = Arc::new(Shared::new(Arc::clone(&snap), &[vec![0], vec![0]]));
    let opts = WorkerOptions {
        batch: BATCH,
        idle: xdpvs::config::Idle::Busy,
    };
    let flows: Vec<(Ipv4Addr, u16)> = (0..4096u32)
        .map(|n| (Ipv4Addr::new(198, 18, 0, (n / 256) as u8), 1000 + n as u16))
        .filter(|(a, p)| owner(a.octets(), *p, 2) == 0)
        .take(512)
        .collect();
    let mut ws: Vec<Worker<Replay>> = (0..2)
        .map(|i| {
            let io = Replay {
                frames: Vec::new(),
                next: 0,
                bufs: vec![vec![0u8; 2048]; BATCH],
            };
            let p = Pipeline::new(4096, Arc::clone(&snap), 0);
            Worker::new(i, vec![(0, io)], p, Arc::clone(&shared), opts)
        })
        .collect();
    // Open the flows (SYNs), then replay their established packets.
    ws[0].io(0).unwrap().frames = flows.iter().map(|&(a, p)| frame(a, p, vip, 0x02)).collect();
    for _ in 0..flows.len() / BATCH {
        ws[0].round(1);
    }
    ws[0].io(0).unwrap().frames = flows.iter().map(|&(a, p)| frame(a, p, vip, 0x10)).collect();
    if history {
        let p = SocketAddr::new(Ipv4Addr::new(198, 18, 1, 5).into(), 80);
        let mut cfg = ServiceConfig::new(Protocol::Tcp, p, "rr");
        cfg.persistence_timeout = 300;
        t.add_service(&cfg).expect("persistent service");
        let next = t.next_snapshot_at(&shared.snapshot.load(), 1);
        shared.snapshot.store(Arc::new(next));
    }
    let t0 = Instant::now();
    for _ in 0..rounds {
        ws[0].round(1);
        ws[1].round(1);
    }
    eprintln!(
        "{:.1} ns/packet",
        t0.elapsed().as_nanos() as f64 / (rounds * BATCH) as f64
    );
}
