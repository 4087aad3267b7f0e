//! What a socket is opened with: its interface and queue, the UMEM's and
//! the rings' sizes, zero-copy and busy polling — and the one place the
//! configuration's `[dataplane]` keys become these settings.

use crate::config::{Dataplane, ZeroCopy};

/// How long [`Xsk::open`](super::Xsk::open) waits in all for a queue that
/// another AF_XDP socket still holds (`EBUSY` at bind; see `socket.rs`).
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What to open: one socket on one queue of one interface.
#[derive(Debug, Clone)]
pub struct XskConfig {
    pub ifname: String,
    pub queue: u32,
    /// UMEM chunks (power of two).
    pub frames: u32,
    /// Bytes per chunk: 2048 or 4096.
    pub frame_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub zero_copy: ZeroCopy,
    pub busy_poll: Option<BusyPoll>,
}

impl XskConfig {
    /// The defaults for `ifname`/`queue`: 4096 chunks of 2048 bytes, rings
    /// of 2048, zero-copy where the driver can, no busy polling.
    pub fn new(ifname: &str, queue: u32) -> XskConfig {
        XskConfig {
            ifname: ifname.to_string(),
            queue,
            frames: 4096,
            frame_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            zero_copy: ZeroCopy::Auto,
            busy_poll: None,
        }
    }

    /// The socket for `ifname`/`queue` as the `[dataplane]` section sizes
    /// it: the one place its keys become socket settings. The values were
    /// validated with the configuration (`config::dataplane`);
    /// `busy_poll_usecs = 0` means no busy polling.
    pub fn from_dataplane(dp: &Dataplane, ifname: &str, queue: u32) -> XskConfig {
        let t = &dp.tuning;
        XskConfig {
            ifname: ifname.to_owned(),
            queue,
            frames: t.umem_frames,
            frame_size: t.frame_size,
            rx_size: t.rx_ring_size,
            tx_size: t.tx_ring_size,
            fill_size: t.fill_ring_size,
            comp_size: t.comp_ring_size,
            zero_copy: dp.zero_copy,
            busy_poll: (t.busy_poll_usecs > 0).then_some(BusyPoll {
                usecs: t.busy_poll_usecs,
                budget: t.busy_poll_budget,
                prefer: t.prefer_busy_poll,
            }),
        }
    }
}

/// Socket busy-polling (`SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`,
/// `SO_PREFER_BUSY_POLL`): the worker drives the driver's NAPI loop from its
/// own syscalls instead of waiting for interrupts.
#[derive(Debug, Clone, Copy)]
pub struct BusyPoll {
    pub usecs: u32,
    pub budget: u32,
    pub prefer: bool,
}
