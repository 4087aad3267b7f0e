//! ns per packet through `Pipeline::process`, with no I/O.
//!
//! Established flows in DR, TUN and NAT (client side) and NAT replies, at
//! 1 k and 1 M active flows, visited in a random order so that at 1 M the
//! connection table is as cache-cold as real traffic makes it; and the cost
//! of a new connection (a SYN that is scheduled and inserted). Each
//! iteration first copies the flow's frame (64 bytes on the wire) into the
//! receive buffer, as a NIC would into UMEM; `copy_only` measures that copy
//! alone so it can be subtracted. `partial/*` states the cost of finishing
//! partial checksums (`dataplane.complete_checksums`) at 64 and 1500 bytes.
//! `established6/*` are the IPv6 figures beside IPv4's: established flows
//! in DR, TUN (ip6ip6) and NAT66 and NAT66 replies at 1 k flows, one
//! `process` call per packet (84 bytes on the wire: IPv6 40 + TCP 20 + 10).
//!
//! Run: `cargo bench --bench pipeline`. Quick run:
//! `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`.
//! Only the partial checksums: `cargo bench --bench pipeline -- --noplot
//! --warm-up-time 1 --measurement-time 3 'partial'` (the other groups still
//! build their tables, then skip).

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use criterion::{Criterion, criterion_group, criterion_main};
use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::{Frame, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};
use xdpvs::wire::checksum;

const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const HEADROOM: usize = 256;
const FRAME: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Dr,
    Tun,
    Nat,
}

impl Mode {
    fn vip(self) -> Ipv4Addr {
        match self {
            Mode::Dr => Ipv4Addr::new(198, 18, 1, 1),
            Mode::Tun => Ipv4Addr::new(198, 18, 1, 2),
            Mode::Nat => Ipv4Addr::new(198, 18, 1, 3),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::Nat => "nat",
        }
    }
}

/// Three real servers per mode, wlc (the default scheduler).
fn table() -> ServiceTable {
    table_with(false)
}

/// [`table`], its port finishing partial checksums or not.
fn table_with(complete_checksums: bool) -> ServiceTable {
    let mut t = ServiceTable::new(
        vec![Port {
            mac: DIRECTOR_MAC,
            mtu: 1500,
            complete_checksums,
        }],
        Some(Ipv4Addr::new(198, 18, 2, 2)),
        Timeouts::default(),
    );
    for (mode, fwd, base) in [
        (Mode::Dr, Forward::Dr, 10),
        (Mode::Tun, Forward::Tun, 20),
        (Mode::Nat, Forward::Nat, 30),
    ] {
        let vip = SocketAddr::new(mode.vip().into(), 80);
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "wlc"))
            .unwrap();
        for i in 1..=3u8 {
            let rip = Ipv4Addr::new(198, 18, 2, base + i);
            let port = if fwd == Forward::Nat { 8080 } else { 80 };
            t.add_dest(
                Protocol::Tcp,
                vip,
                &RealConfig {
                    addr: SocketAddr::new(rip.into(), port),
                    forward: fwd,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    health: Default::default(),
                },
            )
            .unwrap();
            t.set_next_hop(rip.into(), 0, [2, 0, 198, 18, 2, base + i]);
        }
    }
    t
}

/// Client `n` (distinct address and port per flow).
fn client(n: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from_bits(0xc612_8000_u32.wrapping_add(n >> 12)),
        1024 + (n & 0xfff) as u16,
    )
}

/// A 64-byte TCP frame (IPv4 20 + TCP 20 + 10 bytes of payload).
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0..6].copy_from_slice(&DIRECTOR_MAC);
    f[6..12].copy_from_slice(&ROUTER_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    // The TCP checksum is not verified on the path; leave it as is.
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A random permutation of 0..n (xorshift; fixed seed).
fn shuffled(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut s = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

fn process(p: &mut Pipeline, buf: &mut [u8], f: &[u8; FRAME]) -> Verdict {
    buf[HEADROOM..HEADROOM + FRAME].copy_from_slice(f);
    let mut fr = Frame::new(buf, HEADROOM, FRAME, 0);
    p.process(&mut fr, 1)
}

/// A pipeline with `flows` established connections of `mode`, and the
/// frames to drive them: client → VIP, and the servers' replies (NAT).
fn established(
    mode: Mode,
    flows: u32,
    capacity: u32,
) -> (Pipeline, Vec<[u8; FRAME]>, Vec<[u8; FRAME]>) {
    let t = table();
    let mut p = Pipeline::new(capacity, Arc::new(t.snapshot()), 0);
    let mut buf = vec![0u8; 2048];
    let mut fwd = Vec::with_capacity(flows as usize);
    let mut rev = Vec::new();
    for n in 0..flows {
        let (caddr, cport) = client(n);
        let syn = frame(caddr, cport, mode.vip(), 80, SYN);
        let Verdict::Tx { .. } = process(&mut p, &mut buf, &syn) else {
            panic!("setup SYN not forwarded")
        };
        // The handshake's ACK: the connection is established (confirmed,
        // so the table's share for unreplied entries does not cap it).
        let ack = frame(caddr, cport, mode.vip(), 80, ACK);
        let Verdict::Tx { .. } = process(&mut p, &mut buf, &ack) else {
            panic!("setup ACK not forwarded")
        };
        fwd.push(ack);
        if mode == Mode::Nat {
            // The ACK went out rewritten to its real server's address.
            let rip = Ipv4Addr::new(
                buf[HEADROOM + 30],
                buf[HEADROOM + 31],
                buf[HEADROOM + 32],
                buf[HEADROOM + 33],
            );
            rev.push(frame(rip, 8080, caddr, cport, ACK));
        }
    }
    assert_eq!(p.conns().len(), flows);
    (p, fwd, rev)
}

const BATCH: usize = 32;

/// Frames of the flows in a random flow order, laid out one after another
/// as they would arrive in a receive ring.
fn arrival_order(frames: &[[u8; FRAME]]) -> Vec<[u8; FRAME]> {
    shuffled(frames.len() as u32)
        .into_iter()
        .map(|i| frames[i as usize])
        .collect()
}

/// ns per packet, one `process` call per packet and in batches of
/// `BATCH` through `process_batch` (as a worker calls it).
fn drive(c: &mut Criterion, name: &str, p: &mut Pipeline, frames: &[[u8; FRAME]]) {
    let seq = arrival_order(frames);
    let mut buf = vec![0u8; 2048];
    let mut k = 0usize;
    c.bench_function(&format!("{name}/single"), |b| {
        b.iter(|| {
            let v = process(p, &mut buf, &seq[k]);
            k = if k + 1 == seq.len() { 0 } else { k + 1 };
            debug_assert!(matches!(v, Verdict::Tx { .. }));
            black_box(v)
        })
    });
    let mut bufs = vec![[0u8; 512]; BATCH];
    let mut verdicts = [Verdict::NotOurs; BATCH];
    let mut k = 0usize;
    c.bench_function(&format!("{name}/batch{BATCH}"), |b| {
        // Time per packet: `iters` packets in batches.
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = (left as usize).min(BATCH).min(seq.len() - k);
                let mut frames: ArrayVec<Frame<'_>, BATCH> = bufs
                    .iter_mut()
                    .zip(&seq[k..k + n])
                    .map(|(buf, f)| {
                        buf[HEADROOM..HEADROOM + FRAME].copy_from_slice(f);
                        Frame::new(buf, HEADROOM, FRAME, 0)
                    })
                    .collect();
                p.process_batch(&mut frames, &mut verdicts[..n], 1);
                black_box(&verdicts);
                k = if k + n == seq.len() { 0 } else { k + n };
                left -= n as u64;
            }
            t0.elapsed()
        })
    });
    assert_eq!(p.stats().total_drops(), 0, "{name}: drops");
}

fn bench_established(c: &mut Criterion) {
    for (flows, label) in [(1_000u32, "1k"), (1 << 20, "1M")] {
        for mode in [Mode::Dr, Mode::Tun, Mode::Nat] {
            let (mut p, fwd, rev) = established(mode, flows, flows + 1024);
            drive(
                c,
                &format!("established/{}/{label}", mode.name()),
                &mut p,
                &fwd,
            );
            if mode == Mode::Nat {
                drive(c, &format!("established/nat_reply/{label}"), &mut p, &rev);
            }
        }
    }
}

/// Copying the frames alone, in arrival order: the floor under every
/// figure above.
fn bench_copy(c: &mut Criterion) {
    let frames: Vec<[u8; FRAME]> = (0..1u32 << 20)
        .map(|n| {
            let (a, port) = client(n);
            frame(a, port, Mode::Dr.vip(), 80, ACK)
        })
        .collect();
    let seq = arrival_order(&frames);
    let mut buf = vec![0u8; 2048];
    let mut k = 0usize;
    c.bench_function("copy_only/1M", |b| {
        b.iter(|| {
            buf[HEADROOM..HEADROOM + FRAME].copy_from_slice(&seq[k]);
            k = if k + 1 == seq.len() { 0 } else { k + 1 };
            black_box(&buf);
        })
    });
}

/// A new connection: SYN of a never-seen flow, scheduled (wlc) and
/// inserted, into a table already holding 1 M connections.
fn bench_new(c: &mut Criterion) {
    for mode in [Mode::Dr, Mode::Nat] {
        let cap: u32 = 1 << 21;
        let base = 1u32 << 20;
        let (mut p, _, _) = established(mode, base, cap);
        let mut buf = vec![0u8; 2048];
        let mut next = base;
        c.bench_function(&format!("new_conn/{}", mode.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    if p.conns().len() >= cap - 1024 || next > u32::MAX - 1024 {
                        // Full: start again from 1 M established flows
                        // (outside the measured time).
                        (p, _, _) = established(mode, base, cap);
                        next = base;
                    }
                    let room = u64::from(cap - 1024 - p.conns().len());
                    let n = left.min(room);
                    let frames: Vec<[u8; FRAME]> = (0..n as u32)
                        .map(|i| {
                            let (a, port) = client(next + i);
                            frame(a, port, mode.vip(), 80, SYN)
                        })
                        .collect();
                    next += n as u32;
                    let t0 = Instant::now();
                    for f in &frames {
                        black_box(process(&mut p, &mut buf, f));
                    }
                    total += t0.elapsed();
                    left -= n;
                }
                total
            })
        });
        assert_eq!(p.stats().total_drops(), 0, "new_conn: drops");
    }
}

/// The cost of finishing partial checksums (`complete_checksums`): 1 k
/// established DR flows whose frames, of 64 and 1500 bytes on the wire,
/// carry a partial checksum (finished on every packet), a complete one
/// (checked against the pattern, left alone), both with the completion on,
/// and a complete one with it off (the path without the feature). Each
/// iteration copies the frame in first, as in `established`; the copy is
/// the same in all three, so the differences are the completion's.
fn bench_partial(c: &mut Criterion) {
    use xdpvs::wire::partial::make_partial_v4;
    const FLOWS: u32 = 1000;
    for len in [64usize, 1500] {
        // (name, port completes, frames partial)
        for (name, on, partial) in [
            ("partial", true, true),
            ("complete", true, false),
            ("off", false, false),
        ] {
            let t = table_with(on);
            let mut p = Pipeline::new(FLOWS + 1024, Arc::new(t.snapshot()), 0);
            let mut buf = vec![0u8; 2048];
            let frames: Vec<Vec<u8>> = (0..FLOWS)
                .map(|n| {
                    let (a, port) = client(n);
                    let syn = sized_frame(a, port, Mode::Dr.vip(), SYN, len);
                    let Verdict::Tx { .. } = process_len(&mut p, &mut buf, &syn) else {
                        panic!("setup SYN not forwarded")
                    };
                    let mut f = sized_frame(a, port, Mode::Dr.vip(), ACK, len);
                    if partial {
                        assert!(make_partial_v4(&mut f[14..], 20));
                    }
                    f
                })
                .collect();
            let order = shuffled(FLOWS);
            let mut k = 0usize;
            c.bench_function(&format!("partial/{len}/{name}"), |b| {
                b.iter(|| {
                    let f = &frames[order[k] as usize];
                    let v = process_len(&mut p, &mut buf, f);
                    k = if k + 1 == order.len() { 0 } else { k + 1 };
                    black_box(v)
                })
            });
            let done = p.stats().get(xdpvs::stats::Counter::CsumCompleted);
            assert_eq!(
                done > 0,
                partial,
                "partial/{len}/{name}: completions {done}"
            );
            assert_eq!(p.stats().total_drops(), 0, "partial/{len}/{name}: drops");
        }
    }
}

/// A TCP frame of `len` bytes on the wire (IPv4 20 + TCP 20 + payload)
/// with a complete TCP checksum, to port 80.
fn sized_frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, flags: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..FRAME].copy_from_slice(&frame(src, sport, dst, 80, flags));
    let ip_len = (len - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut tcp = xdpvs::wire::tcp::TcpPacket::new_unchecked(&mut f[34..]);
    tcp.fill_checksum_v4(src, dst);
    f
}

fn process_len(p: &mut Pipeline, buf: &mut [u8], f: &[u8]) -> Verdict {
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    let mut fr = Frame::new(buf, HEADROOM, f.len(), 0);
    p.process(&mut fr, 1)
}

/// Parsing Ethernet + IPv4 + TCP: our views against etherparse's slicer.
fn bench_parse(c: &mut Criterion) {
    use xdpvs::wire::{ethernet::EthernetFrame, ipv4::Ipv4Packet, tcp::TcpPacket};
    let f = frame(
        Ipv4Addr::new(198, 18, 0, 10),
        40000,
        Mode::Dr.vip(),
        80,
        ACK,
    );
    c.bench_function("parse/xdpvs_wire", |b| {
        b.iter(|| {
            let d = black_box(&f[..]);
            let eth = EthernetFrame::new_checked(d).unwrap();
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            black_box((
                ip.src_addr(),
                ip.dst_addr(),
                tcp.src_port(),
                tcp.dst_port(),
                tcp.flags(),
            ))
        })
    });
    c.bench_function("parse/etherparse", |b| {
        b.iter(|| {
            let d = black_box(&f[..]);
            let s = etherparse::SlicedPacket::from_ethernet(d).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
                unreachable!()
            };
            let Some(etherparse::TransportSlice::Tcp(tcp)) = &s.transport else {
                unreachable!()
            };
            black_box((
                ip.header().source(),
                ip.header().destination(),
                tcp.source_port(),
                tcp.destination_port(),
                tcp.syn(),
            ))
        })
    });
}

/// The machine's memory latency, the floor under the 1 M-flow figures:
/// random loads over 128 MiB backed by huge pages, as the connection table
/// is — a dependent chain (each load one full miss), and independent loads
/// (misses overlapped by the CPU, as `process_batch` arranges them).
/// Reported per load.
fn bench_memory(c: &mut Criterion) {
    let n: usize = 16 << 20;
    let mut next: Vec<u64> = Vec::with_capacity(n);
    xdpvs::mem::advise_hugepages(&mut next);
    next.resize(n, 0);
    // One random cycle through every slot.
    let order = shuffled(n as u32);
    for w in 0..n {
        next[order[w] as usize] = u64::from(order[(w + 1) % n]);
    }
    c.bench_function("memory/dependent_load", |b| {
        let mut x = 0usize;
        b.iter(|| {
            x = next[x] as usize;
            black_box(x)
        })
    });
    let targets: Vec<usize> = order.iter().take(1 << 20).map(|&i| i as usize).collect();
    c.bench_function("memory/independent_load", |b| {
        let mut k = 0usize;
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            let mut acc = 0u64;
            for _ in 0..iters {
                acc = acc.wrapping_add(next[targets[k]]);
                k = if k + 1 == targets.len() { 0 } else { k + 1 };
            }
            black_box(acc);
            t0.elapsed()
        })
    });
}

fn memory(_: &mut Criterion) {
    let p = Pipeline::new(1 << 20, Arc::new(table().snapshot()), 0);
    let per = p.conns().memory() as f64 / f64::from(p.conns().capacity());
    println!(
        "memory: {per:.1} bytes per connection ({} bytes for {} connections, entries + index + wheel)",
        p.conns().memory(),
        p.conns().capacity()
    );
}

/// A 84-byte IPv6 TCP frame (IPv6 40 + TCP 20 + 10 bytes of payload).
fn frame6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 84];
    f[0..6].copy_from_slice(&DIRECTOR_MAC);
    f[6..12].copy_from_slice(&ROUTER_MAC);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&30u16.to_be_bytes());
    f[20] = 6;
    f[21] = 64;
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    let tcp = &mut f[54..74];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    f
}

/// IPv6 services, one per mode, three real servers each, wlc.
fn table6() -> ServiceTable {
    let mut t = table();
    t.allow_ipv6_services();
    for (n, fwd) in [(1u16, Forward::Dr), (2, Forward::Tun), (3, Forward::Nat)] {
        let vip = SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n).into(), 80);
        t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "wlc"))
            .unwrap();
        for i in 1..=3u16 {
            let rip = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, n * 16 + i);
            let port = if fwd == Forward::Nat { 8080 } else { 80 };
            let real = RealConfig::new(SocketAddr::new(rip.into(), port), fwd, 1);
            t.add_dest(Protocol::Tcp, vip, &real).unwrap();
            t.set_next_hop(rip.into(), 0, [2, 0, 0, 6, n as u8, i as u8]);
            t.set_source6(
                rip.into(),
                Some(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2)),
            );
        }
    }
    t
}

fn bench_established6(c: &mut Criterion) {
    const FLOWS: u32 = 1000;
    for (n, name) in [(1u16, "dr"), (2, "tun"), (3, "nat")] {
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n);
        let mut p = Pipeline::new(4 * (FLOWS + 1024), Arc::new(table6().snapshot()), 0);
        let mut buf = vec![0u8; 2048];
        let run = |p: &mut Pipeline, buf: &mut [u8], f: &[u8]| {
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            let mut fr = Frame::new(buf, HEADROOM, f.len(), 0);
            p.process(&mut fr, 1)
        };
        let (mut fwd, mut rev) = (Vec::new(), Vec::new());
        for i in 0..FLOWS {
            let client = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 12) as u16, 0x10);
            let cport = 1024 + (i & 0xfff) as u16;
            for flags in [SYN, ACK] {
                let f = frame6(client, cport, vip, 80, flags);
                let Verdict::Tx { .. } = run(&mut p, &mut buf, &f) else {
                    panic!("setup {name} not forwarded")
                };
            }
            fwd.push(frame6(client, cport, vip, 80, ACK));
            if n == 3 {
                let at = HEADROOM + 38;
                let rip = Ipv6Addr::from(<[u8; 16]>::try_from(&buf[at..at + 16]).unwrap());
                rev.push(frame6(rip, 8080, client, cport, ACK));
            }
        }
        assert_eq!(p.conns6().len(), FLOWS);
        let mut sets = vec![(format!("established6/{name}/1k/single"), fwd)];
        if n == 3 {
            sets.push(("established6/nat_reply/1k/single".to_string(), rev));
        }
        for (label, frames) in sets {
            let order = shuffled(FLOWS);
            let mut k = 0usize;
            c.bench_function(&label, |b| {
                b.iter(|| {
                    let v = run(&mut p, &mut buf, &frames[order[k] as usize]);
                    k = if k + 1 == order.len() { 0 } else { k + 1 };
                    black_box(v)
                })
            });
        }
        assert_eq!(p.stats().total_drops(), 0, "established6/{name}: drops");
    }
}

criterion_group!(
    benches,
    bench_partial,
    memory,
    bench_memory,
    bench_parse,
    bench_copy,
    bench_established,
    bench_established6,
    bench_new
);
criterion_main!(benches);
