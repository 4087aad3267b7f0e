//! An in-memory socket for worker tests: frames to receive, frames
//! transmitted (those whose verdict sends them out of its own port).

use std::collections::VecDeque;

use xdpvs::frame::{Frame, Verdict};
use xdpvs::worker::FrameIo;

use super::HEADROOM;

/// A socket made of queues: frames to receive, frames transmitted.
#[derive(Default)]
pub struct MemIo {
    pub port: u8,
    pub rx: VecDeque<Vec<u8>>,
    pub sent: Vec<Vec<u8>>,
}

impl MemIo {
    fn run<F>(&mut self, packets: Vec<Vec<u8>>, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let n = packets.len();
        let mut bufs: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| {
                let mut b = vec![0u8; 2048];
                b[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
                b
            })
            .collect();
        let mut frames: Vec<Frame<'_>> = bufs
            .iter_mut()
            .zip(&packets)
            .map(|(b, p)| Frame::new(b, HEADROOM, p.len(), self.port))
            .collect();
        let mut verdicts = vec![Verdict::NotOurs; n];
        f(&mut frames, &mut verdicts);
        for (fr, v) in frames.iter().zip(verdicts) {
            if let Verdict::Tx { port, len } = v
                && port == self.port
            {
                self.sent.push(fr.data()[..len].to_vec());
            }
        }
        n
    }
}

impl FrameIo for MemIo {
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let n = max.min(self.rx.len());
        let packets: Vec<Vec<u8>> = self.rx.drain(..n).collect();
        self.run(packets, f)
    }

    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        self.run(data.iter().map(|d| d.to_vec()).collect(), f)
    }

    fn service(&mut self) {}

    fn wait_rx(&mut self, _wake: std::os::fd::BorrowedFd<'_>, _timeout_ms: i32) {}
}
