//! The FTP helper in the pipeline, with byte fixtures: a NAT FTP service,
//! a client's control connection, replies and commands as vsftpd and curl
//! write them, and the data connections they announce.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use etherparse::{Ipv4Header, SlicedPacket, TcpHeader, TransportSlice};
use xdpvs::config::{Forward, Protocol};
use xdpvs::frame::Verdict;
use xdpvs::pipeline::Pipeline;
use xdpvs::service::ServiceTable;
use xdpvs::stats::Counter;

const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 31);
const CPORT: u16 = 40000;

/// A NAT FTP service on `vip`:21 with one real server RIP:21.
fn ftp_director(vip: Ipv4Addr) -> ServiceTable {
    let mut t = empty_director();
    let v = format!("{vip}:21");
    t.add_service(&service(Protocol::Tcp, &v, "rr")).unwrap();
    let r = real("198.18.2.31:21", Forward::Nat, 1);
    t.add_dest(Protocol::Tcp, v.parse::<SocketAddr>().unwrap(), &r)
        .unwrap();
    t.set_next_hop(RIP.into(), 0, mac_of(RIP));
    t
}

/// An Ethernet frame with a TCP segment.
#[allow(clippy::too_many_arguments)]
fn tcp(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip =
        Ipv4Header::new(0, 64, etherparse::IpNumber::TCP, src.octets(), dst.octets()).unwrap();
    ip.set_payload_len(20 + payload.len()).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut t = TcpHeader::new(sport, dport, seq, 64240);
    t.syn = flags & SYN != 0;
    t.ack = flags & ACK != 0;
    t.psh = flags & PSH != 0;
    t.fin = flags & FIN != 0;
    t.acknowledgment_number = ack;
    t.checksum = t.calc_checksum_ipv4(&ip, payload).unwrap();
    let mut out = vec![0u8; 12];
    out[..6].copy_from_slice(&DIRECTOR_MAC);
    out[6..12].copy_from_slice(&ROUTER_MAC);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&t.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// What came out: addresses, ports, seq, ack, payload — after checking
/// that the IP and TCP checksums are right and the lengths agree.
#[derive(Debug, PartialEq, Eq)]
struct Seg {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
}

fn seg(frame: &[u8]) -> Seg {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IP checksum");
    assert_eq!(
        usize::from(h.total_len),
        frame.len() - 14,
        "IP total length"
    );
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let payload = t.payload().to_vec();
    let th = t.to_header();
    assert_eq!(
        th.checksum,
        th.calc_checksum_ipv4(&h, &payload).unwrap(),
        "TCP checksum"
    );
    Seg {
        src: (h.source.into(), t.source_port()),
        dst: (h.destination.into(), t.destination_port()),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        payload,
    }
}

fn tx(p: &mut Pipeline, frame: &[u8]) -> Seg {
    let (v, out) = run(p, frame, 1);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    seg(&out)
}

/// Opens the control connection and returns the pipeline.
fn control(vip: Ipv4Addr) -> Pipeline {
    let t = ftp_director(vip);
    let mut p = pipeline(&t, 1024);
    let s = tx(&mut p, &tcp(CLIENT, CPORT, vip, 21, SYN, 100, 0, b""));
    assert_eq!(s.dst, (RIP, 21));
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, SYN | ACK, 5000, 101, b""),
    );
    assert_eq!(s.src, (vip, 21));
    p
}

#[test]
fn passive_reply_rewritten_sequence_shifted_data_connection_expected() {
    let mut p = control(VIP_NAT);
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n";
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, reply),
    );
    assert_eq!(s.src, (VIP_NAT, 21));
    assert_eq!(
        s.payload,
        b"227 Entering Passive Mode (198,18,1,3,195,80).\r\n"
    );
    assert_eq!(s.seq, 5001, "the resized segment keeps its start");
    assert_eq!(p.stats().get(Counter::FtpRewrites), 1);
    // One byte shorter: the server's later bytes come one earlier ...
    let next = 5001 + reply.len() as u32;
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, next, 107, b"150 ok\r\n"),
    );
    assert_eq!(s.seq, next - 1);
    // ... a retransmission of the reply is rewritten again, not shifted ...
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, reply),
    );
    assert_eq!((s.seq, s.payload.len()), (5001, reply.len() - 1));
    // ... and the client's acknowledgements go back up by one.
    let s = tx(
        &mut p,
        &tcp(CLIENT, CPORT, VIP_NAT, 21, ACK, 107, next - 1, b""),
    );
    assert_eq!((s.dst, s.ack), ((RIP, 21), next));
    let s = tx(
        &mut p,
        &tcp(CLIENT, CPORT, VIP_NAT, 21, ACK, 107, 5001, b""),
    );
    assert_eq!(s.ack, 5001, "before the resized segment: unshifted");

    // The data connection: client → VIP:50000 goes to RIP:50000, once.
    let s = tx(&mut p, &tcp(CLIENT, 41000, VIP_NAT, 50000, SYN, 1, 0, b""));
    assert_eq!(s.dst, (RIP, 50000));
    let s = tx(
        &mut p,
        &tcp(RIP, 50000, CLIENT, 41000, SYN | ACK, 9, 2, b""),
    );
    assert_eq!((s.src, s.dst), ((VIP_NAT, 50000), (CLIENT, 41000)));
    let (v, _) = run(
        &mut p,
        &tcp(CLIENT, 41001, VIP_NAT, 50000, SYN, 1, 0, b""),
        1,
    );
    assert_eq!(v, Verdict::NotOurs, "an expectation is used once");
    assert_eq!(p.stats().get(Counter::FtpConns), 1);
}

#[test]
fn epsv_expects_without_rewriting() {
    let mut p = control(VIP_NAT);
    let reply = b"229 Entering Extended Passive Mode (|||50002|)\r\n";
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, reply),
    );
    assert_eq!(s.payload, reply);
    let next = 5001 + reply.len() as u32;
    let s = tx(&mut p, &tcp(RIP, 21, CLIENT, CPORT, ACK, next, 107, b""));
    assert_eq!(s.seq, next);
    let s = tx(&mut p, &tcp(CLIENT, 41000, VIP_NAT, 50002, SYN, 1, 0, b""));
    assert_eq!(s.dst, (RIP, 50002));
}

#[test]
fn split_pasv_reply_passes_untouched_and_expects_nothing() {
    let mut p = control(VIP_NAT);
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n";
    let (a, b) = reply.split_at(33);
    let s = tx(&mut p, &tcp(RIP, 21, CLIENT, CPORT, ACK, 5001, 107, a));
    assert_eq!(s.payload, a);
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001 + 33, 107, b),
    );
    assert_eq!((s.payload.as_slice(), s.seq), (b, 5001 + 33));
    let (v, _) = run(
        &mut p,
        &tcp(CLIENT, 41000, VIP_NAT, 50000, SYN, 1, 0, b""),
        1,
    );
    assert_eq!(v, Verdict::NotOurs);
    assert_eq!(p.stats().get(Counter::FtpRewrites), 0);
}

#[test]
fn hostile_lines_pass_untouched() {
    let mut p = control(VIP_NAT);
    let mut huge = b"227 Entering Passive Mode (".to_vec();
    huge.extend(std::iter::repeat_n(b'1', 1300));
    huge.extend_from_slice(b",18,2,31,195,80)\r\n");
    let foreign = b"227 Entering Passive Mode (198,18,2,99,195,80).\r\n".to_vec();
    let mut seq = 5001;
    for payload in [huge, foreign] {
        let s = tx(
            &mut p,
            &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, seq, 107, &payload),
        );
        assert_eq!((s.payload, s.seq), (payload.clone(), seq));
        seq += payload.len() as u32;
    }
    // A bad checksum: not even looked at.
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n";
    let mut f = tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, seq, 107, reply);
    let n = f.len();
    f[n - 5] ^= 1;
    let (v, out) = run(&mut p, &f, 1);
    assert!(matches!(v, Verdict::Tx { .. }));
    assert_eq!(out.len(), n, "not resized");
    assert_eq!(p.stats().get(Counter::FtpRewrites), 0);
    assert_eq!(p.stats().get(Counter::FtpExpected), 0);
}

#[test]
fn longer_vip_grows_the_frame_within_the_mtu() {
    let vip = Ipv4Addr::new(198, 18, 100, 100);
    let mut p = control(vip);
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n";
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, reply),
    );
    assert_eq!(
        s.payload,
        b"227 Entering Passive Mode (198,18,100,100,195,80).\r\n"
    );
    let next = 5001 + reply.len() as u32;
    let s = tx(&mut p, &tcp(RIP, 21, CLIENT, CPORT, ACK, next, 107, b""));
    assert_eq!(s.seq, next + 3);
    let s = tx(
        &mut p,
        &tcp(CLIENT, CPORT, vip, 21, ACK, 107, next + 3, b""),
    );
    assert_eq!(s.ack, next);
    // A full-size segment cannot grow past the MTU: left alone.
    let mut full = vec![b'x'; 1500 - 40 - reply.len() - 2];
    full.extend_from_slice(b"\r\n");
    full.extend_from_slice(reply);
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, next, 107, &full),
    );
    assert_eq!(s.payload, full);
    assert_eq!(p.stats().get(Counter::FtpRefused), 1);
}

#[test]
fn port_and_eprt_create_the_active_data_connection() {
    for cmd in [
        &b"PORT 198,18,0,10,156,64\r\n"[..],
        b"EPRT |1|198.18.0.10|40000|\r\n",
    ] {
        let mut p = control(VIP_NAT);
        let s = tx(
            &mut p,
            &tcp(CLIENT, CPORT, VIP_NAT, 21, ACK | PSH, 101, 5001, cmd),
        );
        assert_eq!(s.payload, cmd, "the client's own address needs no rewrite");
        // The real server connects from its port 20 to the client's port:
        // the client sees it come from VIP:20.
        let s = tx(&mut p, &tcp(RIP, 20, CLIENT, 40000, SYN, 7, 0, b""));
        assert_eq!((s.src, s.dst), ((VIP_NAT, 20), (CLIENT, 40000)));
        let s = tx(
            &mut p,
            &tcp(CLIENT, 40000, VIP_NAT, 20, SYN | ACK, 1, 8, b""),
        );
        assert_eq!(s.dst, (RIP, 20));
        assert_eq!(p.stats().get(Counter::FtpConns), 1);
    }
    // A PORT naming a third party opens nothing (no FTP bounce).
    let mut p = control(VIP_NAT);
    let cmd = b"PORT 198,18,0,99,156,64\r\n";
    tx(
        &mut p,
        &tcp(CLIENT, CPORT, VIP_NAT, 21, ACK | PSH, 101, 5001, cmd),
    );
    let other = Ipv4Addr::new(198, 18, 0, 99);
    let (v, _) = run(&mut p, &tcp(RIP, 20, other, 40000, SYN, 7, 0, b""), 1);
    assert!(!matches!(v, Verdict::Tx { .. }));
}

#[test]
fn no_helper_without_its_port() {
    let mut t = ftp_director(VIP_NAT);
    t.set_ftp_ports(Vec::new());
    let mut p = pipeline(&t, 1024);
    tx(&mut p, &tcp(CLIENT, CPORT, VIP_NAT, 21, SYN, 100, 0, b""));
    let reply = b"227 Entering Passive Mode (198,18,2,31,195,80).\r\n";
    let s = tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, reply),
    );
    assert_eq!(s.payload, reply);
}

/// Issue 12, item 9: one pending data connection per control connection,
/// as `nf_conntrack_ftp` keeps one expectation per master. 10 000 PASV
/// replies, each on another port, leave the control connection and the
/// last expectation; only that one is still honoured.
#[test]
fn a_flood_of_pasv_replies_leaves_one_expectation() {
    let mut p = control(VIP_NAT);
    let mut seq = 5001u32;
    for k in 0..10_000u16 {
        let port = 20_000 + k;
        let reply = format!(
            "227 Entering Passive Mode (198,18,2,31,{},{}).\r\n",
            port >> 8,
            port & 0xff
        );
        tx(
            &mut p,
            &tcp(
                RIP,
                21,
                CLIENT,
                CPORT,
                ACK | PSH,
                seq,
                107,
                reply.as_bytes(),
            ),
        );
        seq = seq.wrapping_add(reply.len() as u32);
        assert!(p.conns().len() <= 2, "after reply {k}: {}", p.conns().len());
    }
    assert_eq!(
        p.conns().len(),
        2,
        "the control connection and one expectation"
    );
    assert_eq!(p.stats().get(Counter::FtpExpected), 10_000);
    let (v, _) = run(
        &mut p,
        &tcp(CLIENT, 41000, VIP_NAT, 20_000, SYN, 1, 0, b""),
        1,
    );
    assert_eq!(v, Verdict::NotOurs, "an earlier expectation is gone");
    let s = tx(&mut p, &tcp(CLIENT, 41001, VIP_NAT, 29_999, SYN, 1, 0, b""));
    assert_eq!(s.dst, (RIP, 29_999), "the last one is honoured");
}

/// The same for PORT: each command ends the connection the one before it
/// created while the real server has not opened it; a data connection the
/// server has opened is left alone.
#[test]
fn a_flood_of_port_commands_leaves_one_pending_connection() {
    let mut p = control(VIP_NAT);
    let mut seq = 101u32;
    let mut port_cmd = |p: &mut Pipeline, port: u16| {
        let cmd = format!("PORT 198,18,0,10,{},{}\r\n", port >> 8, port & 0xff);
        tx(
            p,
            &tcp(
                CLIENT,
                CPORT,
                VIP_NAT,
                21,
                ACK | PSH,
                seq,
                5001,
                cmd.as_bytes(),
            ),
        );
        seq = seq.wrapping_add(cmd.len() as u32);
    };
    for k in 0..10_000u16 {
        port_cmd(&mut p, 20_000 + k);
        assert!(p.conns().len() <= 2, "after PORT {k}: {}", p.conns().len());
    }
    assert_eq!(p.conns().len(), 2);
    assert_eq!(p.stats().get(Counter::FtpConns), 10_000);
    // The server connects to the last port announced; an earlier one is
    // no longer translated.
    let (v, _) = run(&mut p, &tcp(RIP, 20, CLIENT, 20_000, SYN, 7, 0, b""), 1);
    assert!(!matches!(v, Verdict::Tx { .. }), "{v:?}");
    let s = tx(&mut p, &tcp(RIP, 20, CLIENT, 29_999, SYN, 7, 0, b""));
    assert_eq!((s.src, s.dst), ((VIP_NAT, 20), (CLIENT, 29_999)));
    // That transfer runs on while the next PORT comes: three entries.
    port_cmd(&mut p, 30_000);
    assert_eq!(p.conns().len(), 3);
    let s = tx(
        &mut p,
        &tcp(CLIENT, 29_999, VIP_NAT, 20, SYN | ACK, 1, 8, b""),
    );
    assert_eq!(s.dst, (RIP, 20), "the open data connection still flows");
}

/// Two control connections of one client each keep their own pending
/// data connection: one's announcement replaces nothing of the other's.
#[test]
fn each_control_connection_has_its_own_expectation() {
    let mut p = control(VIP_NAT);
    let other = CPORT + 1;
    tx(&mut p, &tcp(CLIENT, other, VIP_NAT, 21, SYN, 300, 0, b""));
    tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, other, SYN | ACK, 7000, 301, b""),
    );
    let pasv = |port: u16| {
        format!(
            "227 Entering Passive Mode (198,18,2,31,{},{}).\r\n",
            port >> 8,
            port & 0xff
        )
    };
    let (a, b) = (pasv(50_001), pasv(50_002));
    tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, CPORT, ACK | PSH, 5001, 107, a.as_bytes()),
    );
    tx(
        &mut p,
        &tcp(RIP, 21, CLIENT, other, ACK | PSH, 7001, 301, b.as_bytes()),
    );
    assert_eq!(p.conns().len(), 4);
    for port in [50_001, 50_002] {
        let s = tx(&mut p, &tcp(CLIENT, 41000, VIP_NAT, port, SYN, 1, 0, b""));
        assert_eq!(s.dst, (RIP, port));
    }
}
