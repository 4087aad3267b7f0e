//! The generator's packets and the sink's parser: one frame layout both
//! sides agree on.
//!
//! Every frame is Ethernet + IPv4 (no options) + UDP or TCP (no options) +
//! a 20-byte stamp (`MAGIC`, sequence number, send time) + zero padding up
//! to the requested frame size. Flow `i` is client address
//! `198.19.0.1 + i / PORTS_PER_ADDR`, port `1024 + i % PORTS_PER_ADDR`, so a
//! million flows span 62 addresses and every 5-tuple is distinct; all of
//! 198.19.0.0/16 is RFC 2544 benchmark space. The stamp rides in the
//! payload, where no forwarding mode touches it; the sink finds it behind
//! an IPIP outer header as well (TUN), so it needs no decapsulation.

use std::net::Ipv4Addr;

use xdpvs::wire::checksum;

/// Marks a frame as ours ("XVLG").
pub const MAGIC: u32 = 0x5856_4c47;
/// Bytes of the stamp: magic (4), sequence (8), send time in ns (8).
pub const STAMP_LEN: usize = 20;
/// Client ports used per client address.
pub const PORTS_PER_ADDR: u32 = 16384;
const FIRST_PORT: u16 = 1024;
/// First client address (flow 0).
pub const CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPIP: u8 = 4;

const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// What the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Traffic {
    /// UDP datagrams, `flows` distinct client tuples round-robin.
    Udp,
    /// TCP SYNs only: a new connection per packet while fewer than `flows`
    /// packets have been sent (give `flows` ≥ the packet count).
    Syn,
    /// TCP SYN+ACK segments only, a new flow per packet like `syn` (a
    /// spoofed SYN+ACK flood: what reflection attacks send).
    SynAck,
    /// Established-style TCP: one SYN per flow, then ACK+PSH segments with
    /// data round-robin over the flows.
    Tcp,
}

/// Header fields of every frame of a run.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub traffic: Traffic,
    /// Frame length without the FCS.
    pub size: usize,
    pub flows: u32,
}

impl Layout {
    fn l4_len(&self) -> usize {
        match self.traffic {
            Traffic::Udp => UDP_LEN,
            Traffic::Syn | Traffic::SynAck | Traffic::Tcp => TCP_LEN,
        }
    }

    /// The smallest frame that holds the headers and the stamp.
    pub fn min_size(traffic: Traffic) -> usize {
        let l4 = if traffic == Traffic::Udp {
            UDP_LEN
        } else {
            TCP_LEN
        };
        ETH_LEN + IP_LEN + l4 + STAMP_LEN
    }

    /// Builds the frame of flow 0 with a zero stamp: what every packet is
    /// copied from before [`Layout::stamp`] fills in its own fields.
    pub fn template(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.size];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[ETH_LEN..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((self.size - ETH_LEN) as u16).to_be_bytes());
        ip[6] = 0x40; // DF: a benchmark frame is never fragmented
        ip[8] = 64;
        ip[9] = match self.traffic {
            Traffic::Udp => PROTO_UDP,
            _ => PROTO_TCP,
        };
        ip[16..20].copy_from_slice(&self.dst.octets());
        let l4 = &mut ip[IP_LEN..];
        l4[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        match self.traffic {
            Traffic::Udp => {
                l4[4..6].copy_from_slice(&((self.size - ETH_LEN - IP_LEN) as u16).to_be_bytes())
            }
            _ => {
                l4[12] = 5 << 4; // data offset: 20 bytes
                l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            }
        }
        f
    }

    /// The client address and port of flow `i`.
    pub fn flow(i: u32) -> (Ipv4Addr, u16) {
        let addr = u32::from(CLIENT_BASE) + i / PORTS_PER_ADDR;
        (
            Ipv4Addr::from(addr),
            FIRST_PORT + (i % PORTS_PER_ADDR) as u16,
        )
    }

    /// Turns a copy of the template into packet number `seq`, sent at
    /// `now_ns`: flow, TCP flags, stamp, and both checksums.
    pub fn stamp(&self, f: &mut [u8], seq: u64, now_ns: u64) {
        let flows = u64::from(self.flows.max(1));
        let flow = (seq % flows) as u32;
        let (src, sport) = Self::flow(flow);
        let l4_len = self.l4_len();
        let ip = &mut f[ETH_LEN..self.size];
        ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
        ip[12..16].copy_from_slice(&src.octets());
        ip[10..12].fill(0);
        let c = checksum::checksum(&ip[..IP_LEN]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let seg = &mut ip[IP_LEN..];
        seg[0..2].copy_from_slice(&sport.to_be_bytes());
        let payload = &mut seg[l4_len..];
        payload[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        payload[4..12].copy_from_slice(&seq.to_be_bytes());
        payload[12..20].copy_from_slice(&now_ns.to_be_bytes());
        let (csum_at, proto) = match self.traffic {
            Traffic::Udp => (6, PROTO_UDP),
            Traffic::Syn | Traffic::SynAck | Traffic::Tcp => {
                // The client's initial sequence number, one per flow.
                let isn = flow.wrapping_mul(0x9e37_79b9);
                let syn = self.traffic != Traffic::Tcp || seq < flows;
                let (s, flags, ack) = if self.traffic == Traffic::SynAck {
                    (isn, TCP_SYN | TCP_ACK, isn ^ 0x5a5a_5a5a)
                } else if syn {
                    (isn, TCP_SYN, 0u32)
                } else {
                    (isn.wrapping_add(1), TCP_ACK | TCP_PSH, 1)
                };
                seg[4..8].copy_from_slice(&s.to_be_bytes());
                seg[8..12].copy_from_slice(&ack.to_be_bytes());
                seg[13] = flags;
                (16, PROTO_TCP)
            }
        };
        seg[csum_at..csum_at + 2].fill(0);
        let pseudo = checksum::pseudo_header_v4(src, self.dst, proto, seg.len() as u16);
        let mut c = !checksum::fold(checksum::combine(pseudo, checksum::sum(seg)));
        if c == 0 && proto == PROTO_UDP {
            c = 0xffff;
        }
        seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// The stamp of a received frame: `(sequence, send time in ns)`, or `None`
/// for a frame that is not one of ours (ARP, a stray packet). Looks
/// through one IPIP outer header.
pub fn parse_stamp(frame: &[u8]) -> Option<(u64, u64)> {
    if frame.len() < ETH_LEN || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let mut ip = &frame[ETH_LEN..];
    for _ in 0..2 {
        if ip.len() < IP_LEN || ip[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ihl < IP_LEN || ip.len() < ihl {
            return None;
        }
        let proto = ip[9];
        let l4 = &ip[ihl..];
        let payload = match proto {
            PROTO_IPIP => {
                ip = l4;
                continue;
            }
            PROTO_UDP => l4.get(UDP_LEN..)?,
            PROTO_TCP => l4.get(usize::from(*l4.get(12)? >> 4) * 4..)?,
            _ => return None,
        };
        if payload.len() < STAMP_LEN || payload[0..4] != MAGIC.to_be_bytes() {
            return None;
        }
        let seq = u64::from_be_bytes(payload[4..12].try_into().ok()?);
        let ts = u64::from_be_bytes(payload[12..20].try_into().ok()?);
        return Some((seq, ts));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn layout(traffic: Traffic, size: usize, flows: u32) -> Layout {
        Layout {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            dst: Ipv4Addr::new(198, 18, 1, 1),
            dst_port: 80,
            traffic,
            size,
            flows,
        }
    }

    fn build(l: &Layout, seq: u64, ts: u64) -> Vec<u8> {
        let mut f = l.template();
        l.stamp(&mut f, seq, ts);
        f
    }

    #[test]
    fn udp_frame_is_valid_and_carries_its_stamp() {
        let l = layout(Traffic::Udp, 64, 1000);
        let f = build(&l, 1234, 987_654_321);
        assert_eq!(f.len(), 64);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, [198, 19, 0, 1]);
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP")
        };
        assert_eq!(u.source_port(), 1024 + 234);
        assert_eq!(u.destination_port(), 80);
        let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
        assert_eq!(u.checksum(), want);
        assert_eq!(parse_stamp(&f), Some((1234, 987_654_321)));
    }

    #[test]
    fn flows_cover_distinct_tuples() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..(3 * PORTS_PER_ADDR) {
            assert!(seen.insert(Layout::flow(i)));
        }
        assert_eq!(Layout::flow(PORTS_PER_ADDR).0, Ipv4Addr::new(198, 19, 0, 2));
        assert_eq!(Layout::flow(999_999).0, Ipv4Addr::new(198, 19, 0, 62));
    }

    #[test]
    fn tcp_sends_one_syn_per_flow_then_data() {
        let l = layout(Traffic::Tcp, 80, 4);
        for seq in 0..12u64 {
            let f = build(&l, seq, 5);
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!()
            };
            let Some(TransportSlice::Tcp(t)) = &p.transport else {
                panic!("not TCP")
            };
            assert_eq!(t.syn(), seq < 4, "seq {seq}");
            assert_eq!(t.ack(), seq >= 4, "seq {seq}");
            let want = t
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
                .unwrap();
            assert_eq!(t.checksum(), want);
            assert_eq!(parse_stamp(&f), Some((seq, 5)));
        }
    }

    #[test]
    fn syn_flood_is_all_syns() {
        let l = layout(Traffic::Syn, Layout::min_size(Traffic::Syn), 1 << 24);
        for seq in [0u64, 1, 100_000, (1 << 24) + 3] {
            let f = build(&l, seq, 0);
            assert_eq!(f[14 + 20 + 13], TCP_SYN);
        }
    }

    #[test]
    fn syn_ack_flood_is_all_syn_acks() {
        let l = layout(Traffic::SynAck, Layout::min_size(Traffic::SynAck), 1 << 24);
        for seq in [0u64, 1, 100_000] {
            let f = build(&l, seq, 0);
            assert_eq!(f[14 + 20 + 13], TCP_SYN | TCP_ACK);
        }
    }

    #[test]
    fn stamp_is_found_behind_an_ipip_header() {
        let l = layout(Traffic::Udp, 64, 1);
        let inner = build(&l, 77, 99);
        let mut f = inner[..14].to_vec();
        let mut outer = [0u8; 20];
        outer[0] = 0x45;
        outer[9] = PROTO_IPIP;
        f.extend_from_slice(&outer);
        f.extend_from_slice(&inner[14..]);
        assert_eq!(parse_stamp(&f), Some((77, 99)));
    }

    #[test]
    fn foreign_frames_have_no_stamp() {
        assert_eq!(parse_stamp(&[0u8; 10]), None);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse_stamp(&arp), None);
        let l = layout(Traffic::Udp, 64, 1);
        let mut f = build(&l, 1, 1);
        f[14 + 28] ^= 0xff; // magic
        assert_eq!(parse_stamp(&f), None);
        // Truncated behind the headers.
        let f = build(&l, 1, 1);
        assert_eq!(parse_stamp(&f[..50]), None);
    }
}
