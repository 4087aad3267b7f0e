//! AF_XDP sockets, their UMEM and the XDP steering program's loader — the
//! only module allowed `unsafe` (besides the huge-page advice in
//! [`crate::mem`]).
//!
//! One [`Xsk`] is one socket bound to one (interface, queue) with its own
//! UMEM of `frames` equal chunks. The socket is built directly on the
//! kernel's ABI (`libc`), not on xsk-rs: xsk-rs pins a frame descriptor's
//! address to the chunk's data start, but TUN prepends its outer header
//! into the headroom and must transmit from there.
//!
//! # Frame ownership (the invariant that makes the raw UMEM access sound)
//!
//! Every chunk is, at any time, in exactly one place, and [`Xsk`] counts
//! each: on the free stack; in the fill ring or held by the kernel for RX
//! (`fill_out`); handed to the caller inside `rx_batch`/`inject_batch`
//! (`in_handling`); or on the TX ring / in the kernel until its completion
//! (`tx_out`). Only chunks in the handling state are turned into `&mut
//! [u8]`, each from its own chunk, so the slices never overlap each other
//! and never memory the kernel may write (in copy mode the kernel writes a
//! chunk only after taking it from the fill ring; in zero-copy mode the NIC
//! DMAs only into chunks from the fill ring). A frame's chunk is recovered
//! from its buffer address after the caller's closure, so the closure may
//! reorder frames; a frame that does not point into this UMEM is a bug in
//! the caller and panics rather than leaking or double-freeing a chunk.
//! [`Xsk::frame_accounting`] exposes the four counts for tests.
//!
//! Addresses the kernel hands back (RX descriptors, completions) are checked
//! against the UMEM's geometry before any slice is formed from them (see
//! `umem.rs`): a descriptor outside the UMEM or running past its chunk's end
//! is counted ([`XskStats::invalid_descriptors`]) and never reaches the
//! caller; its chunk is recycled when the address names one, and written
//! off ([`XskStats::lost_chunks`], a fifth count in the accounting) when it
//! does not, since guessing could put a chunk in two places. What the check
//! cannot see — the kernel handing out one chunk twice — stays the kernel's
//! side of the contract.
//!
//! Nothing on the per-packet path allocates or makes a system call: rings
//! are worked in batches, one transaction and one index store each (see
//! `ring.rs`), and [`Xsk::service`] wakes the kernel only when a ring's
//! `needs_wakeup` flag asks for it.

#![allow(unsafe_code)]

mod ring;
pub mod steer;
mod umem;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use arrayvec::ArrayVec;

use crate::config::{Dataplane, ZeroCopy};
use crate::frame::{Frame, Verdict};
use ring::Ring;
use umem::{BadDesc, Chunks, Handled, Umem};

/// Most frames one `rx_batch`/`inject_batch` call hands to its closure.
pub const MAX_BATCH: usize = 1024;

/// Where received packets start in their chunk (`XDP_PACKET_HEADROOM`): the
/// room in front for headers that encapsulation prepends. Injected packets
/// are placed at the same offset.
pub const RX_HEADROOM: usize = 256;

// Not in libc for x86-64 yet (asm-generic/socket.h).
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

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
    /// validated with the configuration (`config::validate`);
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

/// Opening a socket or managing the steering program failed.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("interface {ifname}: no such interface")]
    NoSuchInterface { ifname: String },
    #[error("AF_XDP socket on {ifname} queue {queue}: {reason}")]
    Config {
        ifname: String,
        queue: u32,
        reason: String,
    },
    #[error("AF_XDP socket on {ifname} queue {queue}: {op}: {source}")]
    Os {
        ifname: String,
        queue: u32,
        op: &'static str,
        source: io::Error,
    },
    #[error(
        "AF_XDP socket on {ifname} queue {queue}: zero-copy required but the driver refuses it: {source}"
    )]
    ZeroCopyUnsupported {
        ifname: String,
        queue: u32,
        source: io::Error,
    },
    #[error("XDP program on {ifname}: {op}: {reason}")]
    Bpf {
        ifname: String,
        op: &'static str,
        reason: String,
    },
    #[error(
        "XDP program on {ifname}: another XDP program ({name}, id {id}) is attached; not replacing a program that is not ours (detach it with `ip link set dev {ifname} xdp off`)"
    )]
    ForeignProgram {
        ifname: String,
        name: String,
        id: u32,
    },
}

/// Counters of one socket, cumulative since it was opened, kept by
/// userspace on the data path (plain integers: the socket has one owner).
/// The kernel's own counters are [`Xsk::kernel_stats`].
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
    /// inside one UMEM chunk; never handed on. The kernel does not produce
    /// them: a non-zero count means a kernel or driver bug.
    pub invalid_descriptors: u64,
    /// Chunks written off because an invalid descriptor's address lay
    /// outside the UMEM, so the chunk the kernel meant is unknown (the
    /// socket has that many fewer chunks to work with; see
    /// [`Xsk::frame_accounting`]).
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

/// One AF_XDP socket with its own UMEM and its four rings.
pub struct Xsk {
    // Drop order: rings, then the socket, then the UMEM.
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    fd: OwnedFd,
    umem: Umem,
    /// The UMEM's geometry, which every descriptor from the kernel is
    /// checked against.
    chunks: Chunks,
    frame_size: u32,
    frames: u32,
    port: u8,
    zero_copy: bool,
    copy_reason: Option<io::Error>,
    /// `SO_BUSY_POLL` is set: an empty RX poll calls into the kernel.
    busy_poll: bool,
    /// Free chunks (offsets into the UMEM).
    free: Vec<u64>,
    fill_out: u32,
    tx_out: u32,
    in_handling: u32,
    /// Chunks written off (see [`XskStats::lost_chunks`]).
    lost: u32,
    handled: Vec<Handled>,
    verdicts: Vec<Verdict>,
    stats: XskStats,
}

// SAFETY: the UMEM and the ring mappings are owned by this value alone;
// nothing else in the process points into them. Moving it to the worker
// thread moves that ownership.
unsafe impl Send for Xsk {}

fn is_pow2(n: u32) -> bool {
    n.is_power_of_two()
}

impl Xsk {
    /// Opens a socket on `cfg.queue` of `cfg.ifname`. `port` is the
    /// pipeline port index stamped into every frame this socket yields.
    pub fn open(cfg: &XskConfig, port: u8) -> Result<Xsk, XskError> {
        let cfg_err = |reason: String| XskError::Config {
            ifname: cfg.ifname.clone(),
            queue: cfg.queue,
            reason,
        };
        if !is_pow2(cfg.frames) {
            return Err(cfg_err(format!(
                "frames = {} is not a power of two",
                cfg.frames
            )));
        }
        if cfg.frame_size != 2048 && cfg.frame_size != 4096 {
            return Err(cfg_err(format!(
                "frame_size = {} (must be 2048 or 4096)",
                cfg.frame_size
            )));
        }
        for (name, size) in [
            ("rx_size", cfg.rx_size),
            ("tx_size", cfg.tx_size),
            ("fill_size", cfg.fill_size),
            ("comp_size", cfg.comp_size),
        ] {
            if !is_pow2(size) {
                return Err(cfg_err(format!("{name} = {size} is not a power of two")));
            }
        }
        let cname =
            std::ffi::CString::new(cfg.ifname.as_str()).map_err(|_| XskError::NoSuchInterface {
                ifname: cfg.ifname.clone(),
            })?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoSuchInterface {
                ifname: cfg.ifname.clone(),
            });
        }
        let os = |op: &'static str| {
            move |source: io::Error| XskError::Os {
                ifname: cfg.ifname.clone(),
                queue: cfg.queue,
                op,
                source,
            }
        };
        match cfg.zero_copy {
            ZeroCopy::On => {
                Self::open_mode(cfg, ifindex, port, libc::XDP_ZEROCOPY).map_err(|(op, source)| {
                    match source.raw_os_error() {
                        Some(libc::EOPNOTSUPP) if op == "bind" => XskError::ZeroCopyUnsupported {
                            ifname: cfg.ifname.clone(),
                            queue: cfg.queue,
                            source,
                        },
                        _ => os(op)(source),
                    }
                })
            }
            ZeroCopy::Off => {
                Self::open_mode(cfg, ifindex, port, libc::XDP_COPY).map_err(|(op, e)| os(op)(e))
            }
            ZeroCopy::Auto => match Self::open_mode(cfg, ifindex, port, libc::XDP_ZEROCOPY) {
                Ok(x) => Ok(x),
                Err(("bind", zc_err)) => {
                    let mut x = Self::open_mode(cfg, ifindex, port, libc::XDP_COPY)
                        .map_err(|(op, e)| os(op)(e))?;
                    x.copy_reason = Some(zc_err);
                    Ok(x)
                }
                Err((op, e)) => Err(os(op)(e)),
            },
        }
    }

    /// Everything from the UMEM to the bind, with bind flag `mode`
    /// (`XDP_ZEROCOPY` or `XDP_COPY`). Errors name the failing step.
    fn open_mode(
        cfg: &XskConfig,
        ifindex: u32,
        port: u8,
        mode: u16,
    ) -> Result<Xsk, (&'static str, io::Error)> {
        let umem_len = cfg.frames as usize * cfg.frame_size as usize;
        let umem = Umem::new(umem_len).map_err(|e| ("mmap UMEM", e))?;
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(("socket(AF_XDP)", io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let reg = libc::xdp_umem_reg {
            addr: umem.base.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
            .map_err(|e| ("XDP_UMEM_REG", e))?;
        for (opt, size, what) in [
            (
                libc::XDP_UMEM_FILL_RING,
                cfg.fill_size,
                "XDP_UMEM_FILL_RING",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.comp_size,
                "XDP_UMEM_COMPLETION_RING",
            ),
            (libc::XDP_RX_RING, cfg.rx_size, "XDP_RX_RING"),
            (libc::XDP_TX_RING, cfg.tx_size, "XDP_TX_RING"),
        ] {
            setsockopt(raw, libc::SOL_XDP, opt, &size).map_err(|e| (what, e))?;
        }
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is writable for `optlen` bytes.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&raw mut off).cast(),
                &mut optlen,
            )
        };
        if rc != 0 {
            return Err(("XDP_MMAP_OFFSETS", io::Error::last_os_error()));
        }
        let map = "mmap ring";
        let rx = Ring::map(raw, libc::XDP_PGOFF_RX_RING as u64, &off.rx, cfg.rx_size)
            .map_err(|e| (map, e))?;
        let tx = Ring::map(raw, libc::XDP_PGOFF_TX_RING as u64, &off.tx, cfg.tx_size)
            .map_err(|e| (map, e))?;
        let fill = Ring::map(raw, libc::XDP_UMEM_PGOFF_FILL_RING, &off.fr, cfg.fill_size)
            .map_err(|e| (map, e))?;
        let comp = Ring::map(
            raw,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            &off.cr,
            cfg.comp_size,
        )
        .map_err(|e| (map, e))?;

        if let Some(bp) = cfg.busy_poll {
            let usecs = bp.usecs as libc::c_int;
            let budget = bp.budget as libc::c_int;
            let prefer = bp.prefer as libc::c_int;
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_BUSY_POLL, &usecs)
                .map_err(|e| ("SO_BUSY_POLL", e))?;
            setsockopt(raw, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget)
                .map_err(|e| ("SO_BUSY_POLL_BUDGET", e))?;
            setsockopt(raw, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &prefer)
                .map_err(|e| ("SO_PREFER_BUSY_POLL", e))?;
        }

        let mut x = Xsk {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            chunks: Chunks::new(cfg.frames, cfg.frame_size),
            frame_size: cfg.frame_size,
            frames: cfg.frames,
            port,
            zero_copy: mode == libc::XDP_ZEROCOPY,
            copy_reason: None,
            busy_poll: cfg.busy_poll.is_some(),
            // Highest offsets at the bottom: the first chunks go out first.
            free: (0..cfg.frames as u64)
                .rev()
                .map(|i| i * cfg.frame_size as u64)
                .collect(),
            fill_out: 0,
            tx_out: 0,
            in_handling: 0,
            lost: 0,
            handled: vec![Handled::default(); MAX_BATCH],
            verdicts: vec![Verdict::NotOurs; MAX_BATCH],
            stats: XskStats::default(),
        };
        // The fill ring is stocked before bind so the first packets find
        // chunks.
        x.refill();

        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: cfg.queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the given length.
        let rc = unsafe {
            libc::bind(
                raw,
                (&raw const sa).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(("bind", io::Error::last_os_error()));
        }
        Ok(x)
    }

    /// The socket, for the steering program's XSKMAP.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the bind got zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Why zero-copy was not used when the configuration allowed it
    /// (`ZeroCopy::Auto` fell back to copy mode); `None` otherwise.
    pub fn copy_reason(&self) -> Option<&io::Error> {
        self.copy_reason.as_ref()
    }

    /// Receives up to `max` frames (at most [`MAX_BATCH`]) and calls `f`
    /// once with them and a verdict slot each (preset to `Pass`); then
    /// transmits the frames whose verdict is `Tx` to this socket's port and
    /// recycles the rest. `f` may permute frames and verdicts together.
    /// A descriptor that does not lie inside one UMEM chunk is counted in
    /// [`XskStats::invalid_descriptors`] and not handed to `f`. Returns the
    /// number of descriptors taken off the RX ring (valid or not).
    pub fn rx_batch<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let mut rx = self.rx.consume(max.min(MAX_BATCH) as u32);
        if rx.len() == 0 {
            if self.busy_poll {
                // Busy polling: an empty ring is the moment to let the
                // kernel poll the queue's NAPI in our context (with
                // SO_PREFER_BUSY_POLL, instead of in softirq on whatever
                // core the packets arrived on), as DPDK's AF_XDP PMD does.
                self.stats.rx_kicks += 1;
                // SAFETY: a zero-length, non-blocking receive on our own
                // socket.
                unsafe {
                    libc::recvfrom(
                        self.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    );
                }
            }
            return 0;
        }
        let mut n = 0;
        for d in rx.by_ref() {
            match self.chunks.rx_frame(d.addr, d.len) {
                Ok(h) => {
                    self.handled[n] = h;
                    n += 1;
                }
                // The kernel took the chunk from the fill ring and gave it
                // back with a length that runs past its end: recycle it.
                Err(BadDesc::PastChunk { chunk }) => {
                    self.stats.invalid_descriptors += 1;
                    self.free.push(chunk);
                }
                // Some chunk left the fill ring, but not one we can name:
                // write it off rather than guess (a guess could put a chunk
                // in two places).
                Err(BadDesc::OutsideUmem) => {
                    self.stats.invalid_descriptors += 1;
                    self.stats.lost_chunks += 1;
                    self.lost += 1;
                }
            }
        }
        let taken = rx.release();
        self.fill_out -= taken;
        self.stats.rx += n as u64;
        if n > 0 {
            self.in_handling = n as u32;
            self.handle(n, f);
        }
        taken as usize
    }

    /// Like [`rx_batch`](Self::rx_batch), but the frames are free chunks into
    /// which `data[i]` is copied (at [`RX_HEADROOM`]): packets handed over
    /// from another worker. Returns how many of `data` were taken, a
    /// prefix; the rest found no free chunk (counted in `no_free_frame`).
    pub fn inject_batch<F>(&mut self, data: &[&[u8]], f: F) -> usize
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        if self.free.len() < data.len() {
            self.reclaim();
        }
        let take = data.len().min(self.free.len()).min(MAX_BATCH);
        self.stats.no_free_frame += (data.len() - take) as u64;
        let room = self.frame_size as usize - RX_HEADROOM;
        let mut n = 0;
        for pkt in &data[..take] {
            if pkt.len() > room {
                self.stats.inject_oversize += 1;
                continue;
            }
            let chunk = self.free.pop().expect("counted above");
            // SAFETY: `chunk` came off the free stack, so neither the kernel
            // nor any live slice uses it, and it is a chunk of this UMEM
            // (every chunk offset we hold was made by `open` or passed the
            // `Chunks` checks); RX_HEADROOM + len <= frame_size keeps the
            // copy inside it; `pkt` is caller memory, not UMEM we own
            // mutably, so the ranges do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    pkt.as_ptr(),
                    self.umem.base.as_ptr().add(chunk as usize + RX_HEADROOM),
                    pkt.len(),
                );
            }
            self.handled[n] = Handled {
                chunk,
                head: RX_HEADROOM as u32,
                len: pkt.len() as u32,
            };
            n += 1;
        }
        self.in_handling = n as u32;
        if n > 0 {
            self.handle(n, f);
        }
        take
    }

    /// Hands `handled[..n]` to `f` as frames, then applies the verdicts.
    fn handle<F>(&mut self, n: usize, f: F)
    where
        F: FnOnce(&mut [Frame<'_>], &mut [Verdict]),
    {
        let base = self.umem.base.as_ptr();
        let fs = self.frame_size as usize;
        let mut frames: ArrayVec<Frame<'_>, MAX_BATCH> = ArrayVec::new();
        for h in &self.handled[..n] {
            // SAFETY: see the module's ownership invariant: `h.chunk` is in the
            // handling state, distinct from every other handled chunk (the
            // kernel hands each out once, the free stack holds each once),
            // and no other reference to it exists until `frames` is dropped
            // below. chunk + frame_size <= UMEM length: the chunk passed
            // `Chunks::rx_frame` or came off the free stack.
            let buf = unsafe { std::slice::from_raw_parts_mut(base.add(h.chunk as usize), fs) };
            frames.push(Frame::new(buf, h.head as usize, h.len as usize, self.port));
        }
        let mut verdicts = std::mem::take(&mut self.verdicts);
        verdicts[..n].fill(Verdict::NotOurs);
        f(&mut frames, &mut verdicts[..n]);
        for (i, fr) in frames.iter().enumerate() {
            let start = fr.data().as_ptr() as usize - fr.head();
            let chunk = start.wrapping_sub(base as usize);
            assert!(
                chunk < self.umem.len && chunk.is_multiple_of(fs),
                "a frame returned from the batch closure is not one of this socket's"
            );
            self.handled[i] = Handled {
                chunk: chunk as u64,
                head: fr.head() as u32,
                len: 0,
            };
        }
        drop(frames);

        let mut tx = self.tx.produce(n as u32);
        for (h, v) in self.handled[..n].iter().zip(&verdicts[..n]) {
            match *v {
                Verdict::Tx { port, len }
                    if port == self.port && len > 0 && h.head as usize + len <= fs =>
                {
                    let desc = libc::xdp_desc {
                        addr: h.chunk + h.head as u64,
                        len: len as u32,
                        options: 0,
                    };
                    if !tx.insert(desc) {
                        self.stats.tx_ring_full += 1;
                        self.free.push(h.chunk);
                    }
                }
                _ => self.free.push(h.chunk),
            }
        }
        let ntx = tx.commit();
        self.verdicts = verdicts;
        self.tx_out += ntx;
        self.stats.tx += ntx as u64;
        self.in_handling = 0;
        self.refill();
    }

    /// Moves free chunks onto the fill ring, as many as fit.
    fn refill(&mut self) {
        let want = self.free.len() as u32;
        if want > 0 {
            let mut fill = self.fill.produce(want);
            // The top `capacity() <= want` chunks, last pushed first.
            let rest = self.free.len() - fill.capacity() as usize;
            for &chunk in self.free[rest..].iter().rev() {
                fill.insert(chunk);
            }
            self.free.truncate(rest);
            self.fill_out += fill.commit();
        }
        if self.free.is_empty() && self.fill.pending() == 0 {
            self.stats.fill_empty += 1;
        }
    }

    /// Takes transmitted chunks back from the completion ring.
    fn reclaim(&mut self) {
        let mut comp = self.comp.consume(self.frames);
        for addr in comp.by_ref() {
            match self.chunks.chunk_of(addr) {
                Ok(chunk) => self.free.push(chunk),
                // A completion outside the UMEM names none of the chunks in
                // TX flight: write one off (see `rx_batch`).
                Err(_) => {
                    self.stats.invalid_descriptors += 1;
                    self.stats.lost_chunks += 1;
                    self.lost += 1;
                }
            }
        }
        self.tx_out -= comp.release();
    }

    /// Reclaims completions, refills the fill ring, and makes the system
    /// calls the kernel asked for: `sendto` while TX descriptors wait and
    /// the TX ring wants a wake-up (copy mode sends at most 32 frames per
    /// call, so it repeats while that makes progress), and a non-blocking
    /// `recvfrom` when the fill ring wants one. No system call otherwise.
    pub fn service(&mut self) {
        self.reclaim();
        self.refill();
        let fd = self.fd.as_raw_fd();
        let mut rounds = 0;
        loop {
            let pending = self.tx.pending();
            if pending == 0 || !self.tx.needs_wakeup() || rounds == 64 {
                break;
            }
            rounds += 1;
            self.stats.tx_kicks += 1;
            // SAFETY: a zero-length send on our own socket.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc < 0 || self.tx.pending() >= pending {
                // EAGAIN/EBUSY/ENOBUFS: the kernel is busy or the completion
                // ring is full; the next service call tries again.
                break;
            }
            if self.comp.has_entries() {
                self.reclaim();
            }
        }
        if self.fill.needs_wakeup() {
            self.stats.rx_kicks += 1;
            // SAFETY: a zero-length, non-blocking receive on our own socket;
            // it only makes the kernel run the queue's RX processing.
            unsafe {
                libc::recvfrom(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
    }

    /// Sleeps up to `timeout_ms` until the RX ring has something.
    pub fn wait_rx(&mut self, timeout_ms: i32) {
        self.wait_rx_or(None, timeout_ms);
    }

    /// [`Xsk::wait_rx`], also waking when `other` becomes readable (a
    /// worker's eventfd, written when another worker hands it frames).
    pub fn wait_rx_or(&mut self, other: Option<std::os::fd::BorrowedFd<'_>>, timeout_ms: i32) {
        let mut pfds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: other.map_or(-1, |fd| fd.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds (a negative fd is ignored by poll(2)).
        unsafe {
            libc::poll(pfds.as_mut_ptr(), 2, timeout_ms);
        }
    }

    /// This socket's counters, kept in userspace (no system call).
    pub fn stats(&self) -> XskStats {
        self.stats
    }

    /// The kernel's counters of this socket: one `getsockopt` system call,
    /// for the control side now and then, not per packet.
    pub fn kernel_stats(&self) -> io::Result<XdpKernelStats> {
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
                self.fd.as_raw_fd(),
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

    /// (chunks in the UMEM, chunks accounted for: the sum of free, on the
    /// fill ring or held by the kernel for RX, being handled, in TX flight
    /// until completion, and written off after an invalid descriptor).
    /// Equal unless a chunk leaked.
    pub fn frame_accounting(&self) -> (u32, u32) {
        (
            self.frames,
            self.free.len() as u32 + self.fill_out + self.in_handling + self.tx_out + self.lost,
        )
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is readable for size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
