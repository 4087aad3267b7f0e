//! The XDP steering program itself, frame by frame (`BPF_PROG_TEST_RUN`,
//! as Katran tests its programs): which frames it selects for the workers
//! and which it leaves to the kernel, for IPv4 and IPv6, with extension
//! headers, fragments, ICMP errors, neighbour discovery and hostile
//! chains. The program is loaded, never attached: no traffic, no
//! namespace. Needs root (loading BPF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xdpvs::service::SteerRules;
use xdpvs::xsk::steer::Steering;

const TCP: u8 = 6;
const UDP: u8 = 17;
const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An IPv6 service's VIP (TCP 80, UDP 53), a port-0 service's VIP, a NAT
/// real server (TCP 8080), the director's own address, a client.
fn vip6() -> Ipv6Addr {
    v6("2001:db8:1::1")
}
fn vip6_all() -> Ipv6Addr {
    v6("2001:db8:1::2")
}
fn real6() -> Ipv6Addr {
    v6("2001:db8:2::11")
}
fn local6() -> Ipv6Addr {
    v6("2001:db8:2::2")
}
fn client6() -> Ipv6Addr {
    v6("2001:db8:ff::7")
}
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);

fn program() -> Steering {
    let mut s = Steering::load_detached("steer-test").expect("load the steering program (root)");
    s.set_rules(&SteerRules {
        vips: vec![(TCP, VIP4, 80)],
        nat_reals: vec![],
        vips6: vec![(TCP, vip6(), 80), (UDP, vip6(), 53), (TCP, vip6_all(), 0)],
        nat_reals6: vec![(TCP, real6(), 8080)],
    })
    .unwrap();
    s.set_local_addrs(&[IpAddr::from(Ipv4Addr::new(198, 18, 2, 2)), local6().into()])
        .unwrap();
    s
}

/// An Ethernet + IPv6 frame around `l4` (next header `nh`).
fn frame6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_D);
    f.extend_from_slice(&MAC_C);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[nh, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(l4);
    f
}

/// A TCP SYN header (checksum not computed: the program reads no
/// checksum).
fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 12];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    u
}

/// `upper` (next header `nh`) behind the extension headers `exts`, each
/// (type, total length in bytes: a multiple of 8, or of 4 for AH).
fn chain(exts: &[(u8, usize)], nh: u8, upper: &[u8]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    for (i, &(t, len)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(nh, |e| e.0);
        let mut h = vec![0u8; len];
        h[0] = next;
        h[1] = match t {
            51 => (len / 4 - 2) as u8,
            44 => 0,
            _ => (len / 8 - 1) as u8,
        };
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(upper);
    (exts.first().map_or(nh, |e| e.0), out)
}

fn icmp6(kind: u8) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    // Room for a quoted header, as an error carries one.
    m.extend_from_slice(&[0u8; 48]);
    m
}

fn frame4(src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_D);
    f.extend_from_slice(&MAC_C);
    f.extend_from_slice(&[0x08, 0x00]);
    let len = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, TCP, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(l4);
    f
}

#[test]
fn the_program_selects_what_the_workers_handle_and_leaves_the_rest() {
    let p = program();
    let c = client6();
    let (hbh, rt, frag, ah, dst) = (0u8, 43u8, 44u8, 51u8, 60u8);
    let with = |exts: &[(u8, usize)], to: Ipv6Addr, dport: u16| {
        let (nh, l4) = chain(exts, TCP, &tcp(40000, dport));
        frame6(c, to, nh, &l4)
    };
    let mut vlan = frame6(c, vip6(), TCP, &tcp(40000, 80));
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        // Services.
        (
            "TCP to the VIP's port",
            frame6(c, vip6(), TCP, &tcp(40000, 80)),
            true,
        ),
        (
            "TCP to another port",
            frame6(c, vip6(), TCP, &tcp(40000, 81)),
            false,
        ),
        (
            "UDP to the VIP's port",
            frame6(c, vip6(), UDP, &udp(40000, 53)),
            true,
        ),
        (
            "UDP to a TCP service's port",
            frame6(c, vip6(), UDP, &udp(40000, 80)),
            false,
        ),
        (
            "any port of a port-0 service",
            frame6(c, vip6_all(), TCP, &tcp(1, 4444)),
            true,
        ),
        (
            "TCP to no VIP",
            frame6(c, v6("2001:db8:1::9"), TCP, &tcp(1, 80)),
            false,
        ),
        ("VLAN-tagged, to the VIP", vlan, true),
        // NAT replies.
        (
            "a NAT real server's reply",
            frame6(real6(), c, TCP, &tcp(8080, 40000)),
            true,
        ),
        (
            "a NAT real server, another port",
            frame6(real6(), c, TCP, &tcp(9999, 40000)),
            false,
        ),
        (
            "a NAT real server to the director itself",
            frame6(real6(), local6(), TCP, &tcp(8080, 40000)),
            false,
        ),
        // Extension headers are walked.
        ("hop-by-hop", with(&[(hbh, 8)], vip6(), 80), true),
        (
            "hop-by-hop, destination options, routing",
            with(&[(hbh, 16), (dst, 8), (rt, 24)], vip6(), 80),
            true,
        ),
        ("authentication header", with(&[(ah, 12)], vip6(), 80), true),
        (
            "hop-by-hop to another port",
            with(&[(hbh, 8)], vip6(), 81),
            false,
        ),
        (
            "eight extension headers",
            with(&[(dst, 8); 8], vip6(), 80),
            true,
        ),
        (
            "nine: past the walk's bound",
            with(&[(dst, 8); 9], vip6(), 80),
            false,
        ),
        // Fragments go by address.
        (
            "a fragment to a VIP",
            with(&[(frag, 8)], vip6(), 9999),
            true,
        ),
        (
            "a fragment to no VIP",
            with(&[(frag, 8)], v6("2001:db8:1::9"), 80),
            false,
        ),
        (
            "a fragment from a NAT real server",
            {
                let (nh, l4) = chain(&[(frag, 8)], TCP, &tcp(1, 2));
                frame6(real6(), c, nh, &l4)
            },
            true,
        ),
        // ICMPv6: errors about our connections; NDP, echo, MLD never.
        (
            "packet too big to a VIP",
            frame6(c, vip6(), 58, &icmp6(2)),
            true,
        ),
        (
            "unreachable to a VIP",
            frame6(c, vip6(), 58, &icmp6(1)),
            true,
        ),
        (
            "time exceeded to a VIP",
            frame6(c, vip6(), 58, &icmp6(3)),
            true,
        ),
        (
            "parameter problem to a VIP",
            frame6(c, vip6(), 58, &icmp6(4)),
            true,
        ),
        (
            "unreachable from a NAT real server",
            frame6(real6(), c, 58, &icmp6(1)),
            true,
        ),
        (
            "unreachable to no VIP",
            frame6(c, v6("2001:db8:1::9"), 58, &icmp6(1)),
            false,
        ),
        (
            "echo request to a VIP",
            frame6(c, vip6(), 58, &icmp6(128)),
            false,
        ),
        (
            "neighbour solicitation for a VIP",
            frame6(c, vip6(), 58, &icmp6(135)),
            false,
        ),
        (
            "neighbour advertisement",
            frame6(c, vip6(), 58, &icmp6(136)),
            false,
        ),
        (
            "router advertisement",
            frame6(c, vip6(), 58, &icmp6(134)),
            false,
        ),
        ("MLD report", frame6(c, vip6(), 58, &icmp6(143)), false),
        // Cut short: the kernel's.
        (
            "IPv6 header cut",
            frame6(c, vip6(), TCP, &tcp(1, 80))[..40].to_vec(),
            false,
        ),
        (
            "ports cut",
            frame6(c, vip6(), TCP, &tcp(1, 80))[..14 + 40 + 3].to_vec(),
            false,
        ),
        (
            "extension header cut",
            with(&[(hbh, 64)], vip6(), 80)[..14 + 40 + 16].to_vec(),
            false,
        ),
        // IPv4 as before.
        (
            "IPv4 TCP to the VIP",
            frame4(CLIENT4, VIP4, &tcp(40000, 80)),
            true,
        ),
        (
            "IPv4 TCP to another port",
            frame4(CLIENT4, VIP4, &tcp(40000, 81)),
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, frame, want) in &cases {
        let got = p.selects(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
        if got != *want {
            wrong.push(format!("{what}: selected {got}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A rule removed from the maps stops selecting; the IPv4 and IPv6 maps
/// are separate.
#[test]
fn rules_follow_the_table_per_family() {
    let mut p = program();
    let to_vip6 = frame6(client6(), vip6(), TCP, &tcp(40000, 80));
    let to_vip4 = frame4(CLIENT4, VIP4, &tcp(40000, 80));
    assert!(p.selects(&to_vip6).unwrap() && p.selects(&to_vip4).unwrap());
    p.set_rules(&SteerRules {
        vips: vec![(TCP, VIP4, 80)],
        ..SteerRules::default()
    })
    .unwrap();
    assert!(!p.selects(&to_vip6).unwrap(), "IPv6 rule removed");
    assert!(p.selects(&to_vip4).unwrap(), "IPv4 rule kept");
    p.set_rules(&SteerRules {
        vips6: vec![(TCP, vip6(), 80)],
        ..SteerRules::default()
    })
    .unwrap();
    assert!(p.selects(&to_vip6).unwrap() && !p.selects(&to_vip4).unwrap());
}
