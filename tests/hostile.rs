//! Hostile and malformed frames: every one is counted and dropped or passed
//! to the kernel, never a panic, never forwarded half-parsed.

mod common;

use common::*;
use etherparse::{InternetSlice, SlicedPacket};
use proptest::prelude::*;
use xdpvs::frame::{DropReason, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::stats::Counter;

/// Valid frames of every kind the pipeline forwards.
fn valid_frames() -> Vec<Vec<u8>> {
    let rs = std::net::Ipv4Addr::new(198, 18, 2, 31);
    vec![
        Pkt::default().bytes(),
        Pkt {
            vlan: Some(5),
            payload: b"data".to_vec(),
            ..Pkt::default()
        }
        .bytes(),
        Pkt {
            dst: VIP_TUN,
            options: vec![1, 1, 1, 0],
            ..Pkt::default()
        }
        .bytes(),
        Pkt {
            dst: VIP_NAT,
            ..Pkt::default()
        }
        .bytes(),
        Pkt {
            src: rs,
            sport: 8080,
            dst: CLIENT,
            dport: 40000,
            l4: L4::Tcp {
                flags: SYN | ACK,
                seq: 1,
            },
            ..Pkt::default()
        }
        .bytes(),
        Pkt {
            dst: VIP_NAT,
            dport: 53,
            l4: L4::Udp { checksum: true },
            payload: b"q".to_vec(),
            ..Pkt::default()
        }
        .bytes(),
    ]
}

fn accounted(p: &Pipeline) {
    let c = p.stats();
    let tx: u64 = [
        Counter::TxDr,
        Counter::TxTun,
        Counter::TxNat,
        Counter::TxReplies,
        Counter::IcmpSent,
        Counter::IcmpRelayed,
    ]
    .map(|k| c.get(k))
    .iter()
    .sum();
    let not_ours = c.get(Counter::NotOurs);
    assert_eq!(c.get(Counter::Rx), tx + not_ours + c.total_drops(), "{c:?}");
}

#[test]
fn every_truncation_is_dropped_or_passed() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    // Establish the NAT connection so the reply frame's truncations hit
    // the connection path too.
    run(&mut p, &valid_frames()[3], 0);
    for f in valid_frames() {
        for len in 0..f.len() {
            let (v, _) = run(&mut p, &f[..len], 0);
            assert!(
                matches!(v, Verdict::Drop(_) | Verdict::NotOurs),
                "truncated to {len}: {v:?}"
            );
        }
    }
    accounted(&p);
    assert!(p.stats().dropped(DropReason::Malformed) > 0);
}

/// Writes `f` into the IPv4 header of a frame and fixes the header checksum
/// (so the fault under test is the one reached).
fn with_ip(mut frame: Vec<u8>, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
    f(&mut frame[14..]);
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if (20..=60).contains(&ihl) && frame.len() >= 14 + ihl {
        frame[24..26].copy_from_slice(&[0, 0]);
        let c = xdpvs::wire::checksum::checksum(&frame[14..14 + ihl]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
    }
    frame
}

/// A UDP datagram to the NAT service whose header claims `len` bytes.
fn udp_with_length(len: u16) -> Vec<u8> {
    let mut f = Pkt {
        dst: VIP_NAT,
        dport: 53,
        l4: L4::Udp { checksum: false },
        ..Pkt::default()
    }
    .bytes();
    f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&len.to_be_bytes());
    f
}

#[test]
fn bad_ip_headers() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    let base = Pkt::default().bytes();
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        (
            "version 6 in an IPv4 frame",
            with_ip(base.clone(), |ip| ip[0] = 0x65),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "IHL 4",
            with_ip(base.clone(), |ip| ip[0] = 0x44),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "IHL 15, longer than the frame",
            with_ip(base[..14 + 40].to_vec(), |ip| {
                ip[0] = 0x4f;
                ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "total length below the header",
            with_ip(base.clone(), |ip| {
                ip[2..4].copy_from_slice(&12u16.to_be_bytes())
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "total length beyond the frame",
            with_ip(base.clone(), |ip| {
                ip[2..4].copy_from_slice(&1400u16.to_be_bytes())
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "bad header checksum",
            {
                let mut f = base.clone();
                f[24] ^= 0x40;
                f
            },
            Verdict::Drop(DropReason::BadIpChecksum),
        ),
        (
            "first fragment (MF)",
            with_ip(base.clone(), |ip| ip[6] = 0x20),
            Verdict::Drop(DropReason::Fragment),
        ),
        (
            "later fragment (offset)",
            with_ip(base.clone(), |ip| ip[7] = 0x10),
            Verdict::Drop(DropReason::Fragment),
        ),
        (
            "a fragment not for a VIP",
            with_ip(
                Pkt {
                    dst: TUNNEL_SRC,
                    ..Pkt::default()
                }
                .bytes(),
                |ip| ip[6] = 0x20,
            ),
            Verdict::NotOurs,
        ),
        (
            "TCP data offset 4",
            {
                let mut f = base.clone();
                f[14 + 20 + 12] = 0x40;
                f
            },
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "TCP data offset 15, beyond the segment",
            {
                let mut f = base.clone();
                f[14 + 20 + 12] = 0xf0;
                f
            },
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "zero-length UDP",
            udp_with_length(0),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "UDP length beyond the datagram",
            udp_with_length(200),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "two VLAN tags",
            {
                let mut f = Pkt {
                    vlan: Some(1),
                    ..Pkt::default()
                }
                .bytes();
                f[16..18].copy_from_slice(&0x8100u16.to_be_bytes());
                f
            },
            Verdict::Drop(DropReason::Malformed),
        ),
    ];
    for (what, frame, want) in cases {
        let (v, _) = run(&mut p, &frame, 0);
        assert_eq!(v, want, "{what}");
    }
    accounted(&p);
    assert_eq!(p.conns().len(), 0, "nothing malformed created a connection");
}

#[test]
fn ip_options_are_carried() {
    let t = director();
    let mut p = pipeline(&t, 1024);
    for opts in [
        vec![1, 1, 1, 0],
        vec![0x94, 4, 0, 0, 1, 1, 1, 0],
        vec![1; 40],
    ] {
        let f = Pkt {
            options: opts.clone(),
            sport: opts.len() as u16,
            ..Pkt::default()
        };
        let (v, out) = run(&mut p, &f.bytes(), 0);
        assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
        assert_eq!(&out[12..], &f.bytes()[12..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random corruption of valid frames: never a panic, everything
    /// accounted, and whatever is still forwarded has a right IPv4 header
    /// checksum.
    #[test]
    fn corrupted_frames(which in 0usize..6, flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..6), cut in 0usize..200) {
        let t = director();
        let mut p = pipeline(&t, 64);
        let frames = valid_frames();
        run(&mut p, &frames[3], 0);
        let mut f = frames[which].clone();
        for (at, x) in flips {
            let n = f.len();
            f[at % n] ^= x;
        }
        let n = f.len();
        f.truncate(n - cut % (n / 2));
        let (v, out) = run(&mut p, &f, 0);
        if let Verdict::Tx { .. } = v {
            let s = SlicedPacket::from_ethernet(&out).expect("forwarded frame parses");
            if let Some(InternetSlice::Ipv4(ip)) = &s.net {
                let h = ip.header().to_header();
                prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
            }
        }
        accounted(&p);
    }

    /// Random bytes after a valid Ethernet header.
    #[test]
    fn random_ipv4_payloads(body in proptest::collection::vec(any::<u8>(), 0..120)) {
        let t = director();
        let mut p = pipeline(&t, 64);
        let mut f = Pkt::default().l2(0x0800);
        f.extend_from_slice(&body);
        let _ = run(&mut p, &f, 0);
        accounted(&p);
    }
}
