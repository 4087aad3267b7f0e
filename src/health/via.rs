//! TCP checks through the forwarding path (`via = "forwarding"`): the
//! probe is a TCP SYN from the director's own address to VIP:port, sent
//! to one real server exactly as the data path forwards a client's
//! packet to it, and the check passes only when that real server answers
//! with a SYN-ACK from VIP:port. A real server whose VIP was removed from
//! `lo`, whose tunnel endpoint is broken or whose ARP setup answers for
//! the VIP elsewhere fails, even though a direct connect to RIP:port
//! succeeds — what keepalived's `TCP_CHECK` to the real's own address
//! cannot see.
//!
//! # How the probe travels
//!
//! - DR: an Ethernet frame to the next-hop MAC of the real server, the IP
//!   packet director → VIP unchanged above layer 2.
//! - TUN: the same IP packet inside an outer IPv4 header (IPIP) to the
//!   real server, its outer source chosen as the data path chooses it
//!   (`dataplane.tunnel_source`, else the source of the kernel's route to
//!   the real server).
//! - NAT: there is nothing to test beyond RIP:port (the director itself
//!   rewrites the destination to it), so `via = "forwarding"` is the
//!   direct check there: [`ViaProbe::resolve`] refuses NAT, and the
//!   caller connects to RIP:port as for `via = "direct"`.
//!
//! The frame is built as a client's SYN would arrive and handed to the
//! data path's own transmitter ([`crate::xmit::Transmitter::to_server`]),
//! so the probe gets the very rewrite, MTU rule and tunnel source the
//! workers apply; nothing of it is re-implemented here. It leaves by an
//! AF_PACKET socket ([`crate::xsk::packet`]) on the director's interface
//! toward the real server, the one the daemon's workers send by.
//!
//! # The answer
//!
//! The real server answers from the VIP to the director's address (its
//! routing decides the way: on the LAN, straight back). The director's
//! kernel may drop that before any IP socket sees it — reverse-path
//! filtering, or a martian source when the director holds the VIP on its
//! own `lo` — so the answer is read on the same AF_PACKET socket, which
//! sees frames before IP. A classic BPF filter ([`filter`]) queues only
//! TCP from VIP:port to the probe's address and port, and ICMP errors to
//! the director's addresses; everything is checked again here, and the
//! SYN-ACK must acknowledge the probe's random initial sequence number.
//! With the daemon running, the XDP steering program passes these frames
//! to the kernel: their destination is a director address (its
//! `local_addrs` rule), not a VIP, so AF_PACKET sees them.
//!
//! Outcomes: SYN-ACK = pass; RST = fail ("refused": nothing listens on
//! the VIP there); an ICMP error quoting the probe = fail, naming it
//! (e.g. "protocol unreachable" from a real server without IPIP); nothing
//! within the timeout = fail. The SYN is sent again after 1 s, 2 s, 4 s …
//! inside the timeout, as the kernel's connect retransmits.
//!
//! # Side effects (a half-open probe, like a SYN scan)
//!
//! - The source port is an ephemeral port the kernel hands out by
//!   binding a TCP socket to the probe's address and port 0 (random per
//!   probe, RFC 6056), held for the probe: no connection of the
//!   director's own can use it meanwhile.
//! - The director's kernel has no connection for the SYN-ACK and answers
//!   it with a RST to VIP:port. That RST goes where the kernel routes the
//!   VIP — with the usual router, back to the director, whose data path
//!   drops it (`no_connection`, one per passing probe); with the VIP on
//!   the director's `lo`, nowhere. So that the real server does not keep a
//!   half-open connection (and retransmit its SYN-ACK), the probe sends it
//!   a RST of its own the forwarding path's way right after the SYN-ACK.
//!
//! # Cost
//!
//! A passing probe takes a round trip of 0.1–0.2 ms on the test bed and
//! about 60 µs of CPU in a debug build (the cached check's test in
//! tests/health_via.rs prints both). Closing an AF_PACKET socket waits
//! for an RCU grace period (the kernel's `synchronize_net`, 8–15 ms), so
//! sockets are not closed after a probe but kept, with a filter that
//! takes nothing, for the next one on the same interface (at most
//! [`POOL_MAX`]). Resolving reads the kernel's whole neighbour table: a
//! checker keeps a [`Cached`] per real server rather than resolving on
//! every run.
//!
//! IPv4 only, as the data path's forwarding is.

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::config::{CheckConfig, Dataplane};
use crate::dest::Forward;
use crate::frame::{Frame, RX_HEADROOM, Verdict};
use crate::netlink::{Netlink, Resolution};
use crate::stats::WorkerStats;
use crate::wire::Layout;
use crate::wire::ethernet::{ETHERTYPE_IPV4, EthernetFrame, HEADER_LEN as ETH_LEN};
use crate::wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_IPIP, PROTO_TCP};
use crate::wire::tcp::{self, TcpPacket};
use crate::xmit::{self, Egress, Hop, Transmitter};
use crate::xsk::packet::{Insn, PacketSocket, bpf};

/// What a forwarding-path probe needs to know of the director and the
/// real server: the configuration's side of it. [`ViaProbe::resolve`]
/// adds the kernel's (route, next hop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `dataplane.interfaces`: the probe leaves by the one the kernel's
    /// route to the real server names, as the workers' frames do.
    pub interfaces: Vec<String>,
    /// `dataplane.mtu`, the ports' MTU the transmitter checks.
    pub mtu: u16,
    /// `dataplane.tunnel_source`.
    pub tunnel_source: Option<Ipv4Addr>,
    /// The virtual service's address; its port is the probe's destination
    /// port (a port-0 service: the real server's port).
    pub vip: SocketAddr,
    pub real: SocketAddr,
    pub forward: Forward,
    /// The check's `bindto`: the probe's source address; default the
    /// source of the kernel's route to the real server.
    pub bindto: Option<IpAddr>,
    /// The check's `bind_port`: the probe's source port; default an
    /// ephemeral one per probe.
    pub bind_port: Option<u16>,
}

/// What of `[dataplane]` a forwarding-path probe follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub interfaces: Vec<String>,
    pub mtu: u16,
    pub tunnel_source: Option<Ipv4Addr>,
}

impl Default for Path {
    /// No interface: a forwarding-path check fails, naming the real
    /// server's route as "not one of dataplane.interfaces".
    fn default() -> Path {
        Path {
            interfaces: Vec::new(),
            mtu: 1500,
            tunnel_source: None,
        }
    }
}

impl From<&Dataplane> for Path {
    fn from(dp: &Dataplane) -> Path {
        Path {
            interfaces: dp.interfaces.clone(),
            mtu: dp.mtu,
            tunnel_source: dp.tunnel_source,
        }
    }
}

impl Via {
    /// The forwarding-path check `check` of real server `real` (reached
    /// by `forward`) of the service on `vip`, along `dp` (a health
    /// `Target`'s fields; this file does not import it, so that the
    /// engine's files may import this one without a cycle). The probe
    /// goes to the VIP's port (a port-0 service: the check's
    /// `connect_port`); `connect_ip` does not apply (the path is the one
    /// to the real server's address).
    pub fn new(
        dp: &Path,
        mut vip: SocketAddr,
        real: SocketAddr,
        forward: Forward,
        check: &CheckConfig,
    ) -> Via {
        if vip.port() == 0 {
            vip.set_port(check.connect_port);
        }
        Via {
            interfaces: dp.interfaces.clone(),
            mtu: dp.mtu,
            tunnel_source: dp.tunnel_source,
            vip,
            real,
            forward,
            bindto: check.bindto,
            bind_port: check.bind_port,
        }
    }
}

/// A probe ready to send: everything [`probe`] needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaProbe {
    /// The director's interface it leaves by (name, index, MAC).
    pub iface: String,
    pub ifindex: u32,
    pub port_mac: [u8; 6],
    pub mtu: u16,
    /// The probe's source: a director address the real server's answer
    /// comes back to.
    pub src: Ipv4Addr,
    /// Destination of the probe: VIP:port.
    pub vip: SocketAddrV4,
    pub real: SocketAddrV4,
    /// DR or TUN (never NAT: see the module's documentation).
    pub forward: Forward,
    /// The real server's next hop and its MAC.
    pub next_hop: Ipv4Addr,
    pub next_hop_mac: [u8; 6],
    /// The source of the kernel's route to the real server (TUN's outer
    /// source without `tunnel_source`).
    pub route_src: Option<Ipv4Addr>,
    pub tunnel_source: Option<Ipv4Addr>,
    /// The source port when the check sets one (`bind_port`).
    pub bind_port: Option<u16>,
}

/// Whether `via = "forwarding"` sends a forwarded probe for this mode
/// (DR, TUN); for NAT it is the direct check.
pub fn forwards(forward: Forward) -> bool {
    matches!(forward, Forward::Dr | Forward::Tun)
}

fn mode_name(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "dr",
        Forward::Tun => "tun",
        Forward::Nat => "nat",
    }
}

impl ViaProbe {
    /// Resolves `v` with the kernel (through `nl`, in the calling
    /// thread's network namespace): the route to the real server, its
    /// interface among `v.interfaces`, the next hop's MAC. A next hop the
    /// kernel is still resolving (ARP) is asked again every 50 ms for up
    /// to `wait`; one that stays unresolved, no route, or a route out of
    /// another interface is an error naming it (the data path could not
    /// forward to it either).
    pub fn resolve(nl: &mut Netlink, v: &Via, wait: Duration) -> Result<ViaProbe, String> {
        if !forwards(v.forward) {
            return Err(format!(
                "via = \"forwarding\" with forward = \"{}\": the direct check applies",
                mode_name(v.forward)
            ));
        }
        let (SocketAddr::V4(vip), SocketAddr::V4(real)) = (v.vip, v.real) else {
            return Err("via = \"forwarding\": IPv4 only (the data path forwards IPv4)".into());
        };
        let vip = if vip.port() == 0 {
            SocketAddrV4::new(*vip.ip(), real.port())
        } else {
            vip
        };
        let deadline = Instant::now() + wait;
        let (ifindex, next_hop, mac, route_src) = loop {
            match nl
                .resolve(*real.ip())
                .map_err(|e| format!("route to {real}: {e}"))?
            {
                Resolution::Resolved {
                    ifindex,
                    next_hop,
                    mac,
                    src,
                } => break (ifindex, next_hop, mac, src),
                Resolution::Pending { next_hop, .. } => {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "real server {}: next hop {next_hop} not resolved (ARP) within {wait:?}",
                            real.ip()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Resolution::Unreachable => {
                    return Err(format!(
                        "real server {}: no route or no ARP answer",
                        real.ip()
                    ));
                }
            }
        };
        let mut port = None;
        for name in &v.interfaces {
            let i = nl
                .interface(name)
                .map_err(|e| format!("interface {name}: {e}"))?;
            if i.index == ifindex {
                port = Some(i);
                break;
            }
        }
        let Some(port) = port else {
            return Err(format!(
                "real server {} is reached via {next_hop} on ifindex {ifindex}, not one of dataplane.interfaces",
                real.ip()
            ));
        };
        let src = match v.bindto {
            Some(IpAddr::V4(a)) => a,
            Some(IpAddr::V6(a)) => {
                return Err(format!("bindto = {a}: the forwarding path is IPv4"));
            }
            None => route_src.ok_or_else(|| {
                format!(
                    "no source address: the route to {} names none (set bindto)",
                    real.ip()
                )
            })?,
        };
        Ok(ViaProbe {
            iface: port.name,
            ifindex,
            port_mac: port.mac,
            mtu: v.mtu,
            src,
            vip,
            real,
            forward: v.forward,
            next_hop,
            next_hop_mac: mac,
            route_src,
            tunnel_source: v.tunnel_source,
            bind_port: v.bind_port,
        })
    }

    /// The check's name in verdicts and logs.
    pub fn describe(&self) -> String {
        format!(
            "TCP_CHECK {} via {} {}",
            self.vip,
            mode_name(self.forward),
            self.real
        )
    }
}

/// [`ViaProbe::resolve`] and [`probe`] under one `timeout` (a fresh
/// netlink socket in the calling thread's namespace; blocking). Each call
/// asks the kernel again; a checker that runs often keeps a [`Cached`].
pub fn check(v: &Via, timeout: Duration) -> Result<(), String> {
    Cached::default().run(v, timeout)
}

/// How long a [`Cached`] probe is used before it is resolved again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// One real server's forwarding-path check as a checker keeps it between
/// runs: the resolved [`ViaProbe`] is reused, so a run is one probe and
/// no netlink question (resolving reads the kernel's whole neighbour
/// table). It is resolved again when it is older than [`REFRESH`], when
/// the [`Via`] it came from changed, and when a probe fails — a next hop
/// whose MAC or route changed then gets one more probe on the new path
/// within the same timeout; a failure on an unchanged path stands.
#[derive(Debug, Clone, Default)]
pub struct Cached {
    probe: Option<(Via, ViaProbe, Instant)>,
}

impl Cached {
    /// Runs the check of `v`, blocking for at most about `timeout`.
    pub fn run(&mut self, v: &Via, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut failed = None;
        if let Some((via, p, at)) = &self.probe
            && via == v
            && at.elapsed() < REFRESH
        {
            match probe(p, timeout) {
                Ok(()) => return Ok(()),
                Err(e) => failed = Some((p.clone(), e)),
            }
        }
        let left = |start: Instant| timeout.saturating_sub(start.elapsed());
        let resolved = Netlink::new()
            .map_err(|e| format!("netlink: {e}"))
            .and_then(|mut nl| ViaProbe::resolve(&mut nl, v, left(start)));
        let p = match resolved {
            Ok(p) => p,
            Err(e) => {
                self.probe = None;
                return Err(e);
            }
        };
        self.probe = Some((v.clone(), p.clone(), Instant::now()));
        match failed {
            Some((old, e)) if old == p => Err(e),
            _ => probe(&p, left(start)),
        }
    }
}

/// The fields of one TCP segment of a probe.
#[derive(Debug, Clone, Copy)]
struct Segment {
    sport: u16,
    seq: u32,
    flags: u8,
    /// The IPv4 ident: random per probe, so ICMP errors quoting a
    /// tunnelled probe can be told apart.
    ident: u16,
}

const MSS_OPTION_LEN: usize = 4;

/// The frame the data path would send for this segment of the probe: a
/// client's segment to VIP:port as it arrives (Ethernet, IPv4, TCP with
/// full checksums), rewritten by the workers' transmitter.
fn forwarded(p: &ViaProbe, s: Segment) -> Result<Vec<u8>, String> {
    let opts = if s.flags & tcp::SYN != 0 {
        MSS_OPTION_LEN
    } else {
        0
    };
    let tcp_len = tcp::MIN_HEADER_LEN + opts;
    let ip_len = 20 + tcp_len;
    let mut buf = vec![0u8; RX_HEADROOM + ETH_LEN + ip_len];
    {
        let d = &mut buf[RX_HEADROOM..];
        d[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH_LEN..]);
        ip.set_version_ihl(4, 20);
        ip.set_tos(0);
        ip.set_total_len(ip_len as u16);
        ip.set_ident(s.ident);
        ip.set_flags_frag(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(PROTO_TCP);
        ip.set_src_addr(p.src);
        ip.set_dst_addr(*p.vip.ip());
        ip.fill_checksum();
        let mut t = TcpPacket::new_unchecked(&mut d[ETH_LEN + 20..]);
        t.set_src_port(s.sport);
        t.set_dst_port(p.vip.port());
        t.set_seq_number(s.seq);
        t.set_ack_number(0);
        t.set_header_len(tcp_len);
        t.set_flags(s.flags);
        t.set_window(if s.flags & tcp::SYN != 0 { 64240 } else { 0 });
        if opts > 0 {
            // MSS for the port's MTU (kind 2, length 4).
            let mss = p.mtu.saturating_sub(40);
            let o = &mut d[ETH_LEN + 20 + tcp::MIN_HEADER_LEN..];
            o[..4].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
        }
        TcpPacket::new_unchecked(&mut d[ETH_LEN + 20..]).fill_checksum_v4(p.src, *p.vip.ip());
    }
    let l = Layout {
        l2_len: ETH_LEN,
        ihl: 20,
        ip_len,
    };
    let mut frame = Frame::new(&mut buf, RX_HEADROOM, ETH_LEN + ip_len, 0);
    let mut tx = Transmitter::new(0);
    tx.set_tunnel_source(p.tunnel_source);
    let t = xmit::Target {
        fwd: p.forward,
        proto: PROTO_TCP,
        daddr: *p.real.ip(),
        dport: p.real.port(),
    };
    let e = Egress {
        hop: Hop {
            port: 0,
            dst_mac: p.next_hop_mac,
            src_mac: p.port_mac,
        },
        mtu: p.mtu,
        src: p.route_src,
    };
    match tx.to_server(&mut frame, &l, &t, &e, &mut WorkerStats::default(), 0) {
        Verdict::Tx { len, .. } => Ok(frame.data()[..len].to_vec()),
        Verdict::Drop(r) => Err(format!("the data path drops the probe ({})", r.name())),
        v => Err(format!("the data path does not forward the probe ({v:?})")),
    }
}

/// The classic BPF filter of the probe's socket (offsets from the
/// Ethernet header, loads in host order): IPv4 TCP from `vip` to
/// `src`:`sport`, not a fragment; or IPv4 ICMP to `src` or `outer`.
pub fn filter(vip: SocketAddrV4, src: Ipv4Addr, sport: u16, outer: Ipv4Addr) -> Vec<Insn> {
    use bpf::*;
    let stmt = |code, k| Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| Insn {
        code: JMP | JEQ | K,
        jt,
        jf,
        k,
    };
    // Jump offsets count from the next instruction: ACCEPT is 19,
    // REJECT 20, the ICMP branch 15.
    vec![
        /* 0 */ stmt(LD | H | ABS, 12),
        /* 1 */ jump(u32::from(ETHERTYPE_IPV4), 0, 18),
        /* 2 */ stmt(LD | B | ABS, 14 + 9),
        /* 3 */ jump(u32::from(PROTO_TCP), 0, 11),
        /* 4 */ stmt(LD | W | ABS, 14 + 12),
        /* 5 */ jump(u32::from(*vip.ip()), 0, 14),
        /* 6 */ stmt(LD | W | ABS, 14 + 16),
        /* 7 */ jump(u32::from(src), 0, 12),
        /* 8 */ stmt(LD | H | ABS, 14 + 6),
        /* 9 */
        Insn {
            code: JMP | JSET | K,
            jt: 10,
            jf: 0,
            k: 0x3fff,
        },
        /* 10 */ stmt(LDX | B | MSH, 14),
        /* 11 */ stmt(LD | H | IND, 14),
        /* 12 */ jump(u32::from(vip.port()), 0, 7),
        /* 13 */ stmt(LD | H | IND, 16),
        /* 14 */ jump(u32::from(sport), 4, 5),
        /* 15 */ jump(u32::from(PROTO_ICMP), 0, 4),
        /* 16 */ stmt(LD | W | ABS, 14 + 16),
        /* 17 */ jump(u32::from(src), 1, 0),
        /* 18 */ jump(u32::from(outer), 0, 1),
        /* 19 */ stmt(RET | K, 0xffff),
        /* 20 */ stmt(RET | K, 0),
    ]
}

/// What an accepted frame says about the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    SynAck,
    Rst,
    /// An ICMP error quoting the probe: its type, code and sender.
    Icmp(u8, u8, Ipv4Addr),
}

/// What identifies the probe's packets.
#[derive(Debug, Clone, Copy)]
struct Probe {
    src: Ipv4Addr,
    vip: SocketAddrV4,
    real: Ipv4Addr,
    sport: u16,
    isn: u32,
    ident: u16,
}

/// Reads a received frame: the probe's answer, or `None` for anything
/// else (checked in full here; the socket filter only narrows).
fn classify(frame: &[u8], pr: &Probe) -> Option<Answer> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() || ip.is_fragment() {
        return None;
    }
    match ip.protocol() {
        PROTO_TCP => {
            if ip.src_addr() != *pr.vip.ip() || ip.dst_addr() != pr.src {
                return None;
            }
            // The checksum is not verified: a local sender's veth may
            // hand on a partial one. The acknowledgement of the random
            // ISN is what proves the segment answers this probe.
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            if t.src_port() != pr.vip.port()
                || t.dst_port() != pr.sport
                || !t.ack()
                || t.ack_number() != pr.isn.wrapping_add(1)
            {
                return None;
            }
            if t.rst() {
                Some(Answer::Rst)
            } else if t.syn() {
                Some(Answer::SynAck)
            } else {
                None
            }
        }
        PROTO_ICMP => {
            let icmp = ip.payload();
            let (&ty, &code) = (icmp.first()?, icmp.get(1)?);
            if !matches!(ty, 3 | 11 | 12) {
                return None;
            }
            // The quote is cut after 8 bytes of its payload: read its
            // header by hand (a view would want the whole packet).
            let quoted = icmp.get(8..)?;
            if quoted.len() < 28 || quoted[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(quoted[0] & 0x0f) * 4;
            let qsrc = Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]);
            let qdst = Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]);
            let rest = quoted.get(ihl..ihl + 8)?;
            let ours = match quoted[9] {
                // The probe itself (DR, or a TUN packet's inner one).
                PROTO_TCP => {
                    qsrc == pr.src
                        && qdst == *pr.vip.ip()
                        && rest[0..2] == pr.sport.to_be_bytes()
                        && rest[2..4] == pr.vip.port().to_be_bytes()
                }
                // The tunnel packet: its first 8 bytes are the inner
                // header's, with the probe's ident.
                PROTO_IPIP => {
                    qdst == pr.real && rest[0] >> 4 == 4 && rest[4..6] == pr.ident.to_be_bytes()
                }
                _ => false,
            };
            ours.then(|| Answer::Icmp(ty, code, ip.src_addr()))
        }
        _ => None,
    }
}

fn icmp_reason(ty: u8, code: u8) -> String {
    let what = match (ty, code) {
        (3, 0) => "network unreachable",
        (3, 1) => "host unreachable",
        (3, 2) => "protocol unreachable",
        (3, 3) => "port unreachable",
        (3, 4) => "fragmentation needed",
        (3, 9 | 10 | 13) => "administratively prohibited",
        (3, _) => "destination unreachable",
        (11, _) => "time exceeded",
        _ => "parameter problem",
    };
    format!("ICMP {what} ({ty}/{code})")
}

/// Four random bytes from the kernel.
fn random_u32() -> Result<u32, String> {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(u32::from_ne_bytes(b))
}

/// Port `port` on `src` (0: one the kernel chooses among its ephemeral
/// ports), held while the returned socket lives (bound, never listening
/// or connected).
fn reserve_port(src: Ipv4Addr, port: u16) -> Result<(rustix::fd::OwnedFd, u16), String> {
    use rustix::net::{AddressFamily, SocketType, bind, getsockname, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)
        .map_err(|e| format!("source port: socket: {e}"))?;
    bind(&fd, &SocketAddrV4::new(src, port))
        .map_err(|e| format!("source port {port} on {src}: {e}"))?;
    let a = getsockname(&fd).map_err(|e| format!("source port: getsockname: {e}"))?;
    let a = SocketAddrV4::try_from(a).map_err(|e| format!("source port: {e}"))?;
    Ok((fd, a.port()))
}

/// Most AF_PACKET sockets kept open for later probes (about the blocking
/// threads that probe at once).
pub const POOL_MAX: usize = 16;

/// A socket kept for later probes on interface `ifindex` of the network
/// namespace whose nsfs inode is `netns`.
struct Pooled {
    netns: u64,
    ifindex: u32,
    sock: PacketSocket,
}

/// Sockets between probes: closing an AF_PACKET socket waits for an RCU
/// grace period (8–15 ms), so they are reused rather than closed. While
/// pooled they hold a filter that takes nothing.
static POOL: std::sync::Mutex<Vec<Pooled>> = std::sync::Mutex::new(Vec::new());

/// The classic BPF program that accepts nothing.
const NOTHING: [Insn; 1] = [Insn {
    code: bpf::RET | bpf::K,
    jt: 0,
    jf: 0,
    k: 0,
}];

fn netns_id() -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

fn pool() -> std::sync::MutexGuard<'static, Vec<Pooled>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket on `ifindex` with `filter`: a pooled one of this namespace
/// (`true`: it may be stale, its interface gone) or a new one.
fn take_socket(netns: u64, ifindex: u32, filter: &[Insn]) -> std::io::Result<(PacketSocket, bool)> {
    let pooled = {
        let mut pool = pool();
        let i = pool
            .iter()
            .position(|p| p.netns == netns && p.ifindex == ifindex);
        i.map(|i| pool.swap_remove(i).sock)
    };
    if let Some(sock) = pooled
        && sock.set_filter(filter).is_ok()
    {
        // Whatever the nothing-filter let in before it was set.
        sock.drain(64);
        return Ok((sock, true));
    }
    Ok((PacketSocket::open(ifindex, filter)?, false))
}

fn give_back(netns: u64, ifindex: u32, sock: PacketSocket) {
    if sock.set_filter(&NOTHING).is_err() {
        return;
    }
    let mut pool = pool();
    if pool.len() < POOL_MAX {
        pool.push(Pooled {
            netns,
            ifindex,
            sock,
        });
    }
}

/// Sends the probe and waits, at most `timeout`, for its answer: `Ok`
/// on a SYN-ACK from VIP:port, else `Err` with the reason (RST, an ICMP
/// error, nothing). Blocking; run it off the control thread. Needs
/// CAP_NET_RAW, in the network namespace of the director's interface.
pub fn probe(p: &ViaProbe, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let (_port, sport) = reserve_port(p.src, p.bind_port.unwrap_or(0))?;
    let pr = Probe {
        src: p.src,
        vip: p.vip,
        real: *p.real.ip(),
        sport,
        isn: random_u32()?,
        ident: random_u32()? as u16,
    };
    let seg = |flags, seq| Segment {
        sport,
        seq,
        flags,
        ident: pr.ident,
    };
    let syn = forwarded(p, seg(tcp::SYN, pr.isn))?;
    let outer = p.tunnel_source.or(p.route_src).unwrap_or(p.src);
    let netns = netns_id().map_err(|e| format!("network namespace: {e}"))?;
    let filter = filter(p.vip, p.src, sport, outer);
    let socket_err = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (needs CAP_NET_RAW)"
        } else {
            ""
        };
        format!("AF_PACKET socket on {}: {e}{hint}", p.iface)
    };
    // Drained before the SYN leaves: nothing of this probe's is lost.
    let (mut sock, mut pooled) = take_socket(netns, p.ifindex, &filter).map_err(socket_err)?;
    let r = exchange(
        p,
        &pr,
        &mut sock,
        &mut pooled,
        &syn,
        deadline,
        timeout,
        &filter,
        &socket_err,
    );
    give_back(netns, p.ifindex, sock);
    r
}

/// The SYN (again after 1 s, 2 s …) and the wait for its answer.
#[allow(clippy::too_many_arguments)]
fn exchange(
    p: &ViaProbe,
    pr: &Probe,
    sock: &mut PacketSocket,
    pooled: &mut bool,
    syn: &[u8],
    deadline: Instant,
    timeout: Duration,
    filter: &[Insn],
    socket_err: &dyn Fn(std::io::Error) -> String,
) -> Result<(), String> {
    let seg = |flags, seq| Segment {
        sport: pr.sport,
        seq,
        flags,
        ident: pr.ident,
    };
    let mut next_send = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "no SYN-ACK from {} through {} to {} within {} ms",
                p.vip,
                mode_name(p.forward),
                p.real,
                timeout.as_millis()
            ));
        }
        if now >= next_send {
            if let Err(e) = sock.send(syn) {
                if !*pooled {
                    return Err(format!("sending the probe on {}: {e}", p.iface));
                }
                // A pooled socket whose interface went away: a new one.
                *sock = PacketSocket::open(p.ifindex, filter).map_err(socket_err)?;
                *pooled = false;
                continue;
            }
            next_send = now + backoff;
            backoff *= 2;
        }
        let Some(n) = sock
            .recv(&mut buf, deadline.min(next_send))
            .map_err(|e| format!("receiving on {}: {e}", p.iface))?
        else {
            continue;
        };
        match classify(&buf[..n], pr) {
            Some(Answer::SynAck) => {
                // Closes the real server's half-open connection. Best
                // effort: the check has passed whatever happens to it,
                // and the real server times the connection out anyway.
                if let Ok(rst) = forwarded(p, seg(tcp::RST, pr.isn.wrapping_add(1))) {
                    let _ = sock.send(&rst);
                }
                return Ok(());
            }
            Some(Answer::Rst) => {
                return Err(format!(
                    "refused: RST from {} through {} to {}",
                    p.vip,
                    mode_name(p.forward),
                    p.real
                ));
            }
            Some(Answer::Icmp(ty, code, from)) => {
                return Err(format!(
                    "{} from {from} for {} through {} to {}",
                    icmp_reason(ty, code),
                    p.vip,
                    mode_name(p.forward),
                    p.real
                ));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
