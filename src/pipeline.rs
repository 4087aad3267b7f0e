//! The per-packet path, free of I/O: parse → lookup/schedule → rewrite.
//!
//! A worker owns one [`Pipeline`] and calls [`Pipeline::process`] for every
//! frame it receives; tests and benchmarks call it the same way. The
//! verdict says whether to transmit the (rewritten) frame and out of which
//! port, to pass it to the kernel (not ours: ARP, traffic to the director
//! itself), or to drop it — every drop counted by reason. Nothing here
//! allocates, locks or makes a system call.
//!
//! Order of the stages follows IPVS (`ip_vs_in`): a packet first looks for
//! its connection (either side of it); only a miss consults the services,
//! so established connections keep flowing after their service changes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::app;
use crate::conn::{self, Conn, ConnTable, Direction, FlowKey, InsertError, Side, TcpState, flags};
use crate::dest::{Dest, DestRef, Forward};
use crate::sched::Flow;
use crate::service::{Service, Snapshot};
use crate::wire::ethernet::{ETHERTYPE_IPV4, EthernetFrame};
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use crate::wire::{WireError, checksum};
use crate::xmit::{self, Hop, Layout};

/// Time as the pipeline counts it: whole seconds from any fixed origin.
pub type Tick = u32;

/// A received frame inside its buffer (an AF_XDP UMEM chunk): the bytes
/// `buf[head..head + len]`, with headroom before `head` for headers that
/// encapsulation prepends.
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
    port: u8,
}

impl<'a> Frame<'a> {
    /// `len` bytes at `head` of `buf`, received on port `port`.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize, port: u8) -> Frame<'a> {
        assert!(head + len <= buf.len(), "frame outside its buffer");
        Frame {
            buf,
            head,
            len,
            port,
        }
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Offset of the first byte in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The port it was received on.
    #[inline]
    pub fn port(&self) -> u8 {
        self.port
    }

    /// Sets the port it counts as received on: for a frame that another
    /// worker received and handed over.
    #[inline]
    pub fn set_port(&mut self, port: u8) {
        self.port = port;
    }

    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Grows the frame to `len` bytes into the buffer's tailroom (the new
    /// bytes keep whatever the buffer held). False, unchanged, if the
    /// buffer is too short.
    #[inline]
    pub(crate) fn grow_to(&mut self, len: usize) -> bool {
        if self.head + len > self.buf.len() {
            return false;
        }
        self.len = self.len.max(len);
        true
    }

    /// Sets the length, within what [`Frame::grow_to`] allowed.
    #[inline]
    pub(crate) fn set_len(&mut self, len: usize) {
        assert!(
            self.head + len <= self.buf.len(),
            "frame outside its buffer"
        );
        self.len = len;
    }

    /// Grows the frame by `n` bytes at the front, into the headroom, or —
    /// without headroom — by moving the data back into the tailroom.
    #[inline]
    pub(crate) fn push_front(&mut self, n: usize) -> bool {
        if self.head < n {
            if self.buf.len() < n + self.len {
                return false;
            }
            self.buf.copy_within(self.head..self.head + self.len, n);
            self.head = n;
        }
        self.head -= n;
        self.len += n;
        true
    }
}

/// What to do with a frame after [`Pipeline::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit `len` bytes from the frame's (new) head out of `port`.
    Tx {
        port: u8,
        len: usize,
    },
    /// Not for the load balancer: hand it to the kernel.
    Pass,
    Drop(DropReason),
}

/// Why a frame was dropped. Each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Truncated or inconsistent headers.
    Malformed,
    /// IPv4 header checksum wrong (the kernel's `ip_rcv` drops these too).
    BadIpChecksum,
    /// A fragment of a packet for a VIP: ports are not in every fragment,
    /// and this forwarder does not reassemble.
    Fragment,
    /// A TCP segment that is not a SYN, for a VIP, with no connection.
    NoConnection,
    /// The scheduler found no available real server.
    NoDest,
    /// The connection table is full: new flows are refused.
    TableFull,
    /// The real server's next-hop MAC is not resolved yet.
    NoNeighbour,
    /// The connection's real server was deleted.
    DestGone,
    /// Too big to tunnel and fragmentation allowed (not done here).
    TooBig,
    /// A NAT reply whose TTL ran out.
    TtlExceeded,
    /// No room in the buffer to prepend the tunnel header.
    NoHeadroom,
    /// A NAT connection's reply 5-tuple is already another connection's.
    NatCollision,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::NoConnection,
        DropReason::NoDest,
        DropReason::TableFull,
        DropReason::NoNeighbour,
        DropReason::DestGone,
        DropReason::TooBig,
        DropReason::TtlExceeded,
        DropReason::NoHeadroom,
        DropReason::NatCollision,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::Fragment => "fragment",
            DropReason::NoConnection => "no_connection",
            DropReason::NoDest => "no_dest",
            DropReason::TableFull => "table_full",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::DestGone => "dest_gone",
            DropReason::TooBig => "too_big",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NatCollision => "nat_collision",
        }
    }
}

/// Per-worker packet counters (single writer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx: u64,
    /// Frames sent to real servers, by forwarding method (DR, TUN, NAT).
    pub tx: [u64; 3],
    /// NAT replies sent back to clients.
    pub tx_replies: u64,
    /// ICMP errors the director generated (fragmentation needed).
    pub icmp_sent: u64,
    /// ICMP errors about connections relayed to a real server or client.
    pub icmp_relayed: u64,
    pub passed: u64,
    pub drops: [u64; DropReason::COUNT],
    pub conns_created: u64,
    pub conns_expired: u64,
    /// FTP helper: 227 replies rewritten to the VIP.
    pub app_rewrites: u64,
    /// FTP helper: passive data connections expected.
    pub app_expected: u64,
    /// FTP helper: data connections created (passive and active).
    pub app_conns: u64,
    /// FTP helper: announcements left alone (a foreign address, no room
    /// to rewrite, table full).
    pub app_refused: u64,
}

impl Counters {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// A parsed IPv4 TCP/UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    layout: Layout,
    key: FlowKey<Ipv4Addr>,
    tcp_flags: u8,
}

/// Seconds an expected FTP data connection waits for its first packet.
pub const EXPECT_TIMEOUT: Tick = 60;

/// Maximum connections reaped per [`Pipeline::expire`] call by default.
pub const EXPIRE_BUDGET: usize = 256;

/// The largest batch [`Pipeline::process_batch`] takes.
pub const MAX_BATCH: usize = 64;

/// From this many connections on, the table no longer fits the caches and
/// [`Pipeline::process_batch`] walks a batch in passes to overlap misses.
pub const PREFETCH_MIN_CONNS: u32 = 1 << 14;

/// One worker's packet path: its connection table, the snapshot of the
/// services it currently reads, and its counters.
pub struct Pipeline {
    snap: Arc<Snapshot>,
    st: State,
    /// Connections from which batches are processed in passes.
    prefetch_min: u32,
}

/// The worker-owned, mutable part of the pipeline. Kept apart from the
/// snapshot so the packet path can borrow both without touching the `Arc`'s
/// reference count per packet.
struct State {
    conns: ConnTable<Ipv4Addr>,
    counters: Counters,
    /// IP ident of the next outer IPIP header.
    ident: u16,
    /// ICMP errors generated in the current second.
    icmp_second: Tick,
    icmp_in_second: u32,
    /// This worker's index: its line in every traffic counter.
    worker: usize,
}

/// At most this many ICMP errors per second per worker, as Linux's
/// `icmp_msgs_per_sec` limits the host (default 1000).
pub const ICMP_PER_SECOND: u32 = 1000;

/// Parses a frame: [`parse_common`] for the shape nearly every packet has,
/// the general views otherwise.
#[inline]
fn parse(d: &[u8]) -> Result<Option<Parsed>, WireError> {
    match parse_common(d) {
        Some(p) => Ok(Some(p)),
        None => parse_any(d),
    }
}

/// The fast path: an untagged Ethernet frame with an IPv4 header without
/// options, not a fragment, carrying a well-formed TCP or UDP header. Reads
/// fixed offsets of fixed-size arrays, so the checks below are the only
/// ones; anything else (or anything doubtful) returns `None` and goes
/// through the views in [`parse_any`], which accept and reject exactly the
/// same frames. The equivalence is tested below.
#[inline]
fn parse_common(d: &[u8]) -> Option<Parsed> {
    let h: &[u8; 42] = d.first_chunk()?;
    if h[12..14] != ETHERTYPE_IPV4.to_be_bytes() || h[14] != 0x45 {
        return None;
    }
    let ip_len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let frag = u16::from_be_bytes([h[20], h[21]]) & 0x3fff; // MF and offset
    if ip_len > d.len() - 14 || frag != 0 {
        return None;
    }
    let proto = h[23];
    let l4_len = ip_len.checked_sub(20)?;
    let tcp_flags = match proto {
        PROTO_TCP => {
            let t: &[u8; 54] = d.first_chunk()?;
            let doff = usize::from(t[46] >> 4) * 4;
            if doff < 20 || doff > l4_len {
                return None;
            }
            t[47]
        }
        PROTO_UDP => {
            let len = usize::from(u16::from_be_bytes([h[38], h[39]]));
            if len < 8 || len > l4_len {
                return None;
            }
            0
        }
        _ => return None,
    };
    Some(Parsed {
        layout: Layout {
            l2_len: 14,
            ihl: 20,
            ip_len,
        },
        key: FlowKey {
            proto,
            saddr: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
            sport: u16::from_be_bytes([h[34], h[35]]),
            daddr: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
            dport: u16::from_be_bytes([h[36], h[37]]),
        },
        tcp_flags,
    })
}

/// The general parser, over the `wire` views.
fn parse_any(d: &[u8]) -> Result<Option<Parsed>, WireError> {
    let eth = EthernetFrame::new_checked(d)?;
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return Ok(None);
    }
    let l2_len = eth.header_len();
    let ip = Ipv4Packet::new_checked(&d[l2_len..])?;
    let proto = ip.protocol();
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return Ok(None);
    }
    let ihl = ip.header_len();
    let ip_len = usize::from(ip.total_len());
    let mut parsed = Parsed {
        layout: Layout {
            l2_len,
            ihl,
            ip_len,
        },
        key: FlowKey {
            proto,
            saddr: ip.src_addr(),
            sport: 0,
            daddr: ip.dst_addr(),
            dport: 0,
        },
        tcp_flags: 0,
    };
    if ip.is_fragment() {
        return Err(WireError::Unsupported);
    }
    let l4 = ip.payload();
    if proto == PROTO_TCP {
        let tcp = TcpPacket::new_checked(l4)?;
        (parsed.key.sport, parsed.key.dport) = (tcp.src_port(), tcp.dst_port());
        parsed.tcp_flags = tcp.flags();
    } else {
        let udp = UdpPacket::new_checked(l4)?;
        (parsed.key.sport, parsed.key.dport) = (udp.src_port(), udp.dst_port());
    }
    Ok(Some(parsed))
}

impl Pipeline {
    /// A pipeline with room for `capacity` connections, reading `snap`.
    pub fn new(capacity: u32, snap: Arc<Snapshot>, now: Tick) -> Pipeline {
        Pipeline {
            snap,
            st: State {
                conns: ConnTable::new(capacity, now),
                counters: Counters::default(),
                ident: 0,
                icmp_second: now,
                icmp_in_second: 0,
                worker: 0,
            },
            prefetch_min: PREFETCH_MIN_CONNS,
        }
    }

    /// Makes this the pipeline of worker `w` (0 by default): the line it
    /// writes in every traffic counter (`ServiceTable::set_workers`).
    pub fn set_worker(&mut self, w: usize) {
        self.st.worker = w;
    }

    /// Sets the table size from which [`Pipeline::process_batch`] works in
    /// passes (default [`PREFETCH_MIN_CONNS`]; 0 = always).
    pub fn set_prefetch_min(&mut self, conns: u32) {
        self.prefetch_min = conns;
    }

    /// Switches to a new snapshot (between batches).
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        self.snap = snap;
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    pub fn counters(&self) -> &Counters {
        &self.st.counters
    }

    pub fn conns(&self) -> &ConnTable<Ipv4Addr> {
        &self.st.conns
    }

    /// Processes one frame.
    #[inline]
    pub fn process(&mut self, frame: &mut Frame<'_>, now: Tick) -> Verdict {
        let parsed = parse(frame.data());
        let hash = match &parsed {
            Ok(Some(p)) => self.st.conns.hash(&p.key),
            _ => 0,
        };
        self.st.finish(&self.snap, frame, parsed, hash, now)
    }

    /// Processes a batch of frames (at most [`MAX_BATCH`]), writing one
    /// verdict per frame. Same result as [`Pipeline::process`] on each in
    /// turn, but faster on large tables: the batch is walked in passes so
    /// that the cache misses of different packets overlap — parse and hash;
    /// warm the index slots and the likely connection entries
    /// ([`ConnTable::warm`]); then process each packet with both in cache.
    /// Small tables skip the passes.
    pub fn process_batch(&mut self, frames: &mut [Frame<'_>], verdicts: &mut [Verdict], now: Tick) {
        let n = frames.len();
        assert!(n <= MAX_BATCH && verdicts.len() >= n, "batch too large");
        if self.st.conns.len() < self.prefetch_min {
            // The table is cache-resident: the extra passes would cost more
            // than the misses they hide (measured at 1 k flows, before the
            // parse fast path: 62 against 43 ns per packet).
            for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()) {
                *v = self.process(f, now);
            }
            return;
        }
        let mut parsed = [Ok(None); MAX_BATCH];
        let mut hashes = [0u64; MAX_BATCH];
        let conns = &self.st.conns;
        for (i, f) in frames.iter().enumerate() {
            parsed[i] = parse(f.data());
            if let Ok(Some(p)) = &parsed[i] {
                hashes[i] = conns.hash(&p.key);
            }
        }
        conns.warm(&hashes[..n]);
        for (i, f) in frames.iter_mut().enumerate() {
            verdicts[i] = self.st.finish(&self.snap, f, parsed[i], hashes[i], now);
        }
    }

    /// Reaps expired connections, at most `budget` examined. Call between
    /// batches.
    pub fn expire(&mut self, now: Tick, budget: usize) -> usize {
        let snap = &self.snap;
        let n = self.st.conns.expire(now, budget, |c| {
            if c.proto & conn::EXPECT_PROTO != 0 {
                return None;
            }
            if c.has(flags::TEMPLATE) && c.control > 0 {
                return Some(now.saturating_add(c.template_timeout().max(1)));
            }
            if let Some(d) = snap.dest(DestRef(c.dest)) {
                if c.has(flags::TEMPLATE) {
                    d.counters.set_persistent(false);
                } else {
                    d.unbind(c.has(flags::INACTIVE));
                }
            }
            None
        });
        self.st.counters.conns_expired += n as u64;
        n
    }
}

impl State {
    /// Classifies a parsed frame and counts the verdict.
    #[inline]
    fn finish(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        parsed: Result<Option<Parsed>, WireError>,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        self.counters.rx += 1;
        let v = match parsed {
            Ok(Some(p)) => self.classify(snap, frame, &p, hash, now),
            Ok(None) => self.icmp_error(snap, frame, now),
            Err(e) => bad_frame(snap, frame.data(), e),
        };
        match v {
            Verdict::Pass => self.counters.passed += 1,
            Verdict::Drop(r) => self.counters.drops[r as usize] += 1,
            Verdict::Tx { .. } => {}
        }
        v
    }

    #[inline]
    fn classify(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        if !ip_header_ok(frame.data(), &p.layout) {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        match self.conns.lookup(&p.key, hash) {
            Some((i, Side::Client)) if self.is_reused(i, p) => {
                // A new connection on the 5-tuple of one that has ended:
                // schedule it afresh rather than send it to the old
                // server, which may be quiescent or deleted since.
                self.end(snap, i);
                self.new_conn(snap, frame, p, hash, now)
            }
            Some((i, side)) if self.conns.get(i).expires > now => {
                self.established(snap, frame, p, i, side, now)
            }
            Some((i, _)) => {
                // Expired but not reaped yet: end it now, then treat the
                // packet as new.
                self.end(snap, i);
                self.new_conn(snap, frame, p, hash, now)
            }
            None => self.new_conn(snap, frame, p, hash, now),
        }
    }

    /// Whether a client's SYN (without ACK) starts a new connection on
    /// the 5-tuple of connection `i`, as IPVS's `is_new_conn_expected`
    /// decides with `conn_reuse_mode` 3: the old one is in TIME_WAIT or
    /// CLOSE, or, seen from one side only (DR, TUN), in FIN_WAIT — its
    /// client has closed, so a SYN can only be a new connection. A
    /// connection controlled by a persistence template is not reused: its
    /// template would send the new one to the same server anyway.
    #[inline]
    fn is_reused(&self, i: u32, p: &Parsed) -> bool {
        if p.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
            return false;
        }
        let c = self.conns.get(i);
        if c.proto != PROTO_TCP || c.has(flags::TEMPLATE) || c.control != 0 {
            return false;
        }
        match TcpState::from_u8(c.state) {
            TcpState::TimeWait | TcpState::Close => true,
            TcpState::FinWait => c.has(flags::NO_OUTPUT),
            _ => false,
        }
    }

    /// A packet of a known, live connection.
    #[inline]
    fn established(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        i: u32,
        side: Side,
        now: Tick,
    ) -> Verdict {
        let c = *self.conns.get(i);
        let Some(dest) = snap.dest(DestRef(c.dest)) else {
            self.conns.remove(i);
            self.counters.conns_expired += 1;
            return Verdict::Drop(DropReason::DestGone);
        };
        let dir = match side {
            Side::Server => Direction::Output,
            Side::Client if c.has(flags::NO_OUTPUT) => Direction::InputOnly,
            Side::Client => Direction::Input,
        };
        self.update_state(snap, i, dest, dir, p, now);
        self.count(dest, side, p.layout.ip_len);
        let mut p = *p;
        if c.proto == PROTO_TCP
            && c.flags & flags::FWD_MASK == Forward::Nat as u8
            && snap.is_ftp_port(c.vport)
        {
            p.layout = self.ftp(snap, frame, &p.layout, i, side, now);
        }
        match side {
            Side::Client => self.forward(snap, frame, &p, &c, dest, now),
            Side::Server => {
                let hop = Hop {
                    port: c.in_port,
                    dst_mac: c.client_mac,
                    src_mac: snap.ports[usize::from(c.in_port)].mac,
                };
                self.counters.tx_replies += 1;
                xmit::nat::xmit_out(frame, &p.layout, c.proto, c.vaddr, c.vport, &hop)
            }
        }
    }

    /// The FTP helper on a packet of NAT control connection `i` (see
    /// [`crate::app::ftp`]): shifts sequence numbers for earlier resized
    /// replies, rewrites a 227 reply's address to the VIP, and creates the
    /// data connections that replies and commands announce. Returns the
    /// packet's (possibly new) layout; on anything doubtful the packet
    /// passes as it is.
    #[cold]
    #[inline(never)]
    fn ftp(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        l: &Layout,
        i: u32,
        side: Side,
        now: Tick,
    ) -> Layout {
        let end = l.l2_len + l.ip_len;
        let l4 = l.l4();
        let doff = usize::from(frame.data()[l4 + 12] >> 4) * 4;
        let payload_at = l4 + doff;
        let intact = payload_at < end && app::ftp::checksum_ok(frame.data(), l);
        let c = *self.conns.get(i);
        let seq = u32::from_be_bytes(frame.data()[l4 + 4..l4 + 8].try_into().unwrap_or([0; 4]));
        match side {
            Side::Server => {
                app::fix_seq(&mut frame.data_mut()[l4..end], &c.seq);
                if !intact {
                    return *l;
                }
                match app::ftp::reply(&frame.data()[payload_at..end]) {
                    Some(app::ftp::Reply::Pasv {
                        addr,
                        port,
                        at,
                        len,
                    }) => {
                        if addr == c.vaddr {
                            self.expect(&c, port, now);
                            return *l;
                        }
                        if addr != c.daddr {
                            self.counters.app_refused += 1;
                            return *l;
                        }
                        let (text, n) = app::ftp::pasv_text(c.vaddr);
                        let mtu = usize::from(snap.ports[usize::from(c.in_port)].mtu);
                        let Some(nl) =
                            app::ftp::replace(frame, l, payload_at, at, len, &text[..n], mtu)
                        else {
                            self.counters.app_refused += 1;
                            return *l;
                        };
                        if n != len {
                            self.conns
                                .get_mut(i)
                                .seq
                                .resized(seq, n as i32 - len as i32);
                        }
                        self.counters.app_rewrites += 1;
                        self.expect(&c, port, now);
                        nl
                    }
                    Some(app::ftp::Reply::Epsv { port }) => {
                        self.expect(&c, port, now);
                        *l
                    }
                    None => *l,
                }
            }
            Side::Client => {
                app::fix_ack(&mut frame.data_mut()[l4..end], doff, &c.seq);
                if intact && let Some(a) = app::ftp::command(&frame.data()[payload_at..end]) {
                    if a.addr == c.caddr {
                        self.open_active(snap, &c, a.port, now);
                    } else {
                        self.counters.app_refused += 1;
                    }
                }
                *l
            }
        }
    }

    /// Expects the client of control connection `c` to open a data
    /// connection to VIP:`port`, for its real server's `port` (passive
    /// mode). Refreshes an expectation that is already there.
    fn expect(&mut self, c: &Conn<Ipv4Addr>, port: u16, now: Tick) {
        let e = Conn {
            caddr: c.caddr,
            vaddr: c.vaddr,
            daddr: c.daddr,
            cport: 0,
            vport: port,
            dport: port,
            proto: PROTO_TCP | conn::EXPECT_PROTO,
            flags: Forward::Nat as u8 | flags::TEMPLATE,
            in_port: c.in_port,
            dest: c.dest,
            expires: now.saturating_add(EXPECT_TIMEOUT),
            ..Conn::default()
        };
        let key = e.client_key();
        let h = self.conns.hash(&key);
        if let Some((j, _)) = self.conns.lookup(&key, h) {
            let x = self.conns.get_mut(j);
            (x.daddr, x.dest) = (e.daddr, e.dest);
            self.conns.set_expires(j, e.expires);
        } else if self.conns.insert(e, h).is_err() {
            self.counters.app_refused += 1;
            return;
        }
        self.counters.app_expected += 1;
    }

    /// The expected data connection a client's SYN to `key`'s VIP port
    /// opens, taken out of the table: its real server and port.
    fn take_expected(
        &mut self,
        key: &FlowKey<Ipv4Addr>,
        now: Tick,
    ) -> Option<(u32, Ipv4Addr, u16)> {
        let ek = FlowKey {
            proto: key.proto | conn::EXPECT_PROTO,
            sport: 0,
            ..*key
        };
        let (j, _) = self.conns.lookup(&ek, self.conns.hash(&ek))?;
        let e = *self.conns.get(j);
        self.conns.remove(j);
        (e.expires > now).then_some((e.dest, e.daddr, e.dport))
    }

    /// Creates the data connection the real server of control connection
    /// `c` will open from its port 20 (control port − 1) to the client's
    /// `port` (active mode), so that its packets are translated to come
    /// from VIP:20.
    fn open_active(&mut self, snap: &Snapshot, c: &Conn<Ipv4Addr>, port: u16, now: Tick) {
        let (Some(vport), Some(dport)) = (c.vport.checked_sub(1), c.dport.checked_sub(1)) else {
            return;
        };
        let Some(dest) = snap.dest(DestRef(c.dest)) else {
            return;
        };
        let conn = Conn {
            caddr: c.caddr,
            vaddr: c.vaddr,
            daddr: c.daddr,
            cport: port,
            vport,
            dport,
            proto: PROTO_TCP,
            state: TcpState::None as u8,
            flags: Forward::Nat as u8 | flags::INACTIVE | flags::REVERSE,
            in_port: c.in_port,
            dest: c.dest,
            client_mac: c.client_mac,
            expires: now.saturating_add(EXPECT_TIMEOUT),
            ..Conn::default()
        };
        let key = conn.client_key();
        let h = self.conns.hash(&key);
        if let Some((j, _)) = self.conns.lookup(&key, h) {
            let old = *self.conns.get(j);
            if old.daddr == conn.daddr && old.dport == dport && old.expires > now {
                return; // the same PORT again
            }
            self.end(snap, j);
        }
        match self.conns.insert(conn, h) {
            Ok(_) => {
                self.counters.conns_created += 1;
                self.counters.app_conns += 1;
                dest.bind();
                self.count_conn(dest);
            }
            Err(_) => self.counters.app_refused += 1,
        }
    }

    /// Moves connection `i` through its protocol's states for this packet,
    /// keeps its real server's counters right and sets its new expiry.
    #[inline]
    fn update_state(
        &mut self,
        snap: &Snapshot,
        i: u32,
        dest: &Dest,
        dir: Direction,
        p: &Parsed,
        now: Tick,
    ) {
        let timeouts = &snap.timeouts;
        let c = self.conns.get_mut(i);
        let timeout = if c.proto == PROTO_TCP {
            let old = TcpState::from_u8(c.state);
            let new = conn::state::tcp_transition(old, dir, p.tcp_flags);
            if new != old {
                let inactive = c.has(flags::INACTIVE);
                let established = new == TcpState::Established;
                if inactive == established {
                    dest.counters.set_active(established);
                    c.flags ^= flags::INACTIVE;
                }
                c.state = new as u8;
            }
            timeouts.tcp(new)
        } else {
            timeouts.udp
        };
        self.conns.set_expires(i, now.saturating_add(timeout));
    }

    /// A packet that belongs to no connection: schedule it if it is for a
    /// virtual service.
    fn new_conn(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        let k = &p.key;
        let syn = p.tcp_flags & (TCP_SYN | TCP_RST) == TCP_SYN;
        if snap.ftp_nat
            && k.proto == PROTO_TCP
            && syn
            && let Some((d, rip, rport)) = self.take_expected(k, now)
        {
            // A passive FTP data connection the helper expects.
            let Some(dest) = snap.dest(DestRef(d)) else {
                return Verdict::Drop(DropReason::DestGone);
            };
            self.counters.app_conns += 1;
            return self.open(snap, frame, p, hash, dest, rip, rport, None, now);
        }
        let Some(svc) = snap.service_v4(k.proto, k.daddr, k.dport) else {
            return Verdict::Pass;
        };
        // TCP connections start with a SYN (`tcp_conn_schedule`).
        if k.proto == PROTO_TCP && !syn {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let (dest, template) = if svc.persistence_timeout > 0 {
            match self.persistent_dest(snap, svc, k, now) {
                Ok((d, t)) => (d, Some(t)),
                Err(r) => return Verdict::Drop(r),
            }
        } else {
            match schedule(snap, svc, k, now) {
                Some(d) => (d, None),
                None => return Verdict::Drop(DropReason::NoDest),
            }
        };
        let IpAddr::V4(rip) = dest.addr else {
            return Verdict::Drop(DropReason::NoDest);
        };
        // The real server's port for the service's own port; any other
        // port of a port-0 service, or a port-0 real server, keeps the
        // port the client asked for (`ip_vs_sched_persist`).
        let dport = if k.dport == svc.port && dest.port != 0 {
            dest.port
        } else {
            k.dport
        };
        self.open(snap, frame, p, hash, dest, rip, dport, template, now)
    }

    /// Adds the connection of the client's first packet `p` to real
    /// server `dest` (`rip:dport`), controlled by persistence template
    /// `template`, and forwards the packet.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        dest: &Dest,
        rip: Ipv4Addr,
        dport: u16,
        template: Option<u32>,
        now: Tick,
    ) -> Verdict {
        let k = &p.key;
        let mut cflags = dest.fwd as u8 | flags::INACTIVE;
        cflags |= match dest.fwd {
            Forward::Nat => flags::REVERSE,
            Forward::Dr | Forward::Tun => flags::NO_OUTPUT,
        };
        let mut client_mac = [0; 6];
        client_mac.copy_from_slice(&frame.data()[6..12]);
        let conn = Conn {
            caddr: k.saddr,
            vaddr: k.daddr,
            daddr: rip,
            cport: k.sport,
            vport: k.dport,
            dport,
            proto: k.proto,
            state: TcpState::None as u8,
            flags: cflags,
            in_port: frame.port(),
            dest: dest.r.0,
            client_mac,
            expires: now.saturating_add(snap.timeouts.tcp(TcpState::None)),
            ..Conn::default()
        };
        let i = match self.conns.insert(conn, hash) {
            Ok(i) => i,
            Err(InsertError::Full) => return Verdict::Drop(DropReason::TableFull),
            Err(InsertError::Collision) => return Verdict::Drop(DropReason::NatCollision),
        };
        if let Some(t) = template {
            self.conns.set_control(i, t);
        }
        self.counters.conns_created += 1;
        dest.bind();
        self.count_conn(dest);
        self.count(dest, Side::Client, p.layout.ip_len);
        let dir = if dest.fwd == Forward::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.update_state(snap, i, dest, dir, p, now);
        self.forward(snap, frame, p, &conn, dest, now)
    }

    /// The real server of a persistent service for a new connection, from
    /// the client's persistence template or, without a usable one, from the
    /// scheduler with a new template (`ip_vs_sched_persist`).
    ///
    /// The template is keyed by the client address under the service's
    /// netmask and the VIP; its port is the service port, or 0 for port-0
    /// services and for FTP (port 21), whose data connections use other
    /// ports of the same real server. Each new connection re-arms the
    /// template for the persistence timeout; when it comes due while it
    /// still controls connections it is re-armed again, so it expires a
    /// timeout after its last connection is gone. A template whose real
    /// server has been deleted is replaced; one whose server is quiescent
    /// (weight 0) or overloaded is still honoured, as in IPVS (whose
    /// `expire_quiescent_template` is off by default).
    fn persistent_dest<'s>(
        &mut self,
        snap: &'s Snapshot,
        svc: &'s Service,
        k: &FlowKey<Ipv4Addr>,
        now: Tick,
    ) -> Result<(&'s Dest, u32), DropReason> {
        const FTP_PORT: u16 = 21;
        let mask = svc.persistence_netmask.to_bits();
        let tkey = FlowKey {
            proto: k.proto | conn::TEMPLATE_PROTO,
            saddr: Ipv4Addr::from_bits(k.saddr.to_bits() & mask),
            sport: 0,
            daddr: k.daddr,
            dport: if k.dport == svc.port && svc.port != FTP_PORT {
                k.dport
            } else {
                0
            },
        };
        let timeout = svc.persistence_timeout;
        let thash = self.conns.hash(&tkey);
        if let Some((t, _)) = self.conns.lookup(&tkey, thash) {
            let tc = *self.conns.get(t);
            // Past its time but still controlling connections, IPVS would
            // have re-armed it: it is alive.
            let alive = tc.expires > now || tc.control > 0;
            match snap.dest(DestRef(tc.dest)) {
                Some(d) if alive => {
                    self.conns.set_expires(t, now.saturating_add(timeout));
                    return Ok((d, t));
                }
                d => {
                    if tc.control > 0 {
                        // Its connections still refer to it: keep it until
                        // they are gone, out of the lookup's way.
                        self.conns.unhash(t);
                    } else {
                        if let Some(d) = d {
                            d.counters.set_persistent(false);
                        }
                        self.conns.remove(t);
                    }
                }
            }
        }
        let dest = schedule(snap, svc, k, now).ok_or(DropReason::NoDest)?;
        let IpAddr::V4(rip) = dest.addr else {
            return Err(DropReason::NoDest);
        };
        let mut tc = Conn {
            caddr: tkey.saddr,
            vaddr: tkey.daddr,
            daddr: rip,
            cport: 0,
            vport: tkey.dport,
            dport: if tkey.dport == 0 { 0 } else { dest.port },
            proto: tkey.proto,
            flags: dest.fwd as u8 | flags::TEMPLATE,
            dest: dest.r.0,
            expires: now.saturating_add(timeout),
            ..Conn::default()
        };
        tc.set_template_timeout(timeout);
        let t = self
            .conns
            .insert(tc, thash)
            .map_err(|_| DropReason::TableFull)?;
        dest.counters.set_persistent(true);
        Ok((dest, t))
    }

    /// An ICMP error about one of our connections goes where the packet it
    /// quotes came from (`ip_vs_in_icmp`, `ip_vs_out_icmp`); anything else
    /// that is not TCP or UDP is the kernel's.
    #[cold]
    #[inline(never)]
    fn icmp_error(&mut self, snap: &Snapshot, frame: &mut Frame<'_>, now: Tick) -> Verdict {
        let d = frame.data();
        let Ok(eth) = EthernetFrame::new_checked(d) else {
            return Verdict::Pass;
        };
        if eth.ethertype() != ETHERTYPE_IPV4 {
            return Verdict::Pass;
        }
        let Some(q) = xmit::icmp::quote(d, eth.header_len()) else {
            return Verdict::Pass;
        };
        // The quoted packet went the other way: its reverse is the 5-tuple
        // of the connection's packets in the direction the error travels.
        let key = FlowKey {
            proto: q.proto,
            saddr: q.dst,
            sport: q.dport,
            daddr: q.src,
            dport: q.sport,
        };
        let Some((i, side)) = self.conns.lookup(&key, self.conns.hash(&key)) else {
            return Verdict::Pass;
        };
        let c = *self.conns.get(i);
        let Some(dest) = snap.dest(DestRef(c.dest)).filter(|_| c.expires > now) else {
            return Verdict::Pass;
        };
        if !ip_header_ok(d, &q.layout) {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        let fwd = c.flags & flags::FWD_MASK;
        let v = match side {
            Side::Server => {
                let hop = Hop {
                    port: c.in_port,
                    dst_mac: c.client_mac,
                    src_mac: snap.ports[usize::from(c.in_port)].mac,
                };
                xmit::icmp::nat_to_client(frame, &q, c.vaddr, c.vport, &hop)
            }
            Side::Client if fwd == Forward::Nat as u8 => {
                let Some(hop) = dest_hop(snap, dest) else {
                    return Verdict::Drop(DropReason::NoNeighbour);
                };
                xmit::icmp::nat_to_server(frame, &q, c.daddr, c.dport, &hop)
            }
            Side::Client => {
                let Some(hop) = dest_hop(snap, dest) else {
                    return Verdict::Drop(DropReason::NoNeighbour);
                };
                match snap.tunnel_source {
                    _ if fwd == Forward::Dr as u8 => xmit::dr::xmit(frame, &hop),
                    Some(src) => {
                        let mtu = snap.ports[usize::from(dest.tx_port)].mtu;
                        self.ident = self.ident.wrapping_add(1);
                        xmit::tun::xmit(frame, &q.layout, src, c.daddr, mtu, self.ident, &hop)
                    }
                    None => Verdict::Drop(DropReason::NoNeighbour),
                }
            }
        };
        if let Verdict::Tx { .. } = v {
            self.counters.icmp_relayed += 1;
            self.count(dest, side, q.layout.ip_len);
        }
        v
    }

    /// Sends a client's packet to its real server by the connection's
    /// forwarding method.
    #[inline]
    fn forward(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        c: &Conn<Ipv4Addr>,
        dest: &Dest,
        now: Tick,
    ) -> Verdict {
        let Some(hop) = dest_hop(snap, dest) else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        let port = &snap.ports[usize::from(dest.tx_port)];
        let fwd = c.flags & flags::FWD_MASK;
        let v = if fwd == Forward::Dr as u8 {
            xmit::dr::xmit(frame, &hop)
        } else if fwd == Forward::Tun as u8 {
            let Some(src) = snap.tunnel_source else {
                return Verdict::Drop(DropReason::NoNeighbour);
            };
            if xmit::tun::needs_frag(frame.data(), &p.layout, port.mtu) {
                return self.frag_needed(frame, &p.layout, port.mtu, now);
            }
            self.ident = self.ident.wrapping_add(1);
            xmit::tun::xmit(frame, &p.layout, src, c.daddr, port.mtu, self.ident, &hop)
        } else {
            xmit::nat::xmit_in(frame, &p.layout, c.proto, c.daddr, c.dport, &hop)
        };
        if let Verdict::Tx { .. } = v {
            self.counters.tx[usize::from(fwd)] += 1;
        }
        v
    }

    /// Counts a new connection in its real server's and service's traffic.
    #[inline]
    fn count_conn(&self, dest: &Dest) {
        let w = self.worker;
        for s in [&dest.counters.stats, &*dest.counters.service_stats] {
            if let Some(l) = s.line(w) {
                l.conn();
            }
        }
    }

    /// Counts a packet of `bytes` in its real server's and service's
    /// traffic (`ip_vs_in_stats`, `ip_vs_out_stats`).
    #[inline]
    fn count(&self, dest: &Dest, side: Side, bytes: usize) {
        let w = self.worker;
        for s in [&dest.counters.stats, &*dest.counters.service_stats] {
            if let Some(l) = s.line(w) {
                match side {
                    Side::Client => l.inbound(bytes),
                    Side::Server => l.outbound(bytes),
                }
            }
        }
    }

    /// Answers a packet too big to tunnel with ICMP "fragmentation
    /// needed", at most [`ICMP_PER_SECOND`] a second.
    #[cold]
    #[inline(never)]
    fn frag_needed(&mut self, frame: &mut Frame<'_>, l: &Layout, mtu: u16, now: Tick) -> Verdict {
        if now != self.icmp_second {
            (self.icmp_second, self.icmp_in_second) = (now, 0);
        }
        self.icmp_in_second += 1;
        if self.icmp_in_second > ICMP_PER_SECOND {
            return Verdict::Drop(DropReason::TooBig);
        }
        self.counters.icmp_sent += 1;
        xmit::tun::frag_needed(frame, l, mtu)
    }

    /// Ends connection `i` now, uncounting it from its real server.
    fn end(&mut self, snap: &Snapshot, i: u32) {
        let c = *self.conns.get(i);
        if let Some(d) = snap.dest(DestRef(c.dest)) {
            d.unbind(c.has(flags::INACTIVE));
        }
        self.conns.remove(i);
        self.counters.conns_expired += 1;
    }
}

/// Whether the IPv4 header checksum is right (the header sums to 0xffff).
#[inline]
fn ip_header_ok(d: &[u8], l: &Layout) -> bool {
    let sum = match d[l.l2_len..].first_chunk::<20>() {
        // Without options: ten words, summed as five 32-bit ones.
        Some(h) if l.ihl == 20 => h
            .chunks_exact(4)
            .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            .sum::<u64>(),
        _ => u64::from(checksum::sum(&d[l.l2_len..l.l4()])),
    };
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    checksum::fold(((sum & 0xffff_ffff) + (sum >> 32)) as u32) == 0xffff
}

/// The next hop toward a real server, once its MAC is resolved.
#[inline]
fn dest_hop(snap: &Snapshot, dest: &Dest) -> Option<Hop> {
    Some(Hop {
        port: dest.tx_port,
        dst_mac: dest.mac?,
        src_mac: snap.ports[usize::from(dest.tx_port)].mac,
    })
}

/// The service's scheduler's choice for a new connection.
#[inline]
fn schedule<'s>(
    snap: &'s Snapshot,
    svc: &'s Service,
    k: &FlowKey<Ipv4Addr>,
    now: Tick,
) -> Option<&'s Dest> {
    let dests = snap.dests_of(svc);
    let flow = Flow {
        client: k.saddr.into(),
        cport: k.sport,
        vip: k.daddr.into(),
        vport: k.dport,
        now,
    };
    let pos = svc.sched.schedule(&dests, &flow)?;
    Some(dests.at(pos))
}

/// Verdict for a frame that failed to parse: fragments and garbage to a
/// VIP or from a NAT real server are dropped; anything else is the
/// kernel's business.
#[cold]
#[inline(never)]
fn bad_frame(snap: &Snapshot, d: &[u8], e: WireError) -> Verdict {
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if eth.ethertype() != ETHERTYPE_IPV4 {
        return Verdict::Drop(DropReason::Malformed);
    }
    let ip = match Ipv4Packet::new_checked(eth.payload()) {
        Ok(ip) => ip,
        Err(_) => return Verdict::Drop(DropReason::Malformed),
    };
    if !snap.is_ours_v4(ip.src_addr(), ip.dst_addr()) {
        return Verdict::Pass;
    }
    match e {
        WireError::Unsupported => Verdict::Drop(DropReason::Fragment),
        _ => Verdict::Drop(DropReason::Malformed),
    }
}

const TCP_SYN: u8 = crate::wire::tcp::SYN;
const TCP_ACK: u8 = crate::wire::tcp::ACK;
const TCP_RST: u8 = crate::wire::tcp::RST;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid frame: untagged IPv4 without options, TCP or UDP.
    fn frame(udp: bool, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let l4 = if udp { 8 } else { 20 };
        let total = 20 + l4 + payload;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = if udp { PROTO_UDP } else { PROTO_TCP };
        ip[12..20].copy_from_slice(&[198, 18, 0, 10, 198, 18, 1, 1]);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut h = vec![0u8; l4];
        h[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        if udp {
            h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        } else {
            h[12] = 0x50;
            h[13] = 0x12;
        }
        f.extend_from_slice(&h);
        f.extend(std::iter::repeat_n(0xab, payload));
        f
    }

    #[test]
    fn fast_path_takes_the_common_shape() {
        for udp in [false, true] {
            let f = frame(udp, 10);
            assert!(parse_common(&f).is_some());
            assert_eq!(
                parse_common(&f).map(Ok),
                Some(parse_any(&f).map(|p| p.unwrap()))
            );
            assert!(ip_header_ok(&f, &parse_common(&f).unwrap().layout));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The fast path accepts a subset of what the views accept and, where
        /// it accepts, parses the same; the header check agrees with the
        /// full RFC 1071 checksum.
        #[test]
        fn fast_path_agrees_with_the_views(
            udp in any::<bool>(),
            payload in 0usize..40,
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
            cut in 0usize..80,
        ) {
            let mut f = frame(udp, payload);
            for (at, x) in flips {
                let n = f.len();
                f[at % n] ^= x;
            }
            let n = f.len();
            f.truncate(n - cut.min(n));
            if let Some(fast) = parse_common(&f) {
                prop_assert_eq!(parse_any(&f), Ok(Some(fast)));
                let full = checksum::checksum(&f[14..34]) == 0;
                prop_assert_eq!(ip_header_ok(&f, &fast.layout), full);
            }
        }
    }
}
