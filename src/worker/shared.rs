//! What the control thread and all workers share: the current snapshot,
//! the stop flag, each worker's mailbox, statistics and connection dump.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::dump::{ConnDump, ConnEntry};
use super::handover::{HANDOFF_SLOTS, Mailbox};
use crate::service::Snapshot;
use crate::stats::{PublishedStats, WorkerStats};

pub struct Shared {
    /// The current snapshot; workers pick it up between batches.
    pub snapshot: ArcSwap<Snapshot>,
    /// Set once, on shutdown.
    pub stop: AtomicBool,
    mailboxes: Box<[Mailbox]>,
    /// Per director port, the workers with a socket on it.
    port_workers: Box<[Box<[usize]>]>,
    stats: Box<[PublishedStats]>,
    pub(super) dumps: Box<[ConnDump]>,
}

impl Shared {
    /// For workers `0..ports_of.len()`, worker `w` having a socket on
    /// each port of `ports_of[w]`.
    pub fn new(snapshot: Arc<Snapshot>, ports_of: &[Vec<u8>]) -> Shared {
        Self::with_slots(snapshot, ports_of, HANDOFF_SLOTS)
    }

    /// As [`Shared::new`], with `slots` hand-over buffers per worker.
    pub fn with_slots(snapshot: Arc<Snapshot>, ports_of: &[Vec<u8>], slots: usize) -> Shared {
        let nports = ports_of
            .iter()
            .flatten()
            .map(|&p| usize::from(p) + 1)
            .max()
            .unwrap_or(0);
        let port_workers = (0..nports)
            .map(|p| {
                (0..ports_of.len())
                    .filter(|&w| ports_of[w].iter().any(|&q| usize::from(q) == p))
                    .collect()
            })
            .collect();
        Shared {
            snapshot: ArcSwap::new(snapshot),
            stop: AtomicBool::new(false),
            mailboxes: ports_of.iter().map(|_| Mailbox::new(slots)).collect(),
            port_workers,
            stats: ports_of.iter().map(|_| PublishedStats::default()).collect(),
            dumps: ports_of.iter().map(|_| ConnDump::default()).collect(),
        }
    }

    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Worker `w`'s statistics as it last published them.
    pub fn stats(&self, w: usize) -> WorkerStats {
        self.stats[w].load()
    }

    pub(super) fn publish(&self, w: usize, s: &WorkerStats) {
        self.stats[w].store(s);
    }

    pub(super) fn mailbox(&self, w: usize) -> &Mailbox {
        &self.mailboxes[w]
    }

    /// The worker that transmits for worker `me` out of `port`, where `me`
    /// has no socket: always the same one, so a flow keeps its order.
    pub(super) fn transmitter_for(&self, me: usize, port: u8) -> Option<usize> {
        let ws = self
            .port_workers
            .get(usize::from(port))
            .filter(|w| !w.is_empty())?;
        Some(ws[me % ws.len()])
    }

    /// Every worker's connection entries, asked for and collected within
    /// `limit` (workers answer between rounds, so within a millisecond or
    /// two unless one is stuck; a worker that does not answer is left out).
    pub fn connections(&self, limit: Duration) -> Vec<ConnEntry> {
        for d in self.dumps.iter() {
            d.requested.store(true, Ordering::Release);
        }
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        let mut pending: Vec<usize> = (0..self.dumps.len()).collect();
        while !pending.is_empty() && Instant::now() < end {
            pending.retain(|&w| match self.dumps[w].take() {
                Some(v) => {
                    out.extend(v);
                    false
                }
                None => true,
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for &w in &pending {
            self.dumps[w].requested.store(false, Ordering::Relaxed);
        }
        out
    }
}
