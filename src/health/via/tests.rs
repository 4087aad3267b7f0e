use super::*;
use crate::wire::checksum;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);
const OUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 3);
const PORT_MAC: [u8; 6] = [2, 0, 198, 18, 2, 2];
const REAL_MAC: [u8; 6] = [2, 0, 198, 18, 2, 11];

fn probe_for(forward: Forward) -> ViaProbe {
    ViaProbe {
        iface: "lan0".into(),
        ifindex: 7,
        port_mac: PORT_MAC,
        mtu: 1500,
        src: SRC,
        vip: SocketAddrV4::new(VIP, 80),
        real: SocketAddrV4::new(RIP, 80),
        forward,
        next_hop: RIP,
        next_hop_mac: REAL_MAC,
        route_src: Some(SRC),
        tunnel_source: None,
        bind_port: None,
    }
}

fn ids() -> Probe {
    Probe {
        src: SRC,
        vip: SocketAddrV4::new(VIP, 80),
        real: RIP,
        sport: 40000,
        isn: 0xfffffff0,
        ident: 0x1234,
    }
}

/// Runs a classic BPF program over `pkt` (the instructions `filter` uses).
fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    use bpf::*;
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |off: usize, size: usize| -> Option<u32> {
        let b = pkt.get(off..off + size)?;
        Some(b.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
    };
    for _ in 0..prog.len() {
        let i = prog[pc];
        pc += 1;
        let size = |c: u16| match c & 0x18 {
            W => 4,
            H => 2,
            _ => 1,
        };
        match i.code & 0x07 {
            LD => {
                let off = if i.code & 0xe0 == IND { x as usize } else { 0 } + i.k as usize;
                match load(off, size(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            LDX => match load(i.k as usize, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return 0,
            },
            JMP => {
                let hit = match i.code & 0xf0 {
                    JEQ => a == i.k,
                    JSET => a & i.k != 0,
                    c => panic!("jump {c:#x} not interpreted"),
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
            RET => return i.k,
            c => panic!("class {c:#x} not interpreted"),
        }
    }
    panic!("program ran off its end");
}

/// An Ethernet frame holding an IPv4 packet `src → dst` with protocol
/// `proto` around `l4`, header checksum filled.
fn frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&PORT_MAC);
    f[6..12].copy_from_slice(&REAL_MAC);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let len = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

fn tcp_seg(sport: u16, dport: u16, flags: u8, ack: u32) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&77u32.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t
}

fn syn_ack(ack: u32) -> Vec<u8> {
    frame(
        VIP,
        SRC,
        PROTO_TCP,
        &tcp_seg(80, 40000, tcp::SYN | tcp::ACK, ack),
    )
}

#[test]
fn the_syn_is_the_data_paths_dr_frame() {
    let p = probe_for(Forward::Dr);
    let s = Segment {
        sport: 40000,
        seq: 5,
        flags: tcp::SYN,
        ident: 9,
    };
    let f = forwarded(&p, s).unwrap();
    assert_eq!(&f[0..6], &REAL_MAC, "to the real server's MAC");
    assert_eq!(&f[6..12], &PORT_MAC, "from the director's port");
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (SRC, VIP), "IP unchanged");
    assert_eq!(ip.protocol(), PROTO_TCP);
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum_v4(SRC, VIP));
    assert_eq!((t.src_port(), t.dst_port(), t.seq_number()), (40000, 80, 5));
    assert!(t.syn() && !t.ack());
    assert_eq!(t.options(), &[2, 4, 0x05, 0xb4], "MSS 1460");
}

#[test]
fn the_syn_is_tunnelled_from_the_data_paths_source() {
    let mut p = probe_for(Forward::Tun);
    let s = Segment {
        sport: 40000,
        seq: 5,
        flags: tcp::SYN,
        ident: 9,
    };
    for (override_, outer) in [(None, SRC), (Some(OUTER), OUTER)] {
        p.tunnel_source = override_;
        let f = forwarded(&p, s).unwrap();
        assert_eq!(&f[0..6], &REAL_MAC);
        let o = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(o.verify_checksum());
        assert_eq!((o.src_addr(), o.dst_addr()), (outer, RIP));
        assert_eq!(o.protocol(), PROTO_IPIP);
        let inner = Ipv4Packet::new_checked(o.payload()).unwrap();
        assert_eq!((inner.src_addr(), inner.dst_addr()), (SRC, VIP));
        assert_eq!(inner.ident(), 9);
    }
    // Without any source the data path drops it, and so does the probe.
    p.tunnel_source = None;
    p.route_src = None;
    let e = forwarded(&p, s).unwrap_err();
    assert!(e.contains("no_source"), "{e}");
}

#[test]
fn the_filter_takes_the_answers_and_nothing_else() {
    let vip = SocketAddrV4::new(VIP, 80);
    let prog = filter(vip, SRC, 40000, OUTER);
    assert_ne!(run(&prog, &syn_ack(1)), 0, "SYN-ACK");
    let rst = frame(VIP, SRC, PROTO_TCP, &tcp_seg(80, 40000, tcp::RST, 0));
    assert_ne!(run(&prog, &rst), 0, "RST");
    assert_ne!(run(&prog, &frame(RIP, SRC, PROTO_ICMP, &[3, 2, 0, 0])), 0);
    assert_ne!(run(&prog, &frame(RIP, OUTER, PROTO_ICMP, &[3, 2, 0, 0])), 0);
    let rejected = [
        (
            "other port",
            frame(VIP, SRC, PROTO_TCP, &tcp_seg(80, 40001, 0x12, 1)),
        ),
        (
            "other sport",
            frame(VIP, SRC, PROTO_TCP, &tcp_seg(81, 40000, 0x12, 1)),
        ),
        (
            "from RIP",
            frame(RIP, SRC, PROTO_TCP, &tcp_seg(80, 40000, 0x12, 1)),
        ),
        (
            "to other",
            frame(VIP, RIP, PROTO_TCP, &tcp_seg(80, 40000, 0x12, 1)),
        ),
        (
            "our SYN",
            frame(SRC, VIP, PROTO_TCP, &tcp_seg(40000, 80, 2, 0)),
        ),
        ("UDP", frame(VIP, SRC, 17, &tcp_seg(80, 40000, 0, 0))),
        ("ICMP elsewhere", frame(RIP, VIP, PROTO_ICMP, &[3, 2, 0, 0])),
    ];
    for (what, f) in rejected {
        assert_eq!(run(&prog, &f), 0, "{what}");
    }
    let mut arp = syn_ack(1);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(run(&prog, &arp), 0, "ARP");
    let mut frag = syn_ack(1);
    frag[20] = 0x20; // more fragments
    assert_eq!(run(&prog, &frag), 0, "fragment");
    // IP options move the ports: the filter follows the header length.
    let mut opt = syn_ack(1);
    opt.splice(34..34, [1u8, 1, 1, 1]);
    opt[14] = 0x46;
    assert_ne!(run(&prog, &opt), 0, "IP options");
}

#[test]
fn only_an_answer_to_this_probe_counts() {
    let pr = ids();
    let want = pr.isn.wrapping_add(1);
    assert_eq!(classify(&syn_ack(want), &pr), Some(Answer::SynAck));
    assert_eq!(
        classify(&syn_ack(want.wrapping_add(1)), &pr),
        None,
        "wrong ack"
    );
    let rst = frame(
        VIP,
        SRC,
        PROTO_TCP,
        &tcp_seg(80, 40000, tcp::RST | tcp::ACK, want),
    );
    assert_eq!(classify(&rst, &pr), Some(Answer::Rst));
    let stray_rst = frame(VIP, SRC, PROTO_TCP, &tcp_seg(80, 40000, tcp::RST, 0));
    assert_eq!(classify(&stray_rst, &pr), None, "a RST not acking the SYN");
    let ack = frame(VIP, SRC, PROTO_TCP, &tcp_seg(80, 40000, tcp::ACK, want));
    assert_eq!(classify(&ack, &pr), None, "neither SYN nor RST");
    let mut bad = syn_ack(want);
    bad[24] ^= 1; // the IP header's checksum
    assert_eq!(classify(&bad, &pr), None, "bad IP checksum");
}

#[test]
fn icmp_errors_quoting_the_probe_fail_it_with_their_name() {
    let pr = ids();
    // DR: the quote is the probe's IP header and its ports.
    let quoted = frame(SRC, VIP, PROTO_TCP, &tcp_seg(40000, 80, tcp::SYN, 0));
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted[14..14 + 28]);
    let f = frame(RIP, SRC, PROTO_ICMP, &icmp);
    assert_eq!(classify(&f, &pr), Some(Answer::Icmp(3, 3, RIP)));
    let other = frame(SRC, VIP, PROTO_TCP, &tcp_seg(40001, 80, tcp::SYN, 0));
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&other[14..14 + 28]);
    assert_eq!(classify(&frame(RIP, SRC, PROTO_ICMP, &icmp), &pr), None);
    // TUN: the quote is the outer header and the inner one's start.
    let p = probe_for(Forward::Tun);
    let s = Segment {
        sport: 40000,
        seq: 5,
        flags: tcp::SYN,
        ident: pr.ident,
    };
    let tunnelled = forwarded(&p, s).unwrap();
    let mut icmp = vec![3, 2, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&tunnelled[14..14 + 28]);
    let f = frame(RIP, SRC, PROTO_ICMP, &icmp);
    assert_eq!(classify(&f, &pr), Some(Answer::Icmp(3, 2, RIP)));
    assert_eq!(
        icmp_reason(3, 2),
        "ICMP protocol unreachable (3/2)",
        "the reason names it"
    );
    let other = Probe { ident: 1, ..pr };
    assert_eq!(classify(&f, &other), None, "another probe's ident");
    // Not an error type (echo reply).
    let mut echo = icmp.clone();
    echo[0] = 0;
    assert_eq!(classify(&frame(RIP, SRC, PROTO_ICMP, &echo), &pr), None);
}

#[test]
fn nat_and_ipv6_are_refused() {
    let mut v = Via {
        interfaces: vec!["lan0".to_string()],
        mtu: 1500,
        tunnel_source: None,
        vip: "198.18.1.1:80".parse().unwrap(),
        real: "198.18.2.11:80".parse().unwrap(),
        forward: Forward::Nat,
        bindto: None,
        bind_port: None,
    };
    assert!(!forwards(Forward::Nat) && forwards(Forward::Dr) && forwards(Forward::Tun));
    let e = check(&v, Duration::from_millis(10)).unwrap_err();
    assert!(e.contains("direct check"), "{e}");
    v.forward = Forward::Dr;
    v.vip = "[2001:db8::1]:80".parse().unwrap();
    v.real = "[2001:db8:2::11]:80".parse().unwrap();
    let e = check(&v, Duration::from_millis(10)).unwrap_err();
    assert!(e.contains("IPv4 only"), "{e}");
}

#[test]
fn a_check_config_gives_the_probe_its_ports_and_source() {
    let text = "[dataplane]\ninterfaces = [\"lan0\", \"lan1\"]\nmtu = 1520\n\
                tunnel_source = \"198.18.2.3\"\n";
    let dp = Path::from(
        &crate::config::Config::from_str_named(text, "t.toml")
            .unwrap()
            .dataplane,
    );
    let real: SocketAddr = "198.18.2.11:8080".parse().unwrap();
    let mut check = CheckConfig::new(crate::config::CheckKind::Tcp, real);
    check.bindto = Some(IpAddr::V4(SRC));
    check.bind_port = Some(4242);
    let mut vip: SocketAddr = "198.18.1.1:80".parse().unwrap();
    let v = Via::new(&dp, vip, real, Forward::Tun, &check);
    assert_eq!(v.interfaces, ["lan0", "lan1"]);
    assert_eq!((v.mtu, v.tunnel_source), (1520, Some(OUTER)));
    assert_eq!((v.vip, v.real), (vip, real));
    assert_eq!((v.bindto, v.bind_port), (Some(IpAddr::V4(SRC)), Some(4242)));
    assert_eq!(v.forward, Forward::Tun);
    // A port-0 service: the check's connect_port.
    vip.set_port(0);
    check.connect_port = 8443;
    let v = Via::new(&dp, vip, real, Forward::Tun, &check);
    assert_eq!(v.vip.port(), 8443);
}
