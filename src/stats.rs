//! One statistics block per worker: every counter of the packet path,
//! named and described once, in the table below.
//!
//! A worker owns one [`WorkerStats`] and is its only writer: the pipeline
//! counts what it decides, the worker loop what it moves between workers
//! and rings, and at publication the worker copies its sockets' ring
//! counters and the kernel's `XDP_STATISTICS` in. The whole block is then
//! stored into the worker's [`PublishedStats`] (relaxed atomics, one
//! store per counter), which the control thread reads for the stop log
//! (per worker), `xdpvsadm --counters` (per worker and summed) and
//! `/metrics` (per worker, `crate::ctrl::metrics`).
//! Nothing counted stays invisible: every counter here reaches
//! [`WorkerStats::entries`], the one list every view is made from.
//!
//! Invariants: `rx` = `rx_ring` − `handoff_sent` + `handoff_received`
//! less the frames lost on their way to another worker (part of
//! `handoff_dropped`); with one worker, `rx` = `rx_ring`. And `rx` =
//! `tx_dr + tx_tun + tx_nat + tx_replies + icmp_sent + icmp_relayed +
//! not_ours + drops` — each frame the pipeline processes gets exactly one
//! verdict, and each verdict one count (`tests/hostile.rs` checks it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::frame::{DropReason, named_counters};

named_counters! {
    /// One of a worker's counters (drops are counted by [`DropReason`]
    /// beside them).
    pub enum Counter {
        /// Frames taken from this worker's RX rings.
        RxRing = "rx_ring",
        /// Frames the pipeline processed (received here or handed over).
        Rx = "rx",
        /// Frames placed on a TX ring, of every kind.
        Tx = "tx",
        /// Frames forwarded to real servers by direct routing.
        TxDr = "tx_dr",
        /// Frames forwarded to real servers through an IPIP tunnel.
        TxTun = "tx_tun",
        /// Frames forwarded to real servers by NAT.
        TxNat = "tx_nat",
        /// NAT replies sent back to clients.
        TxReplies = "tx_replies",
        /// Frames steered to the director that were the kernel's (recycled:
        /// AF_XDP cannot give a frame back).
        NotOurs = "not_ours",
        /// ICMP errors the director generated (fragmentation needed).
        IcmpSent = "icmp_sent",
        /// ICMP errors about connections relayed to a real server or client.
        IcmpRelayed = "icmp_relayed",
        /// TCP/UDP frames whose partial checksum (a sender's offload left
        /// only the pseudo-header sum) was finished before forwarding, on
        /// ports with `complete_checksums` on.
        CsumCompleted = "csum_completed",
        /// Connections created.
        ConnsCreated = "conns_created",
        /// Connections and templates freed (expired, ended or reused).
        ConnsExpired = "conns_expired",
        /// Expiry passes run between batches (rounds that found the wheel
        /// caught up run none).
        ExpireRuns = "expire_runs",
        /// Expired entries reclaimed by a new connection that found the
        /// table full (or the unreplied share at its cap), before refusing.
        ConnsReclaimed = "conns_reclaimed",
        /// Flood defence: unreplied connections dropped at random by
        /// `drop_entry` (random early drop).
        DefenseDropped = "defense_dropped",
        /// Flood defence: unreplied connections evicted because the
        /// unreplied share was full when a new connection came.
        UnrepliedEvicted = "unreplied_evicted",
        /// FTP helper: 227 replies rewritten to the VIP.
        FtpRewrites = "ftp_rewrites",
        /// FTP helper: passive data connections expected.
        FtpExpected = "ftp_expected",
        /// FTP helper: data connections created (passive and active).
        FtpConns = "ftp_conns",
        /// FTP helper: announcements left alone (a foreign address, no room to
        /// rewrite, table full).
        FtpRefused = "ftp_refused",
        /// Frames copied to another worker's inbox.
        HandoffSent = "handoff_sent",
        /// Frames taken from this worker's inbox.
        HandoffReceived = "handoff_received",
        /// Frames lost on the way to another worker or ring: its inbox full,
        /// or no room in the socket that was to take them.
        HandoffDropped = "handoff_dropped",
        /// Frames sent on to their owner under an older steering rule, or
        /// back to the current owner to open their connection (part of
        /// `handoff_sent`; `worker::handover`, "Ownership that does not
        /// move").
        HandoffChained = "handoff_chained",
        /// Frames for a port no worker has a socket on.
        NoTxPort = "no_tx_port",
        /// Frames with a transmit verdict that found the TX ring full.
        TxRingFull = "tx_ring_full",
        /// Frames to build (hand-over, cross-port) that found no free UMEM
        /// frame.
        NoFreeFrame = "no_free_frame",
        /// Frames to build that were too long for a UMEM frame.
        InjectOversize = "inject_oversize",
        /// Refills that found no free UMEM frame and the fill ring empty.
        FillEmpty = "fill_empty",
        /// RX or completion descriptors outside the UMEM, refused.
        InvalidDescriptors = "invalid_descriptors",
        /// UMEM frames written off after an invalid descriptor.
        LostChunks = "lost_chunks",
        /// Receive wake-ups and busy polls (recvfrom calls).
        RxKicks = "rx_kicks",
        /// Transmit wake-ups (sendto calls).
        TxKicks = "tx_kicks",
        /// Turns of the busy-poll loop (`worker::Worker::run`).
        Rounds = "rounds",
        /// Turns of the loop that found no frame and no hand-over: with
        /// `rounds`, the fraction of polls that were idle.
        IdleRounds = "idle_rounds",
        /// Kernel XDP_STATISTICS: frames dropped for other reasons.
        KernelRxDropped = "kernel_rx_dropped",
        /// Kernel XDP_STATISTICS: invalid RX descriptors.
        KernelRxInvalidDescs = "kernel_rx_invalid_descs",
        /// Kernel XDP_STATISTICS: invalid TX descriptors.
        KernelTxInvalidDescs = "kernel_tx_invalid_descs",
        /// Kernel XDP_STATISTICS: frames dropped because the RX ring was full.
        KernelRxRingFull = "kernel_rx_ring_full",
        /// Kernel XDP_STATISTICS: frames dropped because the fill ring was
        /// empty.
        KernelRxFillRingEmpty = "kernel_rx_fill_ring_empty",
        /// Kernel XDP_STATISTICS: times the TX ring was found empty.
        KernelTxRingEmpty = "kernel_tx_ring_empty",
        /// Connections and templates in the table now (a gauge).
        Conns = "conns",
        /// The table's capacity (a gauge).
        ConnsCapacity = "conns_capacity",
        /// Connections not confirmed yet (no completed handshake, no UDP
        /// reply): the entries the unreplied share limits (a gauge).
        ConnsUnreplied = "conns_unreplied",
    }
}

/// A worker's counters, written by that worker only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    counters: [u64; Counter::COUNT],
    drops: [u64; DropReason::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            counters: [0; Counter::COUNT],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl WorkerStats {
    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.counters[c as usize] += n;
    }

    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// Sets a gauge, or a counter that another layer keeps (a socket's).
    #[inline]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.counters[c as usize] = v;
    }

    #[inline]
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    #[inline]
    pub fn count_drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every counter with its name and meaning, drops as `drop_<reason>`
    /// after the others: what every view of the statistics shows.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let counters = Counter::ALL.iter().map(|&c| Entry {
            name: c.name(),
            help: c.help(),
            kind: Kind::Counter(c),
            value: self.get(c),
        });
        let drops = DropReason::ALL.iter().map(|&r| Entry {
            name: r.name(),
            help: r.help(),
            kind: Kind::Drop(r),
            value: self.dropped(r),
        });
        counters.chain(drops)
    }
}

/// One line of [`WorkerStats::entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter(Counter),
    Drop(DropReason),
}

impl Entry {
    /// Whether the value is a level, not a count that only grows.
    pub fn is_gauge(&self) -> bool {
        matches!(
            self.kind,
            Kind::Counter(Counter::Conns | Counter::ConnsCapacity | Counter::ConnsUnreplied)
        )
    }
}

/// A worker's [`WorkerStats`] as the control thread reads it.
pub struct PublishedStats {
    counters: [AtomicU64; Counter::COUNT],
    drops: [AtomicU64; DropReason::COUNT],
}

impl Default for PublishedStats {
    fn default() -> Self {
        PublishedStats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

// Relaxed: each value is a monotonic counter (or a gauge) read on its own;
// nothing else is published through them.
impl PublishedStats {
    /// Stores the whole block (the worker, its only writer).
    pub fn store(&self, s: &WorkerStats) {
        for (a, &v) in self.counters.iter().zip(&s.counters) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, &v) in self.drops.iter().zip(&s.drops) {
            a.store(v, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> WorkerStats {
        WorkerStats {
            counters: std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed)),
            drops: std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_named_once_and_described() {
        let s = WorkerStats::default();
        let mut names: Vec<_> = s.entries().map(|e| e.name).collect();
        assert_eq!(names.len(), Counter::COUNT + DropReason::COUNT);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT + DropReason::COUNT);
        for e in s.entries() {
            assert!(!e.help.is_empty(), "{} has no description", e.name);
        }
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn published_block_reads_back_whole() {
        let mut a = WorkerStats::default();
        a.inc(Counter::Rx);
        a.add(Counter::HandoffSent, 5);
        a.count_drop(DropReason::TableFull);
        let p = PublishedStats::default();
        p.store(&a);
        assert_eq!(p.load(), a);
        assert_eq!(p.load().get(Counter::HandoffSent), 5);
        assert_eq!(p.load().total_drops(), 1);
    }
}
