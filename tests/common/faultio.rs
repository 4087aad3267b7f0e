//! A socket that fails as a real one does under pressure, for the worker
//! tests (issue 13, item 2): [`MemIo`] with a TX ring of `tx_room` slots
//! per batch (frames sent beyond it are dropped, as `Xsk` counts in
//! `tx_ring_full`) and `inject_room` free chunks per inject (the rest of a
//! hand-over batch is refused: a short inject, as `Xsk::inject_batch`
//! returns). It tallies every verdict the worker gave, so a test can check
//! that each frame received is accounted for exactly once.

use xdpvs::frame::{Frame, Verdict};
use xdpvs::worker::FrameIo;

use super::memio::MemIo;

/// What a [`FaultIo`] saw: frames by verdict, and what its faults cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Received from the RX queue.
    pub rx: u64,
    /// Copies injected (hand-overs, frames for this port).
    pub injected: u64,
    /// Injects refused for want of a free chunk.
    pub refused: u64,
    /// Verdicts: transmitted here (before the TX ring's room).
    pub tx: u64,
    /// Transmit verdicts beyond the TX ring's room: dropped.
    pub tx_full: u64,
    pub handed: u64,
    pub not_ours: u64,
    pub dropped: u64,
}

pub struct FaultIo {
    pub io: MemIo,
    /// TX slots per batch; `None`: unbounded.
    pub tx_room: Option<usize>,
    /// Chunks free for each inject; `None`: unbounded.
    pub inject_room: Option<usize>,
    pub tally: Tally,
}

impl FaultIo {
    pub fn new(port: u8) -> FaultIo {
        FaultIo {
            io: MemIo {
                port,
                ..MemIo::default()
            },
            tx_room: None,
            inject_room: None,
            tally: Tally::default(),
        }
    }

    /// Counts the verdicts of a batch, then cuts what MemIo sent down to
    /// the TX ring's room.
    fn settle(&mut self, sent_before: usize, verdicts: &[Verdict]) {
        let port = self.io.port;
        for v in verdicts {
            match v {
                Verdict::Tx { port: p, .. } if *p == port => self.tally.tx += 1,
                // Another port's frame left on this socket: a bug of the
                // worker's routing; the tests expect none.
                Verdict::Tx { .. } => panic!("a frame for another port reached the socket"),
                Verdict::Handed => self.tally.handed += 1,
                Verdict::NotOurs => self.tally.not_ours += 1,
                Verdict::Drop(_) => self.tally.dropped += 1,
            }
        }
        if let Some(room) = self.tx_room {
            let sent = self.io.sent.len() - sent_before;
            if sent > room {
                self.io.sent.truncate(sent_before + room);
                let over = (sent - room) as u64;
                self.tally.tx -= over;
                self.tally.tx_full += over;
            }
        }
    }
}

impl FrameIo for FaultIo {
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let before = self.io.sent.len();
        let mut seen = Vec::new();
        let n = self.io.rx_batch(max, |frames, verdicts| {
            f(frames, verdicts);
            seen.extend_from_slice(verdicts);
        });
        self.tally.rx += n as u64;
        self.settle(before, &seen);
        n
    }

    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let take = self.inject_room.map_or(data.len(), |r| r.min(data.len()));
        self.tally.refused += (data.len() - take) as u64;
        let before = self.io.sent.len();
        let mut seen = Vec::new();
        let n = self.io.inject_batch(&data[..take], |frames, verdicts| {
            f(frames, verdicts);
            seen.extend_from_slice(verdicts);
        });
        self.tally.injected += n as u64;
        self.settle(before, &seen);
        n
    }

    fn service(&mut self) {}

    fn wait_rx(&mut self, _wake: std::os::fd::BorrowedFd<'_>, _timeout_ms: i32) {}
}
