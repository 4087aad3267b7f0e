//! Frame conservation under load: every UMEM chunk stays accounted for
//! through millions of frames with every kind of verdict. A unit test
//! because moving a frame's head into the headroom (as TUN does) is
//! crate-internal. Needs root (namespaces, XDP).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::steer::Steering;
use super::{Xsk, XskConfig};
use crate::config::{XdpMode, ZeroCopy};
use crate::frame::{DropReason, Frame, Verdict};
use crate::service::SteerRules;
use crate::wire::checksum;

#[path = "../../tests/netns/mod.rs"]
mod netns;
use netns::{ADDR_B, MAC_A, MAC_B, VethPair};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const PORT: u8 = 3;

/// A UDP packet from B to the VIP, port 9000.
fn udp_to_vip(payload: usize) -> Vec<u8> {
    let ip_len = 20 + 8 + payload;
    let mut p = Vec::with_capacity(14 + ip_len);
    p.extend_from_slice(&MAC_A);
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&ADDR_B.octets());
    ip.extend_from_slice(&VIP.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&[0x30, 0x39, 0x23, 0x28, 0, (8 + payload) as u8, 0, 0]);
    p.resize(14 + ip_len, 0xab);
    p
}

/// Mixed verdicts: transmit as is, drop, pass, and transmit after
/// prepending 20 bytes into the headroom.
fn mixed(frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
    for (i, (f, v)) in frames.iter_mut().zip(verdicts.iter_mut()).enumerate() {
        *v = match i % 4 {
            0 => Verdict::Tx {
                port: PORT,
                len: f.len(),
            },
            1 => Verdict::Drop(DropReason::Malformed),
            2 => Verdict::NotOurs,
            _ => {
                assert!(f.push_front(20));
                Verdict::Tx {
                    port: PORT,
                    len: f.len(),
                }
            }
        };
    }
    // The socket must find chunks by address, not position.
    frames.reverse();
    verdicts.reverse();
}

fn balanced(x: &Xsk) {
    let (total, counted) = x.frame_accounting();
    assert_eq!(total, counted, "UMEM chunks leaked or double-counted");
}

#[test]
fn frames_are_conserved_under_mixed_verdicts() {
    let veth = VethPair::new("fc");
    let stop = Arc::new(AtomicBool::new(false));
    let pkt = udp_to_vip(64);

    // The generator in B: an AF_XDP socket that injects and transmits.
    let gen_ns = veth.b.clone();
    let gen_if = veth.ib.clone();
    let gen_stop = stop.clone();
    let go = Arc::new(AtomicBool::new(false));
    let gen_go = go.clone();
    let gen_pkt = pkt.clone();
    let generator = std::thread::spawn(move || {
        VethPair::enter(&gen_ns);
        let mut cfg = XskConfig::new(&gen_if, 0);
        cfg.zero_copy = ZeroCopy::Off;
        let mut g = Xsk::open(&cfg, 0).expect("generator socket");
        let batch: Vec<&[u8]> = vec![&gen_pkt[..]; 32];
        let deadline = Instant::now() + Duration::from_secs(4);
        while !gen_stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            g.inject_batch(&batch, |f, v| {
                for (f, v) in f.iter().zip(v.iter_mut()) {
                    *v = Verdict::Tx {
                        port: 0,
                        len: f.len(),
                    };
                }
            });
            g.service();
        }
        let flood = g.stats().tx;
        // Then, once told, 200 more, paced so that none is lost on the way.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gen_go.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let batch: Vec<&[u8]> = vec![&gen_pkt[..]; 10];
        for _ in 0..20 {
            g.inject_batch(&batch, |f, v| {
                for (f, v) in f.iter().zip(v.iter_mut()) {
                    *v = Verdict::Tx {
                        port: 0,
                        len: f.len(),
                    };
                }
            });
            g.service();
            std::thread::sleep(Duration::from_millis(2));
        }
        g.service();
        flood
    });

    VethPair::enter(&veth.a);
    let (mut steer, info) = Steering::attach(&veth.ia, XdpMode::Auto).expect("attach");
    eprintln!("steering attached: native={}", info.native);
    let mut cfg = XskConfig::new(&veth.ia, 0);
    cfg.frames = 1024;
    cfg.fill_size = 512;
    cfg.zero_copy = ZeroCopy::Auto;
    let mut x = Xsk::open(&cfg, PORT).expect("socket");
    eprintln!(
        "zero-copy: {} ({:?})",
        x.zero_copy(),
        x.copy_reason().map(|e| e.to_string())
    );
    steer.register_socket(0, x.as_raw_fd()).unwrap();
    steer
        .set_rules(&SteerRules {
            vips: vec![(17, VIP, 9000)],
            ..SteerRules::default()
        })
        .unwrap();
    balanced(&x);

    let inject: Vec<&[u8]> = vec![&pkt[..]; 48];
    let (mut received, mut injected) = (0usize, 0usize);
    let t0 = Instant::now();
    while received + injected < 3_000_000 && t0.elapsed() < Duration::from_secs(3) {
        received += x.rx_batch(64, mixed);
        injected += x.inject_batch(&inject, mixed);
        balanced(&x);
        x.service();
    }
    stop.store(true, Ordering::Relaxed);
    let s = x.stats();
    eprintln!(
        "received {received} injected {injected} in {:?}; {s:?}",
        t0.elapsed()
    );
    assert!(received > 1000, "too few frames received: {received}");
    assert!(injected > 100_000, "too few frames injected: {injected}");
    assert!(s.tx > 0);
    assert!(
        x.zero_copy() || s.tx_kicks > 0,
        "copy mode transmits only from sendto: {s:?}"
    );
    assert_eq!((s.invalid_descriptors, s.lost_chunks), (0, 0), "{s:?}");
    let k = x.kernel_stats().expect("XDP_STATISTICS");
    eprintln!("kernel: {k:?}");
    assert_eq!((k.rx_invalid_descs, k.tx_invalid_descs), (0, 0), "{k:?}");

    // Drain: transmitted chunks come back through the completion ring.
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(2) {
        x.rx_batch(64, |_, _| {});
        x.service();
        balanced(&x);
        if x.free.len() + x.fill_out as usize == x.frames as usize {
            break;
        }
    }
    balanced(&x);
    assert_eq!(
        x.tx_out, 0,
        "transmitted frames never completed: {}",
        x.tx_out
    );

    // The socket still receives: 200 more, paced, all arrive.
    let before = x.stats().rx;
    go.store(true, Ordering::Relaxed);
    let t2 = Instant::now();
    while x.stats().rx - before < 200 && t2.elapsed() < Duration::from_secs(3) {
        x.rx_batch(64, |_, _| {});
        x.service();
        x.wait_rx(10);
    }
    let flood = generator.join().expect("generator");
    eprintln!("generator flooded {flood} frames");
    // At least: frames of the flood still queued in the veth may arrive too.
    let got = x.stats().rx - before;
    assert!(got >= 200, "the socket stopped receiving: {got} of 200");
    balanced(&x);
}
