//! Test equipment shared by the pipeline tests: packets built with
//! etherparse (the oracle), and a small director setup.
#![allow(dead_code)]

pub mod faultio;
pub mod memio;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use etherparse::{IpDscp, IpEcn, IpNumber, Ipv4Header, Ipv4Options, TcpHeader, UdpHeader};
use xdpvs::config::{Forward, Protocol, RealConfig, ServiceConfig};
use xdpvs::conn::Timeouts;
use xdpvs::frame::{Frame, Tick, Verdict};
use xdpvs::pipeline::Pipeline;
use xdpvs::service::{Port, ServiceTable};

pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
pub const TUNNEL_SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const VIP_DR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const VIP_TUN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const VIP_NAT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 3);
pub const MTU: u16 = 1500;
pub const HEADROOM: usize = 256;

/// The MAC the director uses for real server `ip`.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0, o[0], o[1], o[2], o[3]]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp { flags: u8, seq: u32 },
    Udp { checksum: bool },
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

/// A packet to build. Defaults: client → VIP_DR:80 TCP SYN from the router.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub df: bool,
    pub id: u16,
    pub options: Vec<u8>,
    pub l4: L4,
    pub payload: Vec<u8>,
}

impl Default for Pkt {
    fn default() -> Self {
        Pkt {
            src_mac: ROUTER_MAC,
            dst_mac: DIRECTOR_MAC,
            vlan: None,
            src: CLIENT,
            dst: VIP_DR,
            sport: 40000,
            dport: 80,
            ttl: 63,
            dscp: 10,
            ecn: 1,
            df: true,
            id: 0x1234,
            options: Vec::new(),
            l4: L4::Tcp {
                flags: SYN,
                seq: 1000,
            },
            payload: Vec::new(),
        }
    }
}

impl Pkt {
    pub fn ip_header(&self) -> Ipv4Header {
        let l4_len = match self.l4 {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } => 8,
        } + self.payload.len();
        let proto = match self.l4 {
            L4::Tcp { .. } => IpNumber::TCP,
            L4::Udp { .. } => IpNumber::UDP,
        };
        let mut ip =
            Ipv4Header::new(0, self.ttl, proto, self.src.octets(), self.dst.octets()).unwrap();
        ip.options = Ipv4Options::try_from(&self.options[..]).unwrap();
        ip.set_payload_len(l4_len).unwrap();
        ip.dscp = IpDscp::try_new(self.dscp).unwrap();
        ip.ecn = IpEcn::try_new(self.ecn).unwrap();
        ip.dont_fragment = self.df;
        ip.identification = self.id;
        ip.header_checksum = ip.calc_header_checksum();
        ip
    }

    /// The IP packet (no Ethernet header).
    pub fn ip_bytes(&self) -> Vec<u8> {
        let ip = self.ip_header();
        let mut out = ip.to_bytes().to_vec();
        match self.l4 {
            L4::Tcp { flags, seq } => {
                let mut t = TcpHeader::new(self.sport, self.dport, seq, 64240);
                t.syn = flags & SYN != 0;
                t.fin = flags & FIN != 0;
                t.rst = flags & RST != 0;
                t.psh = flags & PSH != 0;
                t.ack = flags & ACK != 0;
                if t.ack {
                    t.acknowledgment_number = 77;
                }
                t.checksum = t.calc_checksum_ipv4(&ip, &self.payload).unwrap();
                out.extend_from_slice(&t.to_bytes());
            }
            L4::Udp { checksum } => {
                let u = if checksum {
                    UdpHeader::with_ipv4_checksum(self.sport, self.dport, &ip, &self.payload)
                        .unwrap()
                } else {
                    UdpHeader::without_ipv4_checksum(self.sport, self.dport, self.payload.len())
                        .unwrap()
                };
                out.extend_from_slice(&u.to_bytes());
            }
        }
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn l2(&self, ethertype: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        if let Some(tci) = self.vlan {
            out.extend_from_slice(&0x8100u16.to_be_bytes());
            out.extend_from_slice(&tci.to_be_bytes());
        }
        out.extend_from_slice(&ethertype.to_be_bytes());
        out
    }

    /// The whole Ethernet frame.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.l2(0x0800);
        out.extend_from_slice(&self.ip_bytes());
        out
    }
}

pub fn real(addr: &str, forward: Forward, weight: u32) -> RealConfig {
    RealConfig {
        addr: addr.parse().unwrap(),
        forward,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        health: Default::default(),
    }
}

pub fn service(proto: Protocol, vip: &str, scheduler: &str) -> ServiceConfig {
    ServiceConfig::new(proto, vip.parse().unwrap(), scheduler)
}

/// The test director: one service per forwarding mode, every real server's
/// MAC resolved.
/// - TCP VIP_DR:80 rr → .11, .12, .13 (DR)
/// - TCP VIP_TUN:80 rr → .21, .22 (TUN)
/// - TCP VIP_NAT:80 rr → .31:8080, .32:8080 (NAT)
/// - UDP VIP_NAT:53 rr → .31:5353 (NAT)
pub fn director() -> ServiceTable {
    director_with(false)
}

/// [`director`], its port finishing partial checksums or not
/// (`Port::complete_checksums`).
pub fn director_with(complete_checksums: bool) -> ServiceTable {
    let mut t = empty_director_with(complete_checksums);
    type Reals<'a> = &'a [(&'a str, Forward)];
    let layout: [(Protocol, &str, Reals<'_>); 4] = [
        (
            Protocol::Tcp,
            "198.18.1.1:80",
            &[
                ("198.18.2.13:80", Forward::Dr),
                ("198.18.2.12:80", Forward::Dr),
                ("198.18.2.11:80", Forward::Dr),
            ],
        ),
        (
            Protocol::Tcp,
            "198.18.1.2:80",
            &[
                ("198.18.2.22:80", Forward::Tun),
                ("198.18.2.21:80", Forward::Tun),
            ],
        ),
        (
            Protocol::Tcp,
            "198.18.1.3:80",
            &[
                ("198.18.2.32:8080", Forward::Nat),
                ("198.18.2.31:8080", Forward::Nat),
            ],
        ),
        (
            Protocol::Udp,
            "198.18.1.3:53",
            &[("198.18.2.31:5353", Forward::Nat)],
        ),
    ];
    for (proto, vip, reals) in layout {
        t.add_service(&service(proto, vip, "rr")).unwrap();
        let vip: SocketAddr = vip.parse().unwrap();
        for (addr, fwd) in reals {
            let r = real(addr, *fwd, 1);
            t.add_dest(proto, vip, &r).unwrap();
            if let std::net::IpAddr::V4(ip) = r.addr.ip() {
                t.set_next_hop(r.addr.ip(), 0, mac_of(ip));
            }
        }
    }
    t
}

/// The director with no service yet: one port, a tunnel source, IPVS's
/// default timeouts.
pub fn empty_director() -> ServiceTable {
    empty_director_with(false)
}

/// [`empty_director`], its port finishing partial checksums or not.
pub fn empty_director_with(complete_checksums: bool) -> ServiceTable {
    ServiceTable::new(
        vec![Port {
            mac: DIRECTOR_MAC,
            mtu: MTU,
            complete_checksums,
        }],
        Some(TUNNEL_SRC),
        Timeouts::default(),
    )
}

pub fn pipeline(t: &ServiceTable, capacity: u32) -> Pipeline {
    Pipeline::new(capacity, Arc::new(t.snapshot()), 0)
}

/// Runs one frame through the pipeline from a fresh buffer with headroom;
/// returns the verdict and the bytes to transmit (empty unless `Tx`).
pub fn run(p: &mut Pipeline, frame: &[u8], now: Tick) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; 2048 + HEADROOM];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut f = Frame::new(&mut buf, HEADROOM, frame.len(), 0);
    let v = p.process(&mut f, now);
    let out = match v {
        Verdict::Tx { len, .. } => {
            assert_eq!(len, f.len());
            f.data().to_vec()
        }
        _ => Vec::new(),
    };
    (v, out)
}

/// `frames` through `batched` in batches of 23 with [`Pipeline::process_batch`]:
/// each verdict, with the frame transmitted (empty otherwise), as [`run`]
/// gives them one at a time.
pub fn run_batched(batched: &mut Pipeline, frames: &[Vec<u8>]) -> Vec<(Verdict, Vec<u8>)> {
    let mut got = Vec::new();
    for chunk in frames.chunks(23) {
        let mut bufs: Vec<Vec<u8>> = chunk
            .iter()
            .map(|f| {
                let mut b = vec![0u8; HEADROOM + 2048];
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                b
            })
            .collect();
        let mut fs: Vec<_> = bufs
            .iter_mut()
            .zip(chunk)
            .map(|(b, f)| Frame::new(b, HEADROOM, f.len(), 0))
            .collect();
        let mut verdicts = vec![Verdict::NotOurs; fs.len()];
        batched.process_batch(&mut fs, &mut verdicts, 0);
        for (f, v) in fs.iter().zip(verdicts) {
            let out = match v {
                Verdict::Tx { .. } => f.data().to_vec(),
                _ => Vec::new(),
            };
            got.push((v, out));
        }
    }
    got
}
