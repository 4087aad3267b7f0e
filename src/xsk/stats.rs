//! A socket's counters: those userspace keeps on the data path
//! ([`XskStats`]) and the kernel's own (`XDP_STATISTICS`,
//! [`XdpKernelStats`]), read on demand by the control side.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Counters of one socket, cumulative since it was opened, kept by
/// userspace on the data path (plain integers: the socket has one owner).
/// The kernel's own counters are
/// [`Xsk::kernel_stats`](super::Xsk::kernel_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames taken from the RX ring and handed to the batch closure
    /// (descriptors that passed the bounds check).
    pub rx: u64,
    /// Frames placed on the TX ring.
    pub tx: u64,
    /// Frames with a transmit verdict that found no free TX slot; their
    /// chunks were recycled, the frames dropped.
    pub tx_ring_full: u64,
    /// Injected packets refused for want of a free UMEM chunk (dropped).
    pub no_free_frame: u64,
    /// Injected packets longer than a chunk's room after the headroom
    /// (dropped).
    pub inject_oversize: u64,
    /// Refills that found the fill ring empty and no free chunk to put on
    /// it (every chunk received, being handled or in TX flight): until
    /// chunks come back the kernel has nothing to receive into and drops
    /// frames. The kernel counts those drops in
    /// [`XdpKernelStats::rx_fill_ring_empty_descs`], which also covers a
    /// ring that runs dry between two refills while free chunks wait.
    pub fill_empty: u64,
    /// RX and completion descriptors whose address or length did not lie
    /// inside one UMEM chunk, or that named a chunk the kernel did not
    /// hold (never sent, not on the fill ring, twice); never handed on.
    /// The kernel does not produce them: a non-zero count means a kernel or
    /// driver bug.
    pub invalid_descriptors: u64,
    /// Chunks written off because an invalid descriptor's address lay
    /// outside the UMEM, so the chunk the kernel meant is unknown (the
    /// socket has up to that many fewer chunks to work with, until the
    /// kernel hands one back; see
    /// [`Xsk::frame_accounting`](super::Xsk::frame_accounting)).
    pub lost_chunks: u64,
    /// Receive wake-ups: non-blocking `recvfrom` calls, when the fill ring
    /// asked for one or a busy-polling socket found the RX ring empty.
    pub rx_kicks: u64,
    /// Transmit wake-ups: `sendto` calls while TX descriptors waited and
    /// the TX ring asked for one.
    pub tx_kicks: u64,
}

/// The kernel's counters of one socket (`struct xdp_statistics`, read with
/// `getsockopt(SOL_XDP, XDP_STATISTICS)`), cumulative since the socket was
/// bound. Kernels before 5.9 report only the first three (with
/// `rx_ring_full` folded into `rx_dropped`); the others read 0 there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpKernelStats {
    /// Received frames dropped for other reasons than those below (such as
    /// a frame too long for a chunk).
    pub rx_dropped: u64,
    /// Received frames dropped because of an invalid descriptor.
    pub rx_invalid_descs: u64,
    /// TX descriptors the kernel found invalid (outside the UMEM, or too
    /// long) and did not send.
    pub tx_invalid_descs: u64,
    /// Received frames dropped because the RX ring was full: userspace did
    /// not take frames off it fast enough.
    pub rx_ring_full: u64,
    /// Times the kernel wanted a chunk from the fill ring and found it
    /// empty (the frame was dropped; see [`XskStats::fill_empty`]).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel looked for a frame to send and found the TX ring
    /// empty.
    pub tx_ring_empty_descs: u64,
}

impl XdpKernelStats {
    /// Reads the counters of the AF_XDP socket `fd` (one `getsockopt`).
    pub(super) fn read(fd: BorrowedFd<'_>) -> io::Result<XdpKernelStats> {
        let mut s = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        let mut optlen = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `s` is writable for `optlen` bytes; an older kernel writes
        // fewer (its shorter struct) and leaves the rest zero.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&raw mut s).cast(),
                &mut optlen,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(XdpKernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}
