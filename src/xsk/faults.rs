//! Faults below the socket: an [`Xsk`] whose rings and UMEM are anonymous
//! memory, with the test playing a kernel that misbehaves — a TX ring that
//! is never drained, no free chunk for an inject, forged RX descriptors
//! and completions (outside the UMEM, past a chunk's end, for chunks the
//! kernel does not hold, duplicated, more than were given). Each case
//! checks the property the socket promises: bad descriptors are counted
//! and never handed on, no frame slice lies outside its own chunk, no
//! count runs below zero (that would panic here, in a debug build), and
//! once the fault clears every chunk is accounted for (free + in flight ==
//! total).

use std::os::fd::OwnedFd;

use super::ring::Ring;
use super::umem::{Chunks, Handled, Places, Umem};
use super::{MAX_BATCH, RX_HEADROOM, Xsk, XskStats};
use crate::frame::{DropReason, Frame, Verdict};

const FRAMES: u32 = 64;
const FRAME_SIZE: u32 = 2048;
const FILL: u32 = 32;
const COMP: u32 = 64;
const RXR: u32 = 64;
const TXR: u32 = 16;
const PORT: u8 = 1;

const OFF: libc::xdp_ring_offset = libc::xdp_ring_offset {
    producer: 0,
    consumer: 64,
    flags: 128,
    desc: 192,
};

fn ring<T: Copy>(size: u32) -> Ring<T> {
    let map_len = OFF.desc as usize + size as usize * std::mem::size_of::<T>();
    // SAFETY: a fresh private anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: our own fresh mapping of `map_len` bytes, laid out as OFF
    // says (page-aligned base, aligned offsets), handed over to the ring.
    unsafe { Ring::from_mapping(p, map_len, &OFF, size) }
}

/// A socket on anonymous memory, its fill ring stocked. Its "socket" is
/// /dev/null: the rings never ask for a wake-up, so no system call is made.
fn socket() -> Xsk {
    let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let mut x = Xsk {
        rx: ring(RXR),
        tx: ring(TXR),
        fill: ring(FILL),
        comp: ring(COMP),
        fd,
        umem: Umem::new((FRAMES * FRAME_SIZE) as usize).unwrap(),
        chunks: Chunks::new(FRAMES, FRAME_SIZE),
        places: Places::new(FRAMES, FRAME_SIZE),
        frame_size: FRAME_SIZE,
        frames: FRAMES,
        port: PORT,
        zero_copy: false,
        copy_reason: None,
        busy_poll: false,
        free: (0..FRAMES as u64)
            .rev()
            .map(|i| i * FRAME_SIZE as u64)
            .collect(),
        fill_out: 0,
        tx_out: 0,
        in_handling: 0,
        lost: 0,
        handled: vec![Handled::default(); MAX_BATCH],
        verdicts: vec![Verdict::NotOurs; MAX_BATCH],
        stats: XskStats::default(),
    };
    x.refill();
    x
}

/// The kernel receives `n` frames of `len` bytes (the first byte says
/// which) into chunks from the fill ring; returns their addresses.
fn receive(x: &mut Xsk, n: usize, len: u32) -> Vec<u64> {
    let chunks = x.fill.peer_consume(n);
    let descs: Vec<libc::xdp_desc> = chunks
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let addr = c + RX_HEADROOM as u64;
            // SAFETY: the kernel's write into a chunk it took from the fill
            // ring (inside the UMEM: c < FRAMES * FRAME_SIZE).
            unsafe { x.umem.base.as_ptr().add(addr as usize).write(i as u8) }
            libc::xdp_desc {
                addr,
                len,
                options: 0,
            }
        })
        .collect();
    assert_eq!(x.rx.peer_produce(&descs), descs.len());
    chunks
}

/// The kernel sends what is on the TX ring and completes it.
fn send_all(x: &mut Xsk) -> usize {
    let sent = x.tx.peer_consume(usize::MAX);
    let addrs: Vec<u64> = sent.iter().map(|d| d.addr).collect();
    assert_eq!(x.comp.peer_produce(&addrs), addrs.len());
    addrs.len()
}

fn desc(addr: u64, len: u32) -> libc::xdp_desc {
    libc::xdp_desc {
        addr,
        len,
        options: 0,
    }
}

fn balanced(x: &Xsk) {
    let (total, counted) = x.frame_accounting();
    assert_eq!(total, counted, "chunks leaked or counted twice");
}

/// Once the fault clears (the kernel sends and completes everything, hands
/// back what it holds) every chunk is free or on the fill ring again.
fn drain(x: &mut Xsk) {
    for _ in 0..8 {
        send_all(x);
        x.service();
        x.rx_batch(MAX_BATCH, |_, _| {});
    }
    balanced(x);
    assert_eq!((x.tx_out, x.in_handling), (0, 0));
    assert_eq!(
        x.free.len() as u32 + x.fill_out + x.lost,
        FRAMES,
        "free + on the fill ring + written off == total"
    );
}

fn transmit(frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
    for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
        *v = Verdict::Tx {
            port: PORT,
            len: f.len(),
        };
    }
}

#[test]
fn forged_rx_descriptors_are_counted_and_never_handed_on() {
    let mut x = socket();
    let good = receive(&mut x, 4, 60);
    // What a broken kernel or driver might add to the same batch: a
    // chunk's frame running past its end (the chunk is ours: recycled),
    // an address past the UMEM, the top 16 bits set (unaligned mode),
    // one of the good chunks again, and a free chunk (never given).
    let past = x.fill.peer_consume(1)[0];
    let free_chunk = *x.free.last().unwrap();
    let forged = [
        desc(past + RX_HEADROOM as u64, FRAME_SIZE),
        desc((FRAMES * FRAME_SIZE) as u64 + 256, 60),
        desc((1u64 << 48) | good[0], 60),
        desc(good[1] + RX_HEADROOM as u64, 60),
        desc(free_chunk + RX_HEADROOM as u64, 60),
        desc(u64::MAX - 10, u32::MAX),
    ];
    assert_eq!(x.rx.peer_produce(&forged), forged.len());
    let mut firsts = Vec::new();
    let mut starts = Vec::new();
    let taken = x.rx_batch(MAX_BATCH, |frames, verdicts| {
        starts = check_frames_raw(frames);
        for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()) {
            firsts.push(f.data()[0]);
            // The closure may write the whole frame: only its own chunk.
            f.data_mut().fill(0xee);
            *v = Verdict::Drop(DropReason::Malformed);
        }
    });
    assert_eq!(taken, 10, "every descriptor is taken off the ring");
    assert_eq!(firsts, [0, 1, 2, 3], "only the good frames, in order");
    let base = x.umem.base.as_ptr() as usize;
    let mut want: Vec<usize> = good.iter().map(|&c| base + c as usize).collect();
    want.sort_unstable();
    starts.sort_unstable();
    assert_eq!(starts, want);
    let s = x.stats();
    assert_eq!(s.rx, 4);
    assert_eq!(s.invalid_descriptors, 6);
    // Three addresses outside the UMEM while chunks were on the fill
    // ring: one chunk each is written off (which one the kernel took is
    // unknown).
    assert_eq!(s.lost_chunks, 3, "{s:?}");
    balanced(&x);
    // The chunk of the frame that ran past its end was recycled.
    assert!(x.free.contains(&past) || x.fill_chunks().contains(&past));
    drain(&mut x);
}

#[test]
fn more_descriptors_than_chunks_given_move_nothing() {
    let mut x = socket();
    // The kernel takes every chunk on the fill ring, then reports twice as
    // many frames, all addresses outside the UMEM: only as many chunks as
    // it held can be written off; the rest move nothing.
    let held = x.fill.peer_consume(usize::MAX).len();
    assert_eq!(held, FILL as usize);
    let forged: Vec<libc::xdp_desc> = (0..2 * FILL)
        .map(|i| desc(((FRAMES + i) * FRAME_SIZE) as u64, 60))
        .collect();
    assert_eq!(x.rx.peer_produce(&forged), forged.len());
    let mut handed = 0;
    x.rx_batch(MAX_BATCH, |f, _| handed += f.len());
    assert_eq!(handed, 0);
    let s = x.stats();
    assert_eq!(s.invalid_descriptors, 2 * FILL as u64);
    // The written-off ones are exactly those the kernel held.
    assert_eq!(s.lost_chunks, FILL as u64);
    balanced(&x);
    // The socket still works: frames received into refilled chunks.
    x.service();
    receive(&mut x, 8, 100);
    let mut got = 0;
    x.rx_batch(MAX_BATCH, |f, _| got = f.len());
    assert_eq!(got, 8);
    drain(&mut x);
}

#[test]
fn forged_completions_are_counted_and_never_free_a_chunk_twice() {
    let mut x = socket();
    receive(&mut x, 8, 60);
    x.rx_batch(MAX_BATCH, transmit);
    assert_eq!((x.stats().tx, x.tx_out), (8, 8));
    let sent: Vec<u64> =
        x.tx.peer_consume(usize::MAX)
            .iter()
            .map(|d| d.addr)
            .collect();
    // A free chunk, a chunk on the fill ring, one sent chunk twice, an
    // address past the UMEM, then the real completions, then extra ones.
    let free_chunk = *x.free.last().unwrap();
    let on_fill = x.fill_chunks()[0];
    let mut forged = vec![
        free_chunk,
        on_fill + RX_HEADROOM as u64,
        sent[0],
        sent[0],
        (FRAMES * FRAME_SIZE) as u64,
    ];
    forged.extend_from_slice(&sent[1..]);
    forged.extend([sent[1], u64::MAX, (FRAMES * FRAME_SIZE) as u64 * 2]);
    assert_eq!(x.comp.peer_produce(&forged), forged.len());
    x.service();
    let s = x.stats();
    // Good: sent[0] once and sent[1..8]; the address past the UMEM wrote
    // one in-flight chunk off, which came back with the last real
    // completion; extra completions after that found none in flight (two
    // outside) or named a chunk not sent.
    assert_eq!((x.tx_out, x.lost), (0, 0));
    assert_eq!(s.lost_chunks, 1, "{s:?}");
    assert_eq!(s.invalid_descriptors, 7, "{s:?}");
    balanced(&x);
    // No chunk is free twice.
    let mut free = x.free.clone();
    free.extend(x.fill_chunks());
    free.sort_unstable();
    let n = free.len();
    free.dedup();
    assert_eq!(free.len(), n, "a chunk is in two places");
    drain(&mut x);
}

#[test]
fn a_tx_ring_that_is_never_drained_drops_and_counts() {
    let mut x = socket();
    // The kernel does not send: the TX ring (16) fills, the rest of each
    // batch is dropped with its chunk recycled.
    for round in 0..3 {
        receive(&mut x, 24, 60);
        x.rx_batch(MAX_BATCH, transmit);
        x.service();
        balanced(&x);
        let s = x.stats();
        assert_eq!(s.tx, TXR as u64, "round {round}: {s:?}");
        assert_eq!(s.tx_ring_full, 24 * (round + 1) - TXR as u64);
        assert_eq!(x.tx_out, TXR);
    }
    // Frames in == transmitted + dropped for want of a slot.
    let s = x.stats();
    assert_eq!(s.rx, s.tx + s.tx_ring_full);
    // The fault clears: the kernel sends, everything comes back.
    drain(&mut x);
    assert_eq!(x.stats().lost_chunks, 0);
}

#[test]
fn injects_without_free_chunks_are_short_and_counted() {
    let mut x = socket();
    let pkt = [0x5au8; 100];
    let big = vec![0u8; FRAME_SIZE as usize];
    // 32 chunks are free, 32 on the fill ring: 40 asked, 32 taken (a
    // prefix), 8 refused, one of the taken ones too long for a chunk.
    let mut data: Vec<&[u8]> = vec![&pkt[..]; 40];
    data[3] = &big;
    let mut handed = 0;
    let taken = x.inject_batch(&data, |frames, verdicts| {
        check_frames_raw(frames);
        handed = frames.len();
        for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
            assert_eq!(f.data(), &pkt[..]);
            *v = Verdict::Tx {
                port: PORT,
                len: f.len(),
            };
        }
    });
    assert_eq!((taken, handed), (32, 31));
    let s = x.stats();
    assert_eq!((s.no_free_frame, s.inject_oversize), (8, 1));
    // 16 on the TX ring, 15 dropped for want of a slot.
    assert_eq!((s.tx, s.tx_ring_full), (16, 15));
    balanced(&x);
    // Nothing free at all: the kernel holds the fill ring's chunks, and
    // the TX ring's are not completed. An inject takes nothing.
    x.fill.peer_consume(usize::MAX);
    let mut calls = 0;
    let before = x.free.len();
    // Those free (the 15 dropped) are used up first.
    let taken = x.inject_batch(&vec![&pkt[..]; before], |_, _| calls += 1);
    assert_eq!(taken, before);
    let taken = x.inject_batch(&[&pkt[..]; 5], |_, _| calls += 1);
    assert_eq!(taken, 0);
    assert_eq!(calls, 1, "no closure call for an empty batch");
    assert_eq!(x.stats().no_free_frame, 8 + 5);
    balanced(&x);
    // The kernel gives back what it held (empty frames), sends the rest.
    let held: Vec<libc::xdp_desc> = x
        .fill_chunks_taken()
        .into_iter()
        .map(|c| desc(c + RX_HEADROOM as u64, 0))
        .collect();
    x.rx.peer_produce(&held);
    drain(&mut x);
    assert_eq!(x.stats().lost_chunks, 0);
}

/// Chunk starts of a batch's frames, checked to be distinct whole chunks.
fn check_frames_raw(frames: &mut [Frame<'_>]) -> Vec<usize> {
    let mut seen = Vec::new();
    for f in frames.iter_mut() {
        // The buffer is the chunk: it grows to the chunk's end, not past.
        let (head, len) = (f.head(), f.len());
        assert!(!f.grow_to(FRAME_SIZE as usize - head + 1));
        assert!(f.grow_to(FRAME_SIZE as usize - head));
        f.truncate(len);
        let start = f.data().as_ptr() as usize - f.head();
        assert!(start.is_multiple_of(FRAME_SIZE as usize));
        assert!(!seen.contains(&start), "one chunk handed out twice");
        seen.push(start);
    }
    seen
}

impl Xsk {
    /// Chunks on the fill ring not yet taken by the kernel double.
    fn fill_chunks(&self) -> Vec<u64> {
        self.fill.peer_peek()
    }

    /// Chunks in the fill state that the kernel double took off the ring
    /// and still holds.
    fn fill_chunks_taken(&self) -> Vec<u64> {
        let on_ring = self.fill_chunks();
        (0..FRAMES as u64)
            .map(|i| i * FRAME_SIZE as u64)
            .filter(|&c| self.places.is(c, super::umem::Place::Fill) && !on_ring.contains(&c))
            .collect()
    }
}
