//! The per-packet path, free of I/O: parse → lookup/schedule → rewrite.
//!
//! A worker owns one [`Pipeline`] and calls [`Pipeline::process_batch`]
//! (or [`Pipeline::process`]) for the frames it receives; tests and
//! benchmarks call it the same way. The verdict says whether to transmit
//! the (rewritten) frame and out of which port, that it is not ours (ARP,
//! traffic to the director itself), or that it was dropped — every verdict
//! counted in the worker's [`WorkerStats`]. Nothing here allocates, locks
//! or makes a system call.
//!
//! Order of the stages follows IPVS (`ip_vs_in`): a packet first looks for
//! its connection (either side of it); only a miss consults the services,
//! so established connections keep flowing after their service changes.
//! `State::classify` decides what a packet is before anything changes;
//! `State::tcp_udp` acts on that in one `match`. Each kind of work is one
//! `impl State` block in a file of its own: `parse.rs` (headers),
//! `new_conn.rs` (scheduling a new flow), `persist.rs` (persistence
//! templates), `ftp.rs` (the FTP helper), `icmp.rs` (ICMP errors about
//! connections), `frag.rs` (fragments of NAT replies). The table work
//! that does not depend on the address family is `flows.rs`'s, shared by
//! the IPv4 path and the IPv6 one (`parse6.rs`, `v6.rs`), which a frame
//! takes only once the IPv4 parser has found it is not IPv4.
//!
//! A connection whose real server is gone or out of service (its health
//! checks failed, [`Dest::in_service`]) is treated as IPVS's `ip_vs_in`
//! treats one whose destination lost `IP_VS_DEST_F_AVAILABLE`, with its
//! sysctls' names and defaults: `expire_nodest_conn` off drops the
//! client's packets (`dest_down`) and keeps the connection for the
//! server's return (a deleted server's ends: `dest_gone`); on ends it and
//! schedules the packet afresh as a new flow's; on also reschedules a
//! client's SYN on a connection to a quiescent (weight 0) server. The
//! server's replies still go back (NAT). Persistence templates to a
//! server out of service are replaced, to a quiescent one only with
//! `expire_quiescent_template` (`persist.rs`).
//!
//! Partial checksums: on a port with `complete_checksums` (virtual
//! drivers by default), a TCP/UDP frame whose checksum field holds only
//! the pseudo-header sum (`CHECKSUM_PARTIAL` from a sender on veth,
//! virtio or a container network) is finished first
//! ([`crate::wire::partial`], counted as `csum_completed`), whichever way
//! it then goes: to a real server by DR, TUN or NAT, or back to a NAT
//! client. Frames the director builds itself (ICMP errors, the TUN outer
//! header) always carry full checksums. Nothing else is verified: a
//! corrupt frame stays corrupt for its receiver to drop.

mod flows;
mod frag;
mod ftp;
mod icmp;
mod new_conn;
mod parse;
mod parse6;
mod persist;
mod v6;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::conn::frag::FragTable;
use crate::conn::{ConnTable, Direction, Side};
use crate::dest::{Dest, DestRef, Forward};
use crate::frame::{DropReason, Frame, MAX_BATCH, Tick, Verdict};
use crate::service::Snapshot;
use crate::stats::{Counter, WorkerStats};
use crate::wire::WireError;
use crate::wire::ipv4::PROTO_TCP;
use crate::xmit::{Egress, Hop, Target, Transmitter};
use flows::{Flows, NoDest, Packet};
use parse::{Parsed, bad_frame, ip_header_ok, parse};

/// Seconds an expected FTP data connection waits for its first packet.
pub const EXPECT_TIMEOUT: Tick = crate::service::EXPECT_TIMEOUT;

/// Seconds the translation learnt from a NAT reply's first fragment
/// waits for the datagram's other fragments (they follow within
/// milliseconds; an IP id is not reused between two hosts that soon).
pub const FRAG_TIMEOUT: Tick = 2;

/// Datagrams in flight whose fragments a worker translates; a newer one
/// takes an older one's slot (whose remaining fragments are then dropped).
pub const FRAG_SLOTS: usize = 1024;

/// Entries examined per expiry pass at least ([`Pipeline::expire_round`]).
pub const EXPIRE_BUDGET: usize = 256;

/// Entries examined per expiry pass for every entry inserted since the
/// last: each insertion is reaped once, and may be examined again each
/// time it is requeued after a refresh; four keep the wheel caught up
/// with room to spare (`tests/worker.rs` checks it through the loop).
pub const EXPIRE_PER_INSERT: usize = 4;

pub use flows::RECLAIM_BUDGET;

/// The IPv6 table holds a `1 / V6_SHARE` of the IPv4 table's capacity
/// (at least one entry): a second table until issue 16's one table for
/// both families, kept small because its entries are bigger (164 bytes
/// against 64, `conn::tests::memory_per`).
pub const V6_SHARE: u32 = 4;

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
    /// The IPv4 connections.
    v4: Flows<Ipv4Addr>,
    /// The IPv6 connections: a second table for now (see [`V6_SHARE`]);
    /// issue 16 wants one table for both families.
    v6: Flows<Ipv6Addr>,
    /// Per connection entry, for FTP control connections: the data
    /// connection it announced last (see `ftp.rs`), as
    /// `caddr << 32 | cport << 16 | port`. Zeroed memory that only FTP
    /// control connections' entries ever touch.
    ftp_pending: Box<[u64]>,
    stats: WorkerStats,
    tx: Transmitter,
    /// This worker's index: its line in every traffic counter.
    worker: usize,
    /// Translations of NAT replies' fragments in flight (`frag.rs`).
    frags: FragTable<FragTranslation>,
}

/// The translation a NAT reply's first fragment teaches the worker, for
/// the datagram's later fragments (`frag.rs`).
#[derive(Debug, Clone, Copy)]
struct FragTranslation {
    /// The new source address (the connection's VIP).
    vip: Ipv4Addr,
    /// The way to the client.
    egress: Egress,
    /// The real server, whose traffic counters count the fragments.
    dest: DestRef,
}

/// What a worker's table holds for a packet, asked by the hand-over
/// while it keeps old steering rules ([`Pipeline::probe`];
/// `worker::handover` explains the chain of old owners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Its live connection is here, or the persistence template or FTP
    /// expectation its first packet needs; or it is no TCP/UDP flow.
    Found,
    /// The first packet of a new connection that needs nothing from an
    /// earlier one: a TCP SYN to a service without persistence. The
    /// current owner opens it.
    Start,
    /// Nothing of it here. `opens`: this table would open a connection
    /// for it (UDP to a service, a SYN to a persistent service), which the
    /// current owner should do unless an old owner has its state.
    Missing { opens: bool },
}

impl Pipeline {
    /// A pipeline with room for `capacity` connections, reading `snap`.
    pub fn new(capacity: u32, snap: Arc<Snapshot>, now: Tick) -> Pipeline {
        let mut stats = WorkerStats::default();
        stats.set(Counter::ConnsCapacity, u64::from(capacity));
        let mut tx = Transmitter::new(now);
        tx.set_tunnel_source(snap.tunnel_source);
        let v4 = Flows::new(capacity, now);
        // Zeroed by the allocator (calloc): pages are backed only where an
        // FTP control connection writes.
        let ftp_pending = vec![0u64; v4.conns.capacity() as usize].into_boxed_slice();
        Pipeline {
            snap,
            st: State {
                v4,
                v6: Flows::new((capacity / V6_SHARE).max(1), now),
                ftp_pending,
                stats,
                tx,
                worker: 0,
                frags: FragTable::new(FRAG_SLOTS),
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
        self.st.tx.set_tunnel_source(snap.tunnel_source);
        self.snap = snap;
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// The worker's statistics block (the worker sets its gauges when it
    /// publishes it).
    pub fn stats(&self) -> &WorkerStats {
        &self.st.stats
    }

    /// The block, for the worker loop to count what it does around the
    /// pipeline (one block per worker).
    pub fn stats_mut(&mut self) -> &mut WorkerStats {
        &mut self.st.stats
    }

    pub fn conns(&self) -> &ConnTable<Ipv4Addr> {
        &self.st.v4.conns
    }

    /// The IPv6 connections (a table of their own for now, [`V6_SHARE`]).
    pub fn conns6(&self) -> &ConnTable<Ipv6Addr> {
        &self.st.v6.conns
    }

    /// What this table holds for frame `d` ([`Probe`]); changes nothing.
    /// Only the hand-over asks, and only while old steering rules are kept.
    pub fn probe(&self, d: &[u8], now: Tick) -> Probe {
        let Ok(Some(p)) = parse(d) else {
            return Probe::Found;
        };
        let (st, snap, k) = (&self.st, &*self.snap, &p.key);
        match st.v4.conns.lookup(k, st.v4.conns.hash(k)) {
            Some((i, Side::Client)) if st.v4.is_reused(i, p.tcp_flags) => {}
            Some((i, _)) if st.v4.conns.get(i).expires() > now => return Probe::Found,
            _ => {}
        }
        let syn = p.tcp_flags & (parse::TCP_SYN | parse::TCP_RST) == parse::TCP_SYN;
        let tcp = k.proto == PROTO_TCP;
        if tcp && syn && snap.ftp_nat && st.expects(k, now) {
            return Probe::Found;
        }
        let Some(svc) = snap.service_v4(k.proto, k.daddr, k.dport) else {
            return Probe::Missing { opens: false };
        };
        if tcp && !syn {
            Probe::Missing { opens: false }
        } else if svc.persistence_timeout > 0 {
            if st.v4.has_template(snap, svc, k, now) {
                Probe::Found
            } else {
                Probe::Missing { opens: true }
            }
        } else if tcp {
            Probe::Start
        } else {
            Probe::Missing { opens: true }
        }
    }

    /// Processes one frame.
    #[inline]
    pub fn process(&mut self, frame: &mut Frame<'_>, now: Tick) -> Verdict {
        let parsed = parse(frame.data());
        let hash = match &parsed {
            Ok(Some(p)) => self.st.v4.conns.hash(&p.key),
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
        if self.st.v4.conns.len() < self.prefetch_min {
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
        let conns = &self.st.v4.conns;
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
        let st = &mut self.st;
        st.v4.inserted = 0;
        st.v6.inserted = 0;
        let mut n = st.v4.reap(&self.snap, &mut st.stats, now, budget);
        if !st.v6.conns.caught_up(now) {
            n += st.v6.reap(&self.snap, &mut st.stats, now, budget);
        }
        st.stats.inc(Counter::ExpireRuns);
        n
    }

    /// The expiry of one round of the worker loop: reaps with a budget of
    /// [`EXPIRE_BUDGET`] plus [`EXPIRE_PER_INSERT`] for every entry
    /// inserted since the last call, so that reclaiming keeps up with any
    /// insertion rate; a round that finds the wheel caught up costs two
    /// loads. Returns how many it freed.
    #[inline]
    pub fn expire_round(&mut self, now: Tick) -> usize {
        let st = &mut self.st;
        if st.v4.conns.caught_up(now) && st.v6.conns.caught_up(now) {
            st.v4.inserted = 0;
            st.v6.inserted = 0;
            return 0;
        }
        let inserted = st.v4.inserted.max(st.v6.inserted);
        let budget = EXPIRE_BUDGET + EXPIRE_PER_INSERT * inserted as usize;
        self.expire(now, budget)
    }
}

impl State {
    /// Processes a frame as parsed, and counts its verdict: TCP and UDP
    /// through the connection table, anything else as a possible ICMP
    /// error about a connection, what did not parse as [`bad_frame`] says.
    #[inline]
    fn finish(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        parsed: Result<Option<Parsed>, WireError>,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        self.stats.inc(Counter::Rx);
        let v = match &parsed {
            Ok(Some(p)) => self.tcp_udp(snap, frame, p, hash, now),
            Ok(None) if parse6::is_ipv6(frame.data()) => self.ipv6(snap, frame, now),
            Ok(None) => self.icmp_error(snap, frame, now),
            Err(WireError::Unsupported) => self.fragment(snap, frame, WireError::Unsupported, now),
            Err(e) => bad_frame(snap, frame.data(), *e),
        };
        match v {
            Verdict::NotOurs => self.stats.inc(Counter::NotOurs),
            Verdict::Drop(r) => self.stats.count_drop(r),
            Verdict::Tx { .. } | Verdict::Handed => {}
        }
        v
    }

    /// What a TCP or UDP packet is (nothing is changed yet).
    #[inline]
    fn classify(&self, d: &[u8], p: &Parsed, hash: u64, now: Tick) -> Packet {
        if !ip_header_ok(d, &p.layout) {
            return Packet::BadChecksum;
        }
        self.v4.classify(&p.key, p.tcp_flags, hash, now)
    }

    /// A TCP or UDP packet, as [`State::classify`] decides.
    #[inline]
    fn tcp_udp(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        hash: u64,
        now: Tick,
    ) -> Verdict {
        let class = match self.classify(frame.data(), p, hash, now) {
            Packet::Established(i, Side::Client)
                if snap.expire_nodest_conn && self.v4.syn_to_quiescent(snap, i, p.tcp_flags) =>
            {
                Packet::New(Some(i))
            }
            class => class,
        };
        if !matches!(class, Packet::BadChecksum) {
            self.complete_checksum(snap, frame, p);
        }
        match class {
            Packet::Established(i, side) => self.established(snap, frame, p, (i, hash), side, now),
            Packet::New(ends) => {
                if let Some(i) = ends {
                    // Expired, or a new connection on the 5-tuple of one
                    // that has ended: schedule it afresh rather than send
                    // it to the old server, which may be quiescent or
                    // deleted since.
                    self.v4.end(snap, &mut self.stats, i);
                }
                self.new_conn(snap, frame, p, hash, now)
            }
            Packet::BadChecksum => Verdict::Drop(DropReason::BadIpChecksum),
        }
    }

    /// Finishes a partial TCP/UDP checksum when the receiving port asks for
    /// it (`Port::complete_checksums`), before anything rewrites or
    /// forwards the frame: DR and TUN then carry a complete checksum, and
    /// NAT's incremental update starts from one (IPVS's
    /// `tcp_partial_csum_update` patches the partial sum instead; finishing
    /// first makes the one update rule right for both). A frame with any
    /// other checksum is not touched.
    #[inline]
    fn complete_checksum(&mut self, snap: &Snapshot, frame: &mut Frame<'_>, p: &Parsed) {
        let port = usize::from(frame.port());
        if !snap.ports.get(port).is_some_and(|p| p.complete_checksums) {
            return;
        }
        let l = &p.layout;
        let ip = &mut frame.data_mut()[l.l2_len..];
        if crate::wire::partial::complete_v4(ip, l.ihl) {
            self.stats.inc(Counter::CsumCompleted);
        }
    }

    /// A packet of a known, live connection.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn established(
        &mut self,
        snap: &Snapshot,
        frame: &mut Frame<'_>,
        p: &Parsed,
        (i, hash): (u32, u64),
        side: Side,
        now: Tick,
    ) -> Verdict {
        let c = *self.v4.conns.get(i);
        let dest = match self.v4.dest_of(snap, &mut self.stats, i, side) {
            Ok(d) => d,
            Err(NoDest::Reschedule) => return self.new_conn(snap, frame, p, hash, now),
            Err(NoDest::Drop(r)) => return Verdict::Drop(r),
        };
        let dir = match side {
            Side::Server => Direction::Output,
            Side::Client if c.is_input_only() => Direction::InputOnly,
            Side::Client => Direction::Input,
        };
        self.update_state(snap, frame.data(), i, dest, dir, p, false, now);
        self.count(dest, side, p.layout.ip_len);
        let mut l = p.layout;
        if c.proto() == PROTO_TCP && c.forward() == Forward::Nat && snap.is_ftp_port(c.vport) {
            l = self.ftp(snap, frame, &l, i, side, now);
        }
        match side {
            Side::Client => {
                let Some(e) = egress(snap, dest, dest.src) else {
                    return Verdict::Drop(DropReason::NoNeighbour);
                };
                let t = target(&c);
                self.tx.to_server(frame, &l, &t, &e, &mut self.stats, now)
            }
            Side::Server => {
                let e = Egress {
                    src: dest.src,
                    ..client_way(snap, &c)
                };
                let vip = (c.vaddr, c.vport);
                self.tx
                    .to_client(frame, &l, c.proto(), vip, &e, &mut self.stats, now)
            }
        }
    }

    /// Counts a new connection in its real server's and service's traffic.
    #[inline]
    fn count_conn(&self, dest: &Dest) {
        count_conn(self.worker, dest);
    }

    /// Counts a packet of `bytes` in its real server's and service's
    /// traffic (`ip_vs_in_stats`, `ip_vs_out_stats`).
    #[inline]
    fn count(&self, dest: &Dest, side: Side, bytes: usize) {
        count(self.worker, dest, side, bytes);
    }

    /// Ends IPv4 connection `i` now, uncounting it from its real server.
    fn end(&mut self, snap: &Snapshot, i: u32) {
        self.v4.end(snap, &mut self.stats, i);
    }
}

/// Counts a new connection in its real server's and service's traffic,
/// on worker `w`'s line.
#[inline]
fn count_conn(w: usize, dest: &Dest) {
    for s in [&dest.counters.stats, &*dest.counters.service_stats] {
        if let Some(l) = s.line(w) {
            l.conn();
        }
    }
}

/// Counts a packet of `bytes` in its real server's and service's traffic
/// (`ip_vs_in_stats`, `ip_vs_out_stats`), on worker `w`'s line.
#[inline]
fn count(w: usize, dest: &Dest, side: Side, bytes: usize) {
    for s in [&dest.counters.stats, &*dest.counters.service_stats] {
        if let Some(l) = s.line(w) {
            match side {
                Side::Client => l.inbound(bytes),
                Side::Server => l.outbound(bytes),
            }
        }
    }
}

/// Where a connection's client packets go.
#[inline]
fn target<A: crate::conn::Addr>(c: &crate::conn::Conn<A>) -> Target<A> {
    Target {
        fwd: c.forward(),
        proto: c.proto(),
        daddr: c.daddr,
        dport: c.dport,
    }
}

/// The way out toward a real server, once its MAC is resolved, with the
/// source of the director's route to it: `dest.src` for IPv4,
/// `dest.src6` for IPv6.
#[inline]
fn egress<A>(snap: &Snapshot, dest: &Dest, src: Option<A>) -> Option<Egress<A>> {
    let dst_mac = dest.mac?;
    let port = snap.ports[usize::from(dest.tx_port)];
    Some(Egress {
        hop: Hop {
            port: dest.tx_port,
            dst_mac,
            src_mac: port.mac,
        },
        mtu: port.mtu,
        src,
    })
}

/// The way back to a NAT connection's client: to the MAC its packets
/// came from, out of the port they came in by.
#[inline]
fn client_way<A: crate::conn::Addr, B>(snap: &Snapshot, c: &crate::conn::Conn<A>) -> Egress<B> {
    let port = &snap.ports[usize::from(c.in_port())];
    Egress {
        hop: Hop {
            port: c.in_port(),
            dst_mac: c.client_mac(),
            src_mac: port.mac,
        },
        mtu: port.mtu,
        src: None,
    }
}

/// The 5-tuple of a frame as the pipeline parses it: IPv4 TCP or UDP, not
/// a fragment (the worker's hand-over decides by it). Always inlined:
/// it is on the hand-over's per-packet path.
#[inline(always)]
pub fn flow_key(d: &[u8]) -> Option<crate::conn::FlowKey<Ipv4Addr>> {
    parse(d).ok().flatten().map(|p| p.key)
}
