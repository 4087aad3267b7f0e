//! The FTP helper over a control stream (target `ftp`).
//!
//! A NAT FTP service's real server sends a stream of reply lines (227
//! naming itself, 229, other text), cut into segments at arbitrary points;
//! some segments are sent again later (retransmissions). Each segment the
//! director forwards is compared with a reference:
//!
//! - the payload: the helper looks at the complete lines of the segment
//!   (at its start or after a `\n`, ending in `\n`, at most
//!   [`MAX_LINE`] bytes) and acts on the first that is a 227 or 229 reply;
//!   a 227 naming the real server has its address replaced by the VIP's.
//!   The generated text makes "is a 227/229 line" a question of where the
//!   line starts, so the reference needs no parser of its own;
//! - the sequence number: the sender's, shifted by the sum of the size
//!   changes of the rewritten segments before it (a first transmission),
//!   checked for retransmissions where the helper's two remembered deltas
//!   make it exact (after the second-to-last rewritten segment: IPVS keeps
//!   no more);
//! - the client's acknowledgement of each segment, mapped back to the
//!   sender's numbering;
//! - both frames' checksums (etherparse).

use std::net::Ipv4Addr;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xdpvs::app::ftp::MAX_LINE;
use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::{Frame, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};
use xdpvs::wire::checksum;

const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 6);
const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 61);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CPORT: u16 = 40000;
const HEADROOM: usize = 256;

#[derive(Arbitrary, Debug, Clone)]
pub enum Line {
    Pasv(u16),
    Epsv(u16),
    /// `len` letters and spaces (no digits: no 227/229 inside a line).
    Text(u8, u8),
    /// A line longer than the helper looks at.
    Long(u16),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    pub server_isn: u32,
    pub client_isn: u32,
    pub lines: Vec<Line>,
    /// Segment lengths (1 + n % 700), in order, repeated as needed.
    pub cuts: Vec<u16>,
    /// After segment k: 0 = nothing, else retransmit segment k - (n - 1) % (k + 1).
    pub resend: Vec<u8>,
}

fn table() -> ServiceTable {
    let mut t = ServiceTable::new(
        vec![Port {
            mac: DIRECTOR_MAC,
            mtu: 1500,
            complete_checksums: false,
        }],
        None,
        Timeouts::default(),
    );
    let vip = std::net::SocketAddr::new(VIP.into(), 21);
    t.add_service(&ServiceConfig::new(Protocol::Tcp, vip, "rr"))
        .unwrap();
    t.add_dest(
        Protocol::Tcp,
        vip,
        &RealConfig::new(std::net::SocketAddr::new(RIP.into(), 21), Forward::Nat, 1),
    )
    .unwrap();
    let o = RIP.octets();
    t.set_next_hop(RIP.into(), 0, [2, 0, o[0], o[1], o[2], o[3]]);
    t
}

fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = 20 + payload.len();
    let mut f = Vec::with_capacity(34 + l4_len);
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let start = f.len();
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.push(0x50);
    f.push(flags);
    f.extend_from_slice(&64240u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    let ph = checksum::pseudo_header_v4(src.0, dst.0, 6, l4_len as u16);
    let c = !checksum::fold(checksum::combine(ph, checksum::sum(&f[start..])));
    f[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// What came out: (src, dst, seq, ack, payload), checksums verified.
type Seg = ((Ipv4Addr, u16), (Ipv4Addr, u16), u32, u32, Vec<u8>);

fn seg(frame: &[u8]) -> Seg {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses what was sent");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
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
    let th = t.to_header();
    assert_eq!(
        th.checksum,
        th.calc_checksum_ipv4(&h, t.payload()).unwrap(),
        "TCP checksum"
    );
    (
        (h.source.into(), t.source_port()),
        (h.destination.into(), t.destination_port()),
        t.sequence_number(),
        t.acknowledgment_number(),
        t.payload().to_vec(),
    )
}

struct Run {
    p: Pipeline,
    buf: Vec<u8>,
}

impl Run {
    fn send(&mut self, f: &[u8]) -> Seg {
        self.buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut fr = Frame::new(&mut self.buf, HEADROOM, f.len(), 0);
        let v = self.p.process(&mut fr, 1);
        assert!(matches!(v, Verdict::Tx { .. }), "forwarded: {v:?}");
        seg(fr.data())
    }
}

fn pasv_line(port: u16) -> Vec<u8> {
    let o = RIP.octets();
    format!(
        "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
        o[0],
        o[1],
        o[2],
        o[3],
        port >> 8,
        port & 0xff
    )
    .into_bytes()
}

fn stream(lines: &[Line]) -> Vec<u8> {
    let mut s = Vec::new();
    for l in lines.iter().take(64) {
        match *l {
            Line::Pasv(p) => s.extend_from_slice(&pasv_line(p | 1)),
            Line::Epsv(p) => s.extend_from_slice(
                format!("229 Entering Extended Passive Mode (|||{}|)\r\n", p | 1).as_bytes(),
            ),
            Line::Text(n, seed) => {
                for i in 0..n {
                    let b = seed.wrapping_add(i.wrapping_mul(7)) % 27;
                    s.push(if b == 26 { b' ' } else { b'a' + b });
                }
                s.extend_from_slice(b"\r\n");
            }
            Line::Long(n) => {
                s.extend(std::iter::repeat_n(b'y', MAX_LINE + usize::from(n % 64)));
                s.push(b'\n');
            }
        }
        if s.len() > 6000 {
            break;
        }
    }
    s
}

/// The reference rewrite of one segment: the payload the client should
/// get and the size change.
fn reference(seg: &[u8]) -> (Vec<u8>, i32) {
    let mut start = 0;
    while start < seg.len() {
        let Some(nl) = seg[start..].iter().position(|&b| b == b'\n') else {
            break;
        };
        if nl <= MAX_LINE {
            let line = &seg[start..start + nl];
            if line.starts_with(b"229 ") {
                break;
            }
            if line.starts_with(b"227 ") {
                let o = RIP.octets();
                let from = format!("{},{},{},{}", o[0], o[1], o[2], o[3]);
                let v = VIP.octets();
                let to = format!("{},{},{},{}", v[0], v[1], v[2], v[3]);
                // Generated 227 lines name the real server right after '('.
                let at = start + line.iter().position(|&b| b == b'(').unwrap() + 1;
                assert_eq!(&seg[at..at + from.len()], from.as_bytes());
                let mut out = seg[..at].to_vec();
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(&seg[at + from.len()..]);
                return (out, to.len() as i32 - from.len() as i32);
            }
        }
        start += nl + 1;
    }
    (seg.to_vec(), 0)
}

pub fn run_input(inp: &Input) {
    let data = stream(&inp.lines);
    if data.is_empty() {
        return;
    }
    let mut segs: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < data.len() {
        let cut = inp
            .cuts
            .get(k % inp.cuts.len().max(1))
            .copied()
            .unwrap_or(1400);
        let len = (1 + usize::from(cut) % 700).min(data.len() - at);
        segs.push((at, len));
        at += len;
        k += 1;
    }
    let mut r = Run {
        p: Pipeline::new(64, Arc::new(table().snapshot()), 0),
        buf: vec![0u8; 2048 + HEADROOM],
    };
    let c = (CLIENT, CPORT);
    let s = (RIP, 21);
    let sisn = inp.server_isn;
    let cisn = inp.client_isn;
    // The handshake.
    let o = r.send(&tcp(c, (VIP, 21), 0x02, cisn, 0, b""));
    assert_eq!(o.1, s, "to the real server");
    let o = r.send(&tcp(s, c, 0x12, sisn, cisn.wrapping_add(1), b""));
    assert_eq!(o.0, (VIP, 21), "a reply leaves from the VIP");
    r.send(&tcp(
        c,
        (VIP, 21),
        0x10,
        cisn.wrapping_add(1),
        sisn.wrapping_add(1),
        b"",
    ));
    let base = sisn.wrapping_add(1);
    // Offsets (into `data`) of the rewritten segments, with their changes.
    let mut resized: Vec<(usize, i32)> = Vec::new();
    let shift = |resized: &[(usize, i32)], off: usize| -> i32 {
        resized
            .iter()
            .filter(|(o, _)| *o < off)
            .map(|(_, d)| d)
            .sum()
    };
    let send_seg = |r: &mut Run, resized: &mut Vec<(usize, i32)>, i: usize, first: bool| {
        let (off, len) = segs[i];
        let bytes = &data[off..off + len];
        let seq = base.wrapping_add(off as u32);
        let out = r.send(&tcp(s, c, 0x18, seq, cisn.wrapping_add(1), bytes));
        assert_eq!(out.0, (VIP, 21), "from the VIP");
        assert_eq!(out.1, c, "to the client");
        let (want, diff) = reference(bytes);
        assert_eq!(
            out.4, want,
            "segment {i} at {off} (+{len}) rewritten as the reference"
        );
        let exact = first || resized.len() < 2 || off > resized[resized.len() - 2].0;
        if exact {
            let want_seq = seq.wrapping_add(shift(resized, off) as u32);
            assert_eq!(
                out.2, want_seq,
                "segment {i} at {off}: sequence number shifted"
            );
        }
        if first && diff != 0 {
            resized.push((off, diff));
        }
        if first {
            // The client acknowledges what it got; the real server must
            // see its own numbering.
            let end = out.2.wrapping_add(out.4.len() as u32);
            let a = r.send(&tcp(c, (VIP, 21), 0x10, cisn.wrapping_add(1), end, b""));
            assert_eq!(
                a.3,
                seq.wrapping_add(len as u32),
                "segment {i}: acknowledgement mapped back"
            );
        }
    };
    for i in 0..segs.len().min(128) {
        send_seg(&mut r, &mut resized, i, true);
        let n = inp.resend.get(i).copied().unwrap_or(0);
        if n != 0 {
            let back = usize::from(n - 1) % (i + 1);
            send_seg(&mut r, &mut resized, i - back, false);
        }
    }
}

/// The `ftp` target.
pub fn run(data: &[u8]) {
    if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        run_input(&inp);
    }
}
