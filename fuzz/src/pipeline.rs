//! The pipeline over sequences of frames (targets `pipeline` and `icmp`).
//!
//! The input is a list of [`Step`]s: a frame of some flow (client → VIP or
//! the flow's real server → client, with flags, payload and an optional
//! raw mutation), an ICMP error quoting a flow's packet, a raw frame, time
//! passing (with expiry), or a change of the service table. Flows are
//! numbered; a flow's real server is learnt from what the director sent
//! (NAT rewrites the destination), so replies and FTP data connections
//! reach the states they need. After every frame the target checks:
//!
//! - no panic (libFuzzer reports one as a crash);
//! - accounting: `rx` counts every frame, each `Drop(reason)` is one count
//!   of that reason, each `NotOurs` one `not_ours`, each `Tx` one of
//!   `tx_dr tx_tun tx_nat tx_replies icmp_sent icmp_relayed`, and nothing is
//!   `Handed` (one worker, one port);
//! - every transmitted frame's IPv4 header checksum is right, and its L4
//!   checksum (TCP, UDP, ICMP; the inner packet of a tunnel) is right when
//!   the frame that came in had right ones (the pipeline verifies no L4
//!   checksum: a corrupt frame stays corrupt), by etherparse's full
//!   computation;
//! - a NAT reply (`tx_replies`) leaves from a NAT service's VIP.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::{DropReason, Frame, Tick, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};
use xdpvs::stats::Counter;
use xdpvs::wire::checksum;

const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const HEADROOM: usize = 256;
const MTU: u16 = 1500;
/// Steps per input at most (each is one frame or one action).
const MAX_STEPS: usize = 96;

/// The services: (protocol, VIP, scheduler, persistence, reals).
struct Svc {
    proto: Protocol,
    vip: SocketAddr,
    persistent: u32,
    reals: &'static [(&'static str, Forward)],
}

const SERVICES: &[Svc] = &[
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 1], 80),
        persistent: 0,
        reals: &[
            ("198.18.2.11:80", Forward::Dr),
            ("198.18.2.12:80", Forward::Dr),
        ],
    },
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 2], 80),
        persistent: 0,
        reals: &[
            ("198.18.2.21:80", Forward::Tun),
            ("198.18.2.22:80", Forward::Tun),
        ],
    },
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 3], 80),
        persistent: 0,
        reals: &[
            ("198.18.2.31:8080", Forward::Nat),
            ("198.18.2.32:8080", Forward::Nat),
        ],
    },
    Svc {
        proto: Protocol::Udp,
        vip: sa([198, 18, 1, 3], 53),
        persistent: 0,
        reals: &[("198.18.2.31:5353", Forward::Nat)],
    },
    // Persistent, all ports (DR keeps the port).
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 4], 0),
        persistent: 60,
        reals: &[
            ("198.18.2.41:0", Forward::Dr),
            ("198.18.2.42:0", Forward::Dr),
        ],
    },
    // Persistent NAT.
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 5], 443),
        persistent: 30,
        reals: &[
            ("198.18.2.51:443", Forward::Nat),
            ("198.18.2.52:443", Forward::Nat),
        ],
    },
    // FTP (the helper is on for port 21).
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 6], 21),
        persistent: 0,
        reals: &[("198.18.2.61:21", Forward::Nat)],
    },
    // FTP, persistent port 0 NAT (the helper covers every port).
    Svc {
        proto: Protocol::Tcp,
        vip: sa([198, 18, 1, 7], 0),
        persistent: 120,
        reals: &[("198.18.2.71:0", Forward::Nat)],
    },
];

const fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(
        std::net::IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        port,
    )
}

fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0, o[0], o[1], o[2], o[3]]
}

/// The director the pipeline runs against (its MTU low enough that large
/// payloads reach "fragmentation needed").
pub fn table() -> ServiceTable {
    let mut t = table_empty();
    for s in SERVICES {
        let mut c = ServiceConfig::new(s.proto, s.vip, "rr");
        c.persistence_timeout = s.persistent;
        t.add_service(&c).unwrap();
        for (addr, fwd) in s.reals {
            let r = real(addr, *fwd, 1);
            t.add_dest(s.proto, s.vip, &r).unwrap();
            if let std::net::IpAddr::V4(ip) = r.addr.ip() {
                t.set_next_hop(r.addr.ip(), 0, mac_of(ip));
            }
        }
    }
    t
}

/// The director with no services yet.
pub fn table_empty() -> ServiceTable {
    ServiceTable::new(
        vec![Port {
            mac: DIRECTOR_MAC,
            mtu: MTU,
            complete_checksums: false,
        }],
        Some(Ipv4Addr::new(198, 18, 2, 2)),
        Timeouts::default(),
    )
}

fn real(addr: &str, forward: Forward, weight: u32) -> RealConfig {
    RealConfig::new(addr.parse().unwrap(), forward, weight)
}

/// What a step's payload is: bytes, or an FTP line built from the flow's
/// own addresses (so the helper's address checks pass).
#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// `227 Entering Passive Mode (...)` naming the real server (from the
    /// real server) with `port`.
    Pasv(u16),
    /// `229 Entering Extended Passive Mode (|||port|)`.
    Epsv(u16),
    /// `PORT` with the client's address.
    Port(u16),
    /// `EPRT |1|client|port|`.
    Eprt(u16),
    /// `n` bytes of filler.
    Fill(u16),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Packet {
    /// Flow: service (mod the services), client (low 3 bits).
    pub flow: u8,
    /// From the flow's real server (a reply) rather than the client.
    pub reply: bool,
    /// TCP flags (UDP services ignore them).
    pub flags: u8,
    /// Resend the previous segment's sequence number (a retransmission).
    pub retransmit: bool,
    /// The destination port, for port-0 services and FTP data connections:
    /// None = the service's (80 for port 0).
    pub port: Option<u16>,
    pub payload: Payload,
    pub df: bool,
    /// Byte changes applied to the finished frame (offset, xor).
    pub mutate: Vec<(u16, u8)>,
    /// Send it as a fragment: (offset in 8-byte units, more fragments).
    pub fragment: Option<(u16, bool)>,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Icmp {
    /// The flow whose packet is quoted.
    pub flow: u8,
    /// Quote the reply (as a client's router would send it about a
    /// reply) rather than the client's packet (as a real server's side
    /// would about a forwarded one).
    pub about_reply: bool,
    pub kind: u8,
    pub code: u8,
    /// Bytes of the quoted packet's L4 header and payload (truncation).
    pub quoted: u8,
    pub mtu: u16,
    pub mutate: Vec<(u16, u8)>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    Packet(Packet),
    Icmp(Icmp),
    Raw(Vec<u8>),
    /// Seconds pass; expiry runs.
    Tick(u8),
    /// A service-table change, published as a new snapshot: `what` picks
    /// it (quiesce, remove or re-add a real server, clear a next hop).
    Edit {
        what: u8,
        service: u8,
    },
}

/// Addresses of a flow, learnt as the director forwards it.
#[derive(Debug, Clone, Copy, Default)]
struct FlowState {
    /// The real server (NAT: address and port the director sent to).
    real: Option<(Ipv4Addr, u16)>,
    seq: [u32; 2],
    last_seq: [u32; 2],
}

struct Harness {
    table: ServiceTable,
    p: Pipeline,
    now: Tick,
    flows: HashMap<(usize, u8, u16), FlowState>,
    /// Verdict tallies, compared with the counters after each frame.
    frames: u64,
    tx: u64,
    not_ours: u64,
    drops: u64,
    buf: Vec<u8>,
}

fn client(c: u8) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(198, 18, 0, 10 + (c & 3)),
        40000 + u16::from(c >> 2 & 1),
    )
}

/// A TCP/UDP frame, checksums right.
#[allow(clippy::too_many_arguments)]
fn l4_frame(
    proto: Protocol,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    df: bool,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = match proto {
        Protocol::Tcp => 20,
        Protocol::Udp => 8,
    } + payload.len();
    let mut f = Vec::with_capacity(34 + l4_len);
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes()[2..]);
    ip[6] = if df { 0x40 } else { 0 };
    ip[8] = 64;
    ip[9] = match proto {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    };
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let start = f.len();
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    match proto {
        Protocol::Tcp => {
            f.extend_from_slice(&seq.to_be_bytes());
            f.extend_from_slice(&(seq ^ 0x5555_0000).to_be_bytes());
            f.push(0x50);
            f.push(flags);
            f.extend_from_slice(&64240u16.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0]);
        }
        Protocol::Udp => {
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
    }
    f.extend_from_slice(payload);
    let ph = checksum::pseudo_header_v4(src.0, dst.0, ip[9], l4_len as u16);
    let mut c = checksum::fold(checksum::combine(ph, checksum::sum(&f[start..])));
    c = !c;
    let at = start + if proto == Protocol::Tcp { 16 } else { 6 };
    if proto == Protocol::Udp && c == 0 {
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

fn ftp_text(p: &Payload, client: Ipv4Addr, real: Ipv4Addr) -> Vec<u8> {
    let dotted = |a: Ipv4Addr, port: u16| {
        let o = a.octets();
        format!(
            "{},{},{},{},{},{}",
            o[0],
            o[1],
            o[2],
            o[3],
            port >> 8,
            port & 0xff
        )
    };
    match *p {
        Payload::Bytes(ref b) => b.clone(),
        Payload::Pasv(port) => {
            format!("227 Entering Passive Mode ({}).\r\n", dotted(real, port)).into_bytes()
        }
        Payload::Epsv(port) => {
            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").into_bytes()
        }
        Payload::Port(port) => format!("PORT {}\r\n", dotted(client, port)).into_bytes(),
        Payload::Eprt(port) => format!("EPRT |1|{client}|{port}|\r\n").into_bytes(),
        Payload::Fill(n) => vec![b'x'; usize::from(n % 1600)],
    }
}

fn mutate(f: &mut [u8], m: &[(u16, u8)]) {
    if f.is_empty() {
        return;
    }
    for &(at, x) in m.iter().take(8) {
        let n = f.len();
        f[usize::from(at) % n] ^= x;
    }
}

/// Whether the IPv4 header (`Some`) and the L4 checksum (`Some(Some)`,
/// `None` where none can be checked: a fragment, UDP without one, other
/// protocols) are right; recurses into IPIP.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Sums {
    ip: bool,
    l4: Option<bool>,
    /// Protocol of the (innermost) packet.
    proto: u8,
}

fn sums(frame: &[u8]) -> Option<Sums> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    sums_of(&s)
}

fn sums_of(s: &SlicedPacket<'_>) -> Option<Sums> {
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        return None;
    };
    let h = ip.header().to_header();
    let ip_ok = h.header_checksum == h.calc_header_checksum();
    if h.protocol == etherparse::IpNumber::IPV4 {
        let inner = SlicedPacket::from_ip(ip.payload().payload).ok()?;
        let i = sums_of(&inner)?;
        return Some(Sums {
            ip: ip_ok && i.ip,
            l4: i.l4,
            proto: i.proto,
        });
    }
    if ip.is_payload_fragmented() {
        return Some(Sums {
            ip: ip_ok,
            l4: None,
            proto: h.protocol.0,
        });
    }
    let l4 = match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            Some(t.to_header().calc_checksum_ipv4(&h, t.payload()).ok()? == t.checksum())
        }
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            Some(u.to_header().calc_checksum_ipv4(&h, u.payload()).ok()? == u.checksum())
        }
        Some(TransportSlice::Icmpv4(i)) => Some(checksum::checksum(i.slice()) == 0),
        _ => None,
    };
    Some(Sums {
        ip: ip_ok,
        l4,
        proto: h.protocol.0,
    })
}

fn tx_sum(p: &Pipeline) -> u64 {
    let s = p.stats();
    [
        Counter::TxDr,
        Counter::TxTun,
        Counter::TxNat,
        Counter::TxReplies,
        Counter::IcmpSent,
        Counter::IcmpRelayed,
    ]
    .iter()
    .map(|&c| s.get(c))
    .sum()
}

impl Harness {
    fn new() -> Harness {
        let table = table();
        let p = Pipeline::new(256, Arc::new(table.snapshot()), 0);
        Harness {
            table,
            p,
            now: 1,
            flows: HashMap::new(),
            frames: 0,
            tx: 0,
            not_ours: 0,
            drops: 0,
            buf: vec![0u8; 4096 + HEADROOM],
        }
    }

    /// Runs one frame and checks every invariant; returns what was sent.
    fn frame(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        if input.len() > 4096 {
            return None;
        }
        let before_replies = self.p.stats().get(Counter::TxReplies);
        let before_drops: Vec<u64> = DropReason::ALL
            .iter()
            .map(|&r| self.p.stats().dropped(r))
            .collect();
        self.buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
        let mut f = Frame::new(&mut self.buf, HEADROOM, input.len(), 0);
        let v = self.p.process(&mut f, self.now);
        self.frames += 1;
        let out = match v {
            Verdict::Tx { port, len } => {
                assert_eq!(port, 0, "one port");
                assert_eq!(len, f.len(), "Tx length is the frame's");
                self.tx += 1;
                Some(f.data().to_vec())
            }
            Verdict::Drop(r) => {
                self.drops += 1;
                let i = DropReason::ALL.iter().position(|&x| x == r).unwrap();
                assert_eq!(
                    self.p.stats().dropped(r),
                    before_drops[i] + 1,
                    "a Drop({r:?}) is counted as one"
                );
                None
            }
            Verdict::NotOurs => {
                self.not_ours += 1;
                None
            }
            Verdict::Handed => panic!("Handed with one worker and one port"),
        };
        let s = self.p.stats();
        assert_eq!(s.get(Counter::Rx), self.frames, "rx counts every frame");
        assert_eq!(s.total_drops(), self.drops, "drops counted");
        assert_eq!(s.get(Counter::NotOurs), self.not_ours, "not_ours counted");
        assert_eq!(tx_sum(&self.p), self.tx, "each Tx counted once by kind");
        assert_eq!(
            self.frames,
            self.tx + self.drops + self.not_ours,
            "in = tx + dropped + not ours"
        );
        if let Some(out) = &out {
            let o = sums(out).expect("a transmitted frame is IPv4 that etherparse parses");
            assert!(o.ip, "IPv4 header checksum of a transmitted frame");
            let i = sums(input);
            let generated_icmp = o.proto == 1 && i.is_some_and(|i| i.proto != 1);
            let input_ok = i.is_some_and(|i| i.ip && i.l4 != Some(false));
            if generated_icmp || input_ok {
                assert_ne!(o.l4, Some(false), "L4 checksum of a transmitted frame");
            }
            if self.p.stats().get(Counter::TxReplies) > before_replies {
                let s = SlicedPacket::from_ethernet(out).unwrap();
                let Some(NetSlice::Ipv4(ip)) = &s.net else {
                    unreachable!("checked above")
                };
                let src = ip.header().source_addr();
                assert!(
                    SERVICES
                        .iter()
                        .any(|s| s.vip.ip() == src && s.reals.iter().any(|r| r.1 == Forward::Nat)),
                    "a NAT reply leaves from a NAT VIP, not {src}"
                );
            }
        }
        out
    }

    fn packet(&mut self, pk: &Packet) {
        let si = usize::from(pk.flow >> 3) % SERVICES.len();
        let svc = &SERVICES[si];
        let (caddr, cport) = client(pk.flow & 7);
        let vport = match (pk.port, svc.vip.port()) {
            (Some(p), _) => p,
            (None, 0) => 80,
            (None, p) => p,
        };
        let std::net::IpAddr::V4(vip) = svc.vip.ip() else {
            unreachable!()
        };
        let key = (si, pk.flow & 7, vport);
        let mut st = self.flows.get(&key).copied().unwrap_or_default();
        let dir = usize::from(pk.reply);
        let default_real = {
            let std::net::IpAddr::V4(r) = svc.reals[0].0.parse::<SocketAddr>().unwrap().ip() else {
                unreachable!()
            };
            (r, vport)
        };
        let real = st.real.unwrap_or(default_real);
        let payload = ftp_text(&pk.payload, caddr, real.0);
        let seq = if pk.retransmit {
            st.last_seq[dir]
        } else {
            st.seq[dir]
        };
        let (src, dst) = if pk.reply {
            // Active FTP: the real server connects from port 20.
            let sport = if matches!(pk.payload, Payload::Port(_) | Payload::Eprt(_)) {
                20
            } else {
                real.1
            };
            ((real.0, sport), (caddr, cport))
        } else {
            ((caddr, cport), (vip, vport))
        };
        let mut f = l4_frame(svc.proto, src, dst, pk.flags, seq, pk.df, &payload);
        if let Some((off, more)) = pk.fragment {
            let v = (off & 0x1fff) | if more { 0x2000 } else { 0 };
            f[20..22].copy_from_slice(&v.to_be_bytes());
            fix_ip(&mut f);
        }
        mutate(&mut f, &pk.mutate);
        if !pk.retransmit {
            st.last_seq[dir] = seq;
            st.seq[dir] = seq.wrapping_add(payload.len() as u32 + u32::from(pk.flags & 3 != 0));
        }
        if let Some(out) = self.frame(&f)
            && !pk.reply
            && out.len() >= 38
            && out[23] == f.get(23).copied().unwrap_or(0)
            && out[12..14] == [8, 0]
            && out[23] != 4
        {
            // NAT: learn where the director sent this flow.
            let d = Ipv4Addr::from(<[u8; 4]>::try_from(&out[30..34]).unwrap());
            let ihl = usize::from(out[14] & 15) * 4;
            if d != vip && out.len() >= 14 + ihl + 4 {
                let port = u16::from_be_bytes([out[14 + ihl + 2], out[14 + ihl + 3]]);
                st.real = Some((d, port));
            }
        }
        self.flows.insert(key, st);
    }

    fn icmp(&mut self, ic: &Icmp) {
        let si = usize::from(ic.flow >> 3) % SERVICES.len();
        let svc = &SERVICES[si];
        let (caddr, cport) = client(ic.flow & 7);
        let vport = if svc.vip.port() == 0 {
            80
        } else {
            svc.vip.port()
        };
        let std::net::IpAddr::V4(vip) = svc.vip.ip() else {
            unreachable!()
        };
        let st = self
            .flows
            .get(&(si, ic.flow & 7, vport))
            .copied()
            .unwrap_or_default();
        let real = st.real.unwrap_or((
            match svc.reals[0].0.parse::<SocketAddr>().unwrap().ip() {
                std::net::IpAddr::V4(r) => r,
                _ => unreachable!(),
            },
            vport,
        ));
        // The quoted packet, and who reports it to whom.
        let (quoted, from, to) = if ic.about_reply {
            // A reply (VIP → client, as the director sent it) that a
            // router on the client's side could not deliver.
            let q = l4_frame(
                svc.proto,
                (vip, vport),
                (caddr, cport),
                0x10,
                st.seq[1],
                true,
                b"",
            );
            (q, Ipv4Addr::new(198, 18, 0, 1), vip)
        } else {
            // A forwarded packet (client → real server) that the real
            // server's side could not deliver.
            let q = l4_frame(svc.proto, (caddr, cport), real, 0x10, st.seq[0], true, b"");
            (q, real.0, caddr)
        };
        let qlen = (20 + usize::from(ic.quoted)).min(quoted.len() - 14);
        let quoted = &quoted[14..14 + qlen];
        let kind = match ic.kind % 4 {
            0 => 3,
            1 => 11,
            2 => 12,
            _ => ic.kind,
        };
        let mut icmp = vec![kind, ic.code % 16, 0, 0, 0, 0];
        icmp.extend_from_slice(&ic.mtu.to_be_bytes());
        icmp.extend_from_slice(quoted);
        let c = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&DIRECTOR_MAC);
        f.extend_from_slice(&ROUTER_MAC);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 1;
        ip[12..16].copy_from_slice(&from.octets());
        ip[16..20].copy_from_slice(&to.octets());
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        mutate(&mut f, &ic.mutate);
        self.frame(&f);
    }

    fn edit(&mut self, what: u8, service: u8) {
        let svc = &SERVICES[usize::from(service) % SERVICES.len()];
        let (addr, fwd) = svc.reals[usize::from(what >> 2) % svc.reals.len()];
        let r = real(addr, fwd, 1);
        // Refusals (already there, not there) are fine: the table is unchanged.
        let _ = match what & 3 {
            0 => self
                .table
                .edit_dest(svc.proto, svc.vip, &real(addr, fwd, 0)),
            1 => self.table.del_dest(svc.proto, svc.vip, r.addr),
            2 => self.table.add_dest(svc.proto, svc.vip, &r),
            _ => {
                if self.table.clear_next_hop(r.addr.ip()) {
                    Ok(())
                } else {
                    let std::net::IpAddr::V4(ip) = r.addr.ip() else {
                        unreachable!()
                    };
                    self.table.set_next_hop(r.addr.ip(), 0, mac_of(ip));
                    Ok(())
                }
            }
        };
        let next = self.table.next_snapshot_at(self.p.snapshot(), self.now);
        self.p.set_snapshot(Arc::new(next));
    }
}

fn fix_ip(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Runs the steps.
pub fn run_steps(steps: &[Step]) {
    let mut h = Harness::new();
    for s in steps.iter().take(MAX_STEPS) {
        match s {
            Step::Packet(p) => h.packet(p),
            Step::Icmp(i) => h.icmp(i),
            Step::Raw(b) => {
                h.frame(b);
            }
            Step::Tick(n) => {
                h.now += Tick::from(*n);
                h.p.expire_round(h.now);
            }
            Step::Edit { what, service } => h.edit(*what, *service),
        }
    }
}

/// The `pipeline` target.
pub fn run(data: &[u8]) {
    if let Ok(steps) = Vec::<Step>::arbitrary_take_rest(Unstructured::new(data)) {
        run_steps(&steps);
    }
}
