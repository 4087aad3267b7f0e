//! What a worker needs from a socket. [`crate::xsk::Xsk`] is the real one;
//! the tests use an in-memory one.

use std::os::fd::BorrowedFd;

use crate::frame::{Frame, Verdict};
use crate::xsk::{XdpKernelStats, Xsk, XskStats};

/// Received frames in batches, frames built from bytes (hand-over), and
/// housekeeping.
pub trait FrameIo {
    /// Receives up to `max` frames, lets `f` decide each one's verdict
    /// (frames and verdicts may be permuted together), then transmits the
    /// frames whose verdict is `Tx` to this socket's own port and recycles
    /// the rest. Returns how many frames were received.
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]);
    /// As [`FrameIo::rx_batch`], for frames holding copies of `data`.
    /// Returns how many were taken.
    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]);
    /// Completions, refill, wake-ups.
    fn service(&mut self);
    /// Blocks until there may be something to receive or `wake` is
    /// readable, at most `timeout_ms`.
    fn wait_rx(&mut self, wake: BorrowedFd<'_>, timeout_ms: i32);
    /// The socket's own ring counters, if it keeps them (cheap: no system
    /// call).
    fn socket_stats(&self) -> Option<XskStats> {
        None
    }
    /// The kernel's counters of the socket (a system call: now and then).
    fn kernel_stats(&self) -> Option<XdpKernelStats> {
        None
    }
}

impl FrameIo for Xsk {
    #[inline]
    fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        Xsk::rx_batch(self, max, f)
    }

    #[inline]
    fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        Xsk::inject_batch(self, data, f)
    }

    #[inline]
    fn service(&mut self) {
        Xsk::service(self);
    }

    fn wait_rx(&mut self, wake: BorrowedFd<'_>, timeout_ms: i32) {
        Xsk::wait_rx_or(self, Some(wake), timeout_ms);
    }

    fn socket_stats(&self) -> Option<XskStats> {
        Some(Xsk::stats(self))
    }

    fn kernel_stats(&self) -> Option<XdpKernelStats> {
        Xsk::kernel_stats(self).ok()
    }
}
