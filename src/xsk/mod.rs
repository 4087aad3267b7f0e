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
//! `umem.rs`), and against where the socket last put the chunk they name
//! (a `umem::Place` per chunk): a descriptor outside the UMEM,
//! running past its chunk's end, or naming a chunk the kernel does not
//! hold (a completion for a chunk never sent, an RX descriptor for a chunk
//! not on the fill ring, one chunk twice, more descriptors than chunks
//! given) is counted ([`XskStats::invalid_descriptors`]) and never reaches
//! the caller. Its chunk is recycled when the descriptor names one the
//! kernel held, nothing moves when it names one the kernel did not, and
//! one chunk is written off ([`XskStats::lost_chunks`], a fifth count in
//! the accounting) when the address names none although one left the
//! ring, since guessing could put a chunk in two places. So no descriptor,
//! however forged, makes two live slices of one chunk, a slice outside the
//! UMEM, a panic, or a count that runs below zero (`faults.rs` plays such
//! a kernel).
//!
//! Nothing on the per-packet path allocates or makes a system call: rings
//! are worked in batches, one transaction and one index store each (see
//! `ring.rs`), and [`Xsk::service`] wakes the kernel only when a ring's
//! `needs_wakeup` flag asks for it.
//!
//! # Files
//!
//! This file holds [`Xsk`] and its data path (`rx_batch`, `inject_batch`,
//! `service`, `wait_rx`); `socket.rs` opens and binds it; `ring.rs` and
//! `umem.rs` are the shared memory it works on; `config.rs`, `stats.rs`
//! and `error.rs` hold what it is opened with, what it counts and how
//! opening fails; `steer.rs` loads the XDP program that feeds it.
//! `packet.rs` is apart from the data path: an AF_PACKET socket for the
//! control side's probes through the forwarding path (`health::via`).

#![allow(unsafe_code)]

mod config;
pub mod driver;
mod error;
pub mod packet;
mod ring;
mod socket;
mod stats;
pub mod steer;
mod umem;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use arrayvec::ArrayVec;

use crate::frame::{Frame, Verdict};
use ring::Ring;
use umem::{BadDesc, Chunks, Handled, Place, Places, Umem};

pub use config::{BUSY_WAIT, BusyPoll, XskConfig};
pub use error::XskError;
pub use stats::{XdpKernelStats, XskStats};

/// Most frames one `rx_batch`/`inject_batch` call hands to its closure.
pub const MAX_BATCH: usize = 1024;

/// Where received packets start in their chunk (`XDP_PACKET_HEADROOM`): the
/// room in front for headers that encapsulation prepends. Injected packets
/// are placed at the same offset.
pub const RX_HEADROOM: usize = crate::frame::RX_HEADROOM;

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
    /// Where each chunk is; every descriptor from the kernel must name a
    /// chunk where the kernel could have it.
    places: Places,
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

impl Xsk {
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
                Ok(h) if self.places.take(h.chunk, Place::Fill, Place::Handling) => {
                    left(&mut self.fill_out, &mut self.lost);
                    self.handled[n] = h;
                    n += 1;
                }
                // The kernel took the chunk from the fill ring and gave it
                // back with a length that runs past its end: recycle it.
                Err(BadDesc::PastChunk { chunk })
                    if self.places.take(chunk, Place::Fill, Place::Free) =>
                {
                    self.stats.invalid_descriptors += 1;
                    left(&mut self.fill_out, &mut self.lost);
                    self.free.push(chunk);
                }
                // Some chunk left the fill ring, but not one we can name:
                // write it off rather than guess (a guess could put a chunk
                // in two places).
                Err(BadDesc::OutsideUmem) if self.fill_out > 0 => {
                    self.stats.invalid_descriptors += 1;
                    self.stats.lost_chunks += 1;
                    self.fill_out -= 1;
                    self.lost += 1;
                }
                // A chunk that is not on the fill ring (free, being sent,
                // already received in this batch), or more descriptors
                // than chunks on the fill ring: nothing of ours moved.
                _ => self.stats.invalid_descriptors += 1,
            }
        }
        let taken = rx.release();
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
            self.places.set(chunk, Place::Handling);
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
                    if tx.insert(desc) {
                        self.places.set(h.chunk, Place::Tx);
                    } else {
                        self.stats.tx_ring_full += 1;
                        self.places.set(h.chunk, Place::Free);
                        self.free.push(h.chunk);
                    }
                }
                _ => {
                    self.places.set(h.chunk, Place::Free);
                    self.free.push(h.chunk);
                }
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
                self.places.set(chunk, Place::Fill);
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
                Ok(chunk) if self.places.take(chunk, Place::Tx, Place::Free) => {
                    self.free.push(chunk);
                    left(&mut self.tx_out, &mut self.lost);
                }
                // A completion outside the UMEM names none of the chunks in
                // TX flight: write one off (see `rx_batch`).
                Err(_) if self.tx_out > 0 => {
                    self.stats.invalid_descriptors += 1;
                    self.stats.lost_chunks += 1;
                    self.tx_out -= 1;
                    self.lost += 1;
                }
                // A chunk that was not sent, or more completions than
                // chunks in flight: nothing of ours moved.
                _ => self.stats.invalid_descriptors += 1,
            }
        }
        let _ = comp.release();
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
        XdpKernelStats::read(self.fd.as_fd())
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

/// A chunk left a place whose count is `count` (on the fill ring or in
/// the kernel, in TX flight): one fewer there, or, when the count says none
/// is, it is one written off earlier that came back. (`lost` then covers
/// it: every chunk written off from a place still sits in it.)
#[inline]
fn left(count: &mut u32, lost: &mut u32) {
    if *count > 0 {
        *count -= 1;
    } else {
        *lost -= 1;
    }
}

#[cfg(test)]
mod faults;
#[cfg(test)]
mod tests;
