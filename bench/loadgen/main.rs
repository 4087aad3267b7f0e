//! xdpvs-loadgen: the project's pktgen. `gen` transmits stamped frames
//! through an AF_XDP socket at a set rate (or as fast as it can), `sink`
//! receives them through AF_XDP on the real-server side and counts rate,
//! loss, reordering and latency, and `report` turns the runs that
//! `scripts/bench.sh` collected into a table, JSON and a chart.
//!
//! Generator and sink run on the same machine and read the same
//! `CLOCK_MONOTONIC`, so the send time in each packet minus the receive
//! time is the one-way latency through the forwarder, with no clock sync.
//! Each prints one JSON object on stdout; the harness stores them.

mod packet;
mod report;
mod stats;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aya::maps::XskMap;
use aya::programs::{Xdp, XdpFlags};
use clap::{Parser, Subcommand};
use serde_json::json;

use packet::{Layout, Traffic};
use stats::{Histogram, SeqTracker};
use xdpvs::config::ZeroCopy;
use xdpvs::frame::Verdict;
use xdpvs::xsk::{MAX_BATCH, Xsk, XskConfig};

#[derive(Parser)]
#[command(
    name = "xdpvs-loadgen",
    about = "AF_XDP load generator, sink and report for xdpvs benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Transmit stamped frames out of an interface.
    Gen(GenArgs),
    /// Receive and account frames on an interface.
    Sink(SinkArgs),
    /// Summarise runs (JSON lines) into a table, report.json and report.png.
    Report(report::ReportArgs),
}

#[derive(clap::Args)]
struct GenArgs {
    /// Interface to transmit on.
    #[arg(long)]
    iface: String,
    /// TX queue of the interface.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Destination MAC (the next hop: the forwarder's port).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: [u8; 6],
    /// Destination address (the VIP).
    #[arg(long)]
    dst: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    dst_port: u16,
    #[arg(long, value_enum, default_value_t = Traffic::Udp)]
    traffic: Traffic,
    /// Frame size in bytes without the FCS (at least headers + 20).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Distinct client flows (address, port).
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// Packets per second; 0 = as fast as the socket takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many packets (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Frames per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[derive(clap::Args)]
struct SinkArgs {
    /// Interface to receive on (all its RX queues).
    #[arg(long)]
    iface: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop when nothing arrived for this long after the first packet.
    #[arg(long, default_value_t = 1000)]
    idle_stop_ms: u64,
    /// Stop after this many stamped packets (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Highest sequence number tracked for loss and duplicates.
    #[arg(long, default_value_t = 1 << 27)]
    track: u64,
    /// Write "ready" to this file once the sockets are open (the harness
    /// waits for it before starting the generator).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?}: expected six hex bytes a:b:c:d:e:f"));
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: {p:?} is not a hex byte"))?;
    }
    Ok(m)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the generator stamps with and
/// the sink reads, shared by every process on the machine.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn iface_mac(ifname: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{ifname}/address");
    let s =
        std::fs::read_to_string(&path).map_err(|e| format!("interface {ifname}: {path}: {e}"))?;
    parse_mac(s.trim())
}

fn rx_queues(ifname: &str) -> Result<u32, String> {
    let dir = format!("/sys/class/net/{ifname}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| format!("interface {ifname}: {dir}: {e}"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n.max(1) as u32)
}

fn generate(a: &GenArgs) -> Result<serde_json::Value, String> {
    let min = Layout::min_size(a.traffic);
    if a.size < min || a.size > 1500 {
        return Err(format!(
            "--size {}: must be {min}..=1500 for {:?} (headers + 20-byte stamp)",
            a.size, a.traffic
        ));
    }
    let batch = a.batch.clamp(1, MAX_BATCH);
    let layout = Layout {
        src_mac: iface_mac(&a.iface)?,
        dst_mac: a.dst_mac,
        dst: a.dst,
        dst_port: a.dst_port,
        traffic: a.traffic,
        size: a.size,
        flows: a.flows.max(1),
    };
    let mut cfg = XskConfig::new(&a.iface, a.queue);
    // Nothing is received here: keep the fill ring small so the UMEM's
    // chunks serve transmission.
    cfg.fill_size = 64;
    cfg.rx_size = 64;
    cfg.zero_copy = ZeroCopy::Auto;
    let mut xsk = Xsk::open(&cfg, 0).map_err(|e| e.to_string())?;
    let template = layout.template();
    let refs: Vec<&[u8]> = vec![&template[..]; batch];

    let start = now_ns();
    let end = start + (a.duration * 1e9) as u64;
    let limit = if a.count == 0 { u64::MAX } else { a.count };
    let mut seq = 0u64;
    loop {
        let now = now_ns();
        if now >= end || seq >= limit {
            break;
        }
        let mut n = (batch as u64).min(limit - seq);
        if a.rate > 0 {
            let due = ((now - start) as u128 * a.rate as u128 / 1_000_000_000) as u64;
            n = n.min(due.saturating_sub(seq));
        }
        if n > 0 {
            let base = seq;
            let taken = xsk.inject_batch(&refs[..n as usize], |frames, verdicts| {
                let ts = now_ns();
                for (i, (f, v)) in frames.iter_mut().zip(verdicts.iter_mut()).enumerate() {
                    layout.stamp(f.data_mut(), base + i as u64, ts);
                    *v = Verdict::Tx {
                        port: 0,
                        len: f.len(),
                    };
                }
            });
            seq += taken as u64;
        }
        xsk.service();
    }
    let secs = (now_ns() - start) as f64 / 1e9;
    // Let the kernel send what is still on the ring before the socket goes.
    let drain_end = now_ns() + 200_000_000;
    while now_ns() < drain_end {
        xsk.service();
        std::thread::sleep(Duration::from_micros(200));
    }
    let st = xsk.stats();
    // The "no free frame" refusals are the socket pushing back: the
    // generator retried them, they are not lost packets.
    Ok(json!({
        "sent": st.tx,
        "secs": secs,
        "mpps": st.tx as f64 / secs / 1e6,
        "traffic": format!("{:?}", a.traffic).to_lowercase(),
        "size": a.size,
        "flows": layout.flows,
        "rate": a.rate,
        "zero_copy": xsk.zero_copy(),
        "tx_ring_full": st.tx_ring_full,
        "kicks": st.rx_kicks + st.tx_kicks,
    }))
}

fn sink(a: &SinkArgs) -> Result<serde_json::Value, String> {
    static PROGRAM: &[u8] =
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpvs_sink.bpf.o"));
    let err = |op: &'static str| {
        let ifname = a.iface.clone();
        move |e: &dyn std::fmt::Display| format!("sink on {ifname}: {op}: {e}")
    };
    let mut ebpf = aya::Ebpf::load(PROGRAM).map_err(|e| err("load object")(&e))?;
    let prog: &mut Xdp = ebpf
        .program_mut("xdpvs_sink")
        .expect("the object defines xdpvs_sink")
        .try_into()
        .map_err(|e| err("program type")(&e))?;
    prog.load().map_err(|e| err("load program")(&e))?;
    let native = match prog.attach(&a.iface, XdpFlags::DRV_MODE) {
        Ok(_) => true,
        Err(_) => {
            prog.attach(&a.iface, XdpFlags::SKB_MODE)
                .map_err(|e| err("attach (native and generic)")(&e))?;
            false
        }
    };
    let queues = rx_queues(&a.iface)?;
    let mut socks = Vec::new();
    for q in 0..queues {
        let mut cfg = XskConfig::new(&a.iface, q);
        cfg.tx_size = 64;
        cfg.comp_size = 64;
        socks.push(Xsk::open(&cfg, 0).map_err(|e| e.to_string())?);
    }
    {
        let mut xsks = XskMap::try_from(ebpf.map_mut("xsks").expect("the object defines xsks"))
            .map_err(|e| err("xsks map")(&e))?;
        for (q, s) in socks.iter().enumerate() {
            xsks.set(q as u32, s.as_raw_fd(), 0)
                .map_err(|e| err("insert socket")(&e))?;
        }
    }
    if let Some(p) = &a.ready_file {
        std::fs::write(p, "ready\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }

    let mut seqs = SeqTracker::new(a.track);
    let mut lat = Histogram::default();
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let (mut first, mut last) = (0u64, 0u64);
    let start = now_ns();
    let end = start + (a.duration * 1e9) as u64;
    let idle = a.idle_stop_ms * 1_000_000;
    let limit = if a.count == 0 { u64::MAX } else { a.count };
    let mut idle_rounds = 0u32;
    loop {
        let mut got = 0;
        for s in socks.iter_mut() {
            got += s.rx_batch(MAX_BATCH, |fs, _| {
                let now = now_ns();
                for f in fs.iter() {
                    frames += 1;
                    bytes += f.len() as u64;
                    if let Some((seq, ts)) = packet::parse_stamp(f.data()) {
                        seqs.record(seq);
                        lat.record(ts, now);
                        if first == 0 {
                            first = now;
                        }
                        last = now;
                    }
                }
            });
            s.service();
        }
        if got > 0 {
            idle_rounds = 0;
            continue;
        }
        let now = now_ns();
        if now >= end || seqs.unique + seqs.duplicates >= limit {
            break;
        }
        if last != 0 && now - last >= idle {
            break;
        }
        // Spin a little, then sleep briefly: the sink shares its core with
        // the generator on small machines.
        idle_rounds += 1;
        if idle_rounds > 64 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let stamped = seqs.unique + seqs.duplicates;
    let window = last.saturating_sub(first) as f64 / 1e9;
    let us = |q| lat.quantile(q).map(|ns| ns as f64 / 1000.0);
    Ok(json!({
        "frames": frames,
        "bytes": bytes,
        "stamped": stamped,
        "unique": seqs.unique,
        "duplicates": seqs.duplicates,
        "reordered": seqs.reordered,
        "gaps": seqs.gaps(),
        "max_seq": seqs.max_seq,
        "secs": window,
        "mpps": if window > 0.0 { (stamped.saturating_sub(1)) as f64 / window / 1e6 } else { 0.0 },
        "p50_us": us(0.5),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "latency_negative": lat.negative,
        "native_xdp": native,
        "queues": queues,
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Gen(a) => generate(a).map(|v| println!("{v}")),
        Cmd::Sink(a) => sink(a).map(|v| println!("{v}")),
        Cmd::Report(a) => report::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdpvs-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
