//! The packet pipeline alone, without any network
//! (`cargo run --release --example demo`): real client traffic, generated
//! as frames, through the pipeline of the director configured by
//! `config/demo.toml` — one service per forwarding mode — with what
//! happened printed at each step. Real servers' MACs are synthetic here
//! instead of resolved from the kernel's neighbour table. `scripts/demo.sh`
//! shows the whole director instead: the daemon on a namespace cluster with
//! real apache2 servers and curl.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use xdpvs::config::{Config, Forward};
use xdpvs::frame::{Frame, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable, Snapshot};
use xdpvs::wire::checksum;
use xdpvs::wire::ethernet::EthernetFrame;
use xdpvs::wire::ipv4::{Ipv4Packet, PROTO_IPIP};
use xdpvs::wire::tcp::{ACK, FIN, PSH, SYN, TcpPacket};

const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 2];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 1];
const HEADROOM: usize = 256;

fn mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A TCP frame from the router's MAC to the director's.
fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (40 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    f.extend_from_slice(&t);
    f.extend_from_slice(payload);
    let mut seg = TcpPacket::new_unchecked(&mut f[34..]);
    seg.fill_checksum_v4(src.0, dst.0);
    f
}

/// Runs one frame; returns the verdict and the frame as transmitted.
fn run(p: &mut Pipeline, frame: &[u8], now: u32) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + 2048];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut f = Frame::new(&mut buf, HEADROOM, frame.len(), 0);
    let v = p.process(&mut f, now);
    (v, f.data().to_vec())
}

/// One line describing a frame: MACs, addresses, ports (and the inner
/// packet of an IPIP frame).
fn describe(frame: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return "not Ethernet".into();
    };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return "not IPv4".into();
    };
    let l2 = format!("{} → {}", mac(&eth.src_addr()), mac(&eth.dst_addr()));
    if ip.protocol() == PROTO_IPIP {
        let inner = Ipv4Packet::new_checked(ip.payload()).map(|i| describe_ip(&i));
        return format!(
            "{l2}  IPIP {} → {} [ {} ]",
            ip.src_addr(),
            ip.dst_addr(),
            inner.unwrap_or_else(|e| format!("{e}"))
        );
    }
    format!("{l2}  {}", describe_ip(&ip))
}

fn describe_ip<T: AsRef<[u8]>>(ip: &Ipv4Packet<T>) -> String {
    match TcpPacket::new_checked(ip.payload()) {
        Ok(t) => format!(
            "{}:{} → {}:{} ttl {}",
            ip.src_addr(),
            t.src_port(),
            ip.dst_addr(),
            t.dst_port(),
            ip.ttl()
        ),
        Err(_) => format!("{} → {}", ip.src_addr(), ip.dst_addr()),
    }
}

/// The services with their real servers' connection counts, in the layout
/// of `ipvsadm -L -n` (the real tool, `xdpvsadm`, comes with the control
/// socket).
fn print_table(snap: &Snapshot) {
    println!("Prot LocalAddress:Port Scheduler Flags");
    println!("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
    for svc in snap.services() {
        println!(
            "{:<4} {}:{} {}",
            svc.proto.to_string(),
            svc.vip,
            svc.port,
            svc.sched.name()
        );
        for d in snap.dests_of(svc).iter() {
            let (a, i) = d.counters.conns();
            let fwd = match d.fwd {
                Forward::Dr => "Route",
                Forward::Tun => "Tunnel",
                Forward::Nat => "Masq",
            };
            println!(
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                format!("{}:{}", d.addr, d.port),
                fwd,
                d.weight,
                a,
                i
            );
        }
    }
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let cfg = Config::from_file(&path).unwrap_or_else(|e| {
        eprintln!("demo: {e}");
        std::process::exit(1)
    });
    let mut table = ServiceTable::from_config(
        &cfg,
        vec![Port {
            mac: DIRECTOR_MAC,
            mtu: cfg.dataplane.mtu,
            complete_checksums: false,
        }],
        1,
    )
    .unwrap_or_else(|e| {
        eprintln!("demo: {}: {e}", path.display());
        std::process::exit(1)
    });
    // Synthetic next hops: 02:00:c6:12:02:NN for real server 198.18.2.NN,
    // reached from the director's address 198.18.2.2 (the route source the
    // daemon learns from the kernel: the outer source of TUN packets).
    for s in &cfg.services {
        for r in &s.reals {
            if let IpAddr::V4(a) = r.addr.ip() {
                let o = a.octets();
                table.set_next_hop(r.addr.ip(), 0, [2, 0, o[0], o[1], o[2], o[3]]);
                table.set_source(r.addr.ip(), Some(std::net::Ipv4Addr::new(198, 18, 2, 2)));
            }
        }
    }
    let snap = Arc::new(table.snapshot());
    let mut p = Pipeline::new(cfg.connections.max_entries, Arc::clone(&snap), 0);
    println!(
        "xdpvs demo: the packet pipeline, parse → lookup/schedule → rewrite, over generated frames"
    );
    println!(
        "configuration {}: {} services, {} real servers (no network: see README, Status)\n",
        path.display(),
        cfg.services.len(),
        cfg.services.iter().map(|s| s.reals.len()).sum::<usize>()
    );

    println!("== 1. One client, one connection per forwarding mode");
    let client = (Ipv4Addr::new(198, 18, 0, 10), 40000);
    for svc in cfg.services.iter().filter(|s| s.persistence_timeout == 0) {
        let IpAddr::V4(vip) = svc.vip.ip() else {
            continue;
        };
        let syn = tcp(client, (vip, svc.vip.port()), SYN, b"");
        let (v, out) = run(&mut p, &syn, 0);
        println!(
            "{} service {}:",
            svc.reals[0].forward.config_name().to_uppercase(),
            svc.vip
        );
        println!("  in   {}", describe(&syn));
        println!("  out  {}   {v:?}", describe(&out));
        if svc.reals[0].forward == Forward::Nat {
            // The real server's SYN-ACK comes back through the director.
            let ip = Ipv4Packet::new_unchecked(&out[14..]);
            let t = TcpPacket::new_unchecked(&out[34..]);
            let reply = tcp((ip.dst_addr(), t.dst_port()), client, SYN | ACK, b"");
            let (v, back) = run(&mut p, &reply, 0);
            println!("  back {}", describe(&reply));
            println!("  out  {}   {v:?}", describe(&back));
        }
    }

    println!("\n== 2. 3000 clients per service: handshake, request, close");
    let mut sent = 0u64;
    for svc in cfg.services.iter().filter(|s| s.persistence_timeout == 0) {
        let IpAddr::V4(vip) = svc.vip.ip() else {
            continue;
        };
        let dst = (vip, svc.vip.port());
        for n in 0..3000u32 {
            let c = (
                Ipv4Addr::from_bits(0xc612_0000 | (100 + n / 1000)),
                1024 + (n % 1000) as u16,
            );
            for (flags, body) in [
                (SYN, &b""[..]),
                (ACK, b""),
                (ACK | PSH, b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n"),
            ] {
                run(&mut p, &tcp(c, dst, flags, body), 1);
                sent += 1;
            }
            // The last 1000 clients have not closed yet.
            if n < 2000 {
                run(&mut p, &tcp(c, dst, FIN | ACK, b""), 2);
                sent += 1;
            }
        }
    }
    println!(
        "{sent} frames; per service 2000 connections closed (FIN_WAIT), 1000 still open (ESTABLISHED),\nplus step 1's connection (SYN_RECV)\n"
    );
    print_table(&snap);
    println!(
        "\n(TCP states as IPVS: ActiveConn = ESTABLISHED, InActConn = the rest; DR and TUN see only the client's half.)"
    );

    println!("\n== 3. Persistence: FTP on every port of 198.18.1.4, per client /24");
    let ftp = Ipv4Addr::new(198, 18, 1, 4);
    let a = Ipv4Addr::new(198, 18, 0, 10);
    for (src, port, what) in [
        ((a, 41000), 21, "control connection"),
        ((a, 41001), 30001, "its passive data connection"),
        (
            (Ipv4Addr::new(198, 18, 0, 77), 41002),
            21,
            "another client of the /24",
        ),
        (
            (Ipv4Addr::new(198, 18, 7, 10), 41003),
            21,
            "a client of another /24",
        ),
        ((a, 41004), 30002, "first client, next data connection"),
    ] {
        let (v, out) = run(&mut p, &tcp(src, (ftp, port), SYN, b""), 3);
        println!("  {what:<36} {}", describe(&out));
        debug_assert!(matches!(v, Verdict::Tx { .. }));
    }

    println!("\n== 4. Counters");
    let c = p.stats();
    for e in c.entries().filter(|e| e.value > 0) {
        println!("{:<16} {:>6}  {}", e.name, e.value, e.help);
    }
    println!("connections {}", p.conns().len());

    println!("\n== 5. Two minutes later: closed connections expire (FIN_WAIT 120 s)");
    let reaped = p.expire(2 + 121, usize::MAX);
    println!("expired {reaped}, {} left", p.conns().len());
    print_table(&snap);

    println!("\n== 6. The pipeline alone, one core, established DR flows");
    let vip = Ipv4Addr::new(198, 18, 1, 1);
    let frames: Vec<Vec<u8>> = (0..1000u32)
        .map(|n| {
            let c = (Ipv4Addr::new(198, 18, 9, (n / 250) as u8), 2000 + n as u16);
            run(&mut p, &tcp(c, (vip, 80), SYN, b""), 200);
            tcp(c, (vip, 80), ACK, b"")
        })
        .collect();
    let mut bufs = vec![vec![0u8; HEADROOM + 128]; 32];
    let mut verdicts = [Verdict::NotOurs; 32];
    let rounds = 20_000;
    let t0 = Instant::now();
    for r in 0..rounds {
        let base = (r * 32) % (frames.len() - 32);
        let mut batch: Vec<Frame<'_>> = bufs
            .iter_mut()
            .zip(&frames[base..base + 32])
            .map(|(b, f)| {
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                Frame::new(b, HEADROOM, f.len(), 0)
            })
            .collect();
        p.process_batch(&mut batch, &mut verdicts, 200);
    }
    let secs = t0.elapsed().as_secs_f64();
    let pkts = (rounds * 32) as f64;
    println!(
        "{} packets in {:.1} ms: {:.1} ns per packet, {:.1} Mpps, copying each frame in included\n(a quick look; the measured figures come from: cargo bench --bench pipeline)",
        pkts,
        secs * 1e3,
        secs * 1e9 / pkts,
        pkts / secs / 1e6
    );
}
