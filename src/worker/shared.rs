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
    /// A [`ConnListing`] runs (the workers' dump cursors are its).
    listing: AtomicBool,
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
            listing: AtomicBool::new(false),
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
}

/// Where one worker's part of a listing is.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// A slice is asked for, since then.
    Asked(Instant),
    Done,
}

/// A `-c` listing in progress over every worker, a slice per worker at a
/// time (`worker::dump`): [`ConnListing::poll`] never waits, so the
/// control thread keeps serving while workers keep forwarding.
/// One runs at a time (each worker has one cursor); it ends when dropped.
pub struct ConnListing {
    shared: Arc<Shared>,
    parts: Vec<Part>,
    limit: Duration,
    /// Workers left out because they did not answer.
    skipped: usize,
}

impl ConnListing {
    /// Asks every worker for its first slice; a worker that leaves a slice
    /// unanswered for `limit` is left out. `None` while another listing
    /// runs.
    pub fn start(shared: &Arc<Shared>, limit: Duration) -> Option<ConnListing> {
        shared
            .listing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let now = Instant::now();
        for d in shared.dumps.iter() {
            d.request(0);
        }
        Some(ConnListing {
            shared: Arc::clone(shared),
            parts: vec![Part::Asked(now); shared.dumps.len()],
            limit,
            skipped: 0,
        })
    }

    /// Every worker's connection entries, waiting for them (tests, and
    /// callers that need them all at once); `None` while another listing
    /// runs.
    pub fn collect(shared: &Arc<Shared>, limit: Duration) -> Option<Vec<ConnEntry>> {
        let mut listing = ConnListing::start(shared, limit)?;
        let mut out = Vec::new();
        loop {
            let (entries, done) = listing.poll(Instant::now());
            out.extend(entries);
            if done {
                return Some(out);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The entries of the slices that have arrived, each worker asked for
    /// its next; and whether the listing is complete.
    pub fn poll(&mut self, now: Instant) -> (Vec<ConnEntry>, bool) {
        let shared = &self.shared;
        let mut out = Vec::new();
        for (w, part) in self.parts.iter_mut().enumerate() {
            let Part::Asked(since) = *part else { continue };
            let dump = &shared.dumps[w];
            match dump.take() {
                Some((slice, next)) => {
                    out.extend(slice.entries);
                    *part = if slice.last {
                        Part::Done
                    } else {
                        dump.request(next);
                        Part::Asked(now)
                    };
                }
                None if now.duration_since(since) > self.limit => {
                    dump.cancel();
                    self.skipped += 1;
                    *part = Part::Done;
                }
                None => {}
            }
        }
        let done = self.parts.iter().all(|p| matches!(p, Part::Done));
        (out, done)
    }

    /// Workers left out so far because they did not answer in time.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

impl Drop for ConnListing {
    fn drop(&mut self) {
        for (w, part) in self.parts.iter().enumerate() {
            if let Part::Asked(_) = part {
                self.shared.dumps[w].cancel();
            }
        }
        self.shared.listing.store(false, Ordering::Release);
    }
}
