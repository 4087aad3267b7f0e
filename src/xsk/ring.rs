//! The four AF_XDP rings as single-producer/single-consumer queues shared
//! with the kernel through `mmap`.
//!
//! Each ring is a power-of-two array of entries plus two free-running
//! 32-bit indices, `producer` and `consumer`, each written by one side
//! only. Userspace produces on the fill and TX rings and consumes the RX
//! and completion rings. Like libxdp's `xsk.h`, we keep a cached copy of
//! the other side's index and only reload it (an Acquire load, pairing
//! with the kernel's release of that index) when the cache says the ring
//! looks full/empty; our own index is published with a Release store after
//! the entries are written (producer) or read (consumer), so the kernel
//! never sees an index ahead of the data.
//!
//! Work is done in transactions, one index store per batch (as xdpilone's
//! `WriteFill`/`ReadRx`):
//!
//! - [`Ring::produce`] reserves up to `n` free slots and returns a
//!   [`Producer`]; [`Producer::insert`] writes the next reserved slot (and
//!   says `false` once they are used up); [`Producer::commit`] publishes
//!   what was inserted. Dropping a `Producer` without committing publishes
//!   nothing: the slots stay free and the next transaction overwrites them
//!   (rollback).
//! - [`Ring::consume`] takes up to `max` published entries and returns a
//!   [`Consumer`], an iterator over them; [`Consumer::release`] hands the
//!   slots of the entries read so far back to the kernel. Dropping a
//!   `Consumer` without releasing releases nothing: the kernel keeps the
//!   slots and the next `consume` yields the same entries again.
//!
//! A transaction borrows its ring mutably, so there is at most one at a
//! time per ring, and it never touches a slot outside what it reserved or
//! took; no safe function has a precondition its caller must check. The
//! kernel's indices are clamped to the ring's size, so even a nonsensical
//! index never makes a transaction hand out more slots than the ring has.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mapped ring. `T` is the entry: `u64` (fill, completion: a UMEM
/// address) or `libc::xdp_desc` (RX, TX).
pub(super) struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    /// Our own index, as last published: transactions work ahead of it and
    /// move it only when they commit/release.
    local: u32,
    /// The kernel's index as last read.
    cached: u32,
    map: NonNull<libc::c_void>,
    map_len: usize,
}

// SAFETY: the ring is a mapping owned by this value; the raw pointers are
// only dereferenced through `&mut self`/`&self` methods, and the kernel side
// is synchronised through the atomics. Moving it to another thread is fine.
unsafe impl<T> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries (a power of two; the kernel refuses
    /// other sizes when the ring is created) at page offset `pgoff` of
    /// socket `fd`, laid out as `off` says.
    pub(super) fn map(
        fd: i32,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Ring<T>> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks offset and length.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just mapped this ring, of `map_len` bytes laid
        // out as `off` says with `size` entries, and nothing else owns it.
        Ok(unsafe { Ring::from_mapping(p, map_len, off, size) })
    }

    /// Takes over the mapping `p` of `map_len` bytes as a ring.
    ///
    /// # Safety
    ///
    /// `p` is a live `mmap` mapping of `map_len` bytes that nothing else in
    /// the process uses and that the returned ring unmaps on drop;
    /// `size` is a power of two; the three indices lie at `off.producer`,
    /// `off.consumer` and `off.flags`, 4-byte aligned, and `size` entries
    /// of `T` at `off.desc`, aligned for `T`, all inside the mapping.
    pub(super) unsafe fn from_mapping(
        p: *mut libc::c_void,
        map_len: usize,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> Ring<T> {
        debug_assert!(size.is_power_of_two());
        let base = p.cast::<u8>();
        let at = |o: u64| {
            // SAFETY: the offsets lie inside the mapping (this function's
            // contract).
            NonNull::new(unsafe { base.add(o as usize) }).expect("mmap returned null")
        };
        Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            entries: at(off.desc).cast(),
            mask: size - 1,
            size,
            local: 0,
            cached: 0,
            map: NonNull::new(p).expect("mmap returned null"),
            map_len,
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping, aligned by the kernel; shared
        // with the kernel, hence only accessed atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Whether the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`).
    pub(super) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`. Relaxed: the flag is a hint; a stale
        // read only costs one extra or one later wake-up.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer side (fill, TX) -----------------------------------------

    /// Free slots, reloading the kernel's consumer index when fewer than
    /// `want` look free.
    #[inline]
    fn room(&mut self, want: u32) -> u32 {
        // Saturating: a consumer index ahead of ours (which the kernel
        // never publishes) reads as a full ring, not as a huge free space.
        let free = self
            .size
            .saturating_sub(self.local.wrapping_sub(self.cached));
        if free >= want {
            return free;
        }
        // Acquire: pairs with the kernel's release of its consumer index, so
        // the entries it has consumed are no longer read by it and their
        // slots may be overwritten.
        self.cached = self.consumer().load(Ordering::Acquire);
        self.size
            .saturating_sub(self.local.wrapping_sub(self.cached))
    }

    /// Reserves up to `want` free slots for writing.
    #[inline]
    pub(super) fn produce(&mut self, want: u32) -> Producer<'_, T> {
        let reserved = self.room(want).min(want);
        Producer {
            ring: self,
            reserved,
            written: 0,
        }
    }

    /// Entries produced but not yet consumed by the kernel.
    pub(super) fn pending(&self) -> u32 {
        // Relaxed: only a count, used to decide whether to wake the kernel or
        // to count an empty fill ring; no entry is accessed on its strength.
        self.local
            .wrapping_sub(self.consumer().load(Ordering::Relaxed))
    }

    // ---- consumer side (RX, completion) ------------------------------------

    /// Takes up to `max` of the entries the kernel has published.
    #[inline]
    pub(super) fn consume(&mut self, max: u32) -> Consumer<'_, T> {
        // At most `size`: a producer index that runs further ahead of ours
        // (which the kernel never publishes) must not make us read slots
        // twice over.
        let mut avail = self.cached.wrapping_sub(self.local).min(self.size);
        if avail == 0 {
            // Acquire: pairs with the kernel's release of its producer index;
            // the entries it covers are fully written before we read them.
            self.cached = self.producer().load(Ordering::Acquire);
            avail = self.cached.wrapping_sub(self.local).min(self.size);
        }
        Consumer {
            ring: self,
            avail: avail.min(max),
            read: 0,
        }
    }

    /// Whether the kernel has published entries we have not read.
    pub(super) fn has_entries(&self) -> bool {
        // Relaxed: a hint whether to call `consume`, which does the Acquire.
        self.producer().load(Ordering::Relaxed) != self.local
    }
}

/// The kernel's side of a ring, for the tests' kernel double
/// (`faults.rs`): produce on a consumer ring, consume from a producer ring.
#[cfg(test)]
impl<T: Copy> Ring<T> {
    /// Publishes `v` as the kernel would on the RX or completion ring
    /// (as many as fit); returns how many.
    pub(super) fn peer_produce(&self, v: &[T]) -> usize {
        let p = self.producer().load(Ordering::Relaxed);
        let used = p.wrapping_sub(self.consumer().load(Ordering::Acquire));
        let n = (self.size - used.min(self.size)).min(v.len() as u32);
        for (k, &x) in v[..n as usize].iter().enumerate() {
            let idx = p.wrapping_add(k as u32) & self.mask;
            // SAFETY: idx <= mask < size; the slot is past our producer
            // index and before the consumer's, so no one reads it.
            unsafe { self.entries.as_ptr().add(idx as usize).write(x) }
        }
        self.producer().store(p.wrapping_add(n), Ordering::Release);
        n as usize
    }

    /// The entries on the fill or TX ring that the kernel has not taken.
    pub(super) fn peer_peek(&self) -> Vec<T> {
        let c = self.consumer().load(Ordering::Relaxed);
        let n = self.producer().load(Ordering::Acquire).wrapping_sub(c);
        (0..n)
            .map(|k| {
                let idx = c.wrapping_add(k) & self.mask;
                // SAFETY: as in `peer_consume`.
                unsafe { self.entries.as_ptr().add(idx as usize).read() }
            })
            .collect()
    }

    /// Takes up to `max` entries off the fill or TX ring as the kernel
    /// would.
    pub(super) fn peer_consume(&self, max: usize) -> Vec<T> {
        let c = self.consumer().load(Ordering::Relaxed);
        let avail = self.producer().load(Ordering::Acquire).wrapping_sub(c);
        let n = avail.min(max as u32);
        let out = (0..n)
            .map(|k| {
                let idx = c.wrapping_add(k) & self.mask;
                // SAFETY: idx <= mask < size; the entry was published by
                // the producer's Release store, Acquire-loaded above.
                unsafe { self.entries.as_ptr().add(idx as usize).read() }
            })
            .collect();
        self.consumer().store(c.wrapping_add(n), Ordering::Release);
        out
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: our own mapping of exactly this length, no longer used.
        unsafe {
            libc::munmap(self.map.as_ptr(), self.map_len);
        }
    }
}

/// A batch of reserved slots on a producer ring (fill, TX); see the module
/// doc. Nothing reaches the kernel until [`commit`](Self::commit).
#[must_use = "nothing is published until commit()"]
pub(super) struct Producer<'r, T: Copy> {
    ring: &'r mut Ring<T>,
    /// Slots reserved, starting at the ring's published producer index.
    reserved: u32,
    /// Slots written so far, a prefix of the reserved ones.
    written: u32,
}

impl<T: Copy> Producer<'_, T> {
    /// Slots reserved: the first `capacity()` inserts succeed.
    #[inline]
    pub(super) fn capacity(&self) -> u32 {
        self.reserved
    }

    /// Writes `v` into the next reserved slot; `false` (and nothing
    /// written) when all reserved slots are used.
    #[inline]
    pub(super) fn insert(&mut self, v: T) -> bool {
        if self.written == self.reserved {
            return false;
        }
        let idx = self.ring.local.wrapping_add(self.written) & self.ring.mask;
        // SAFETY: idx <= mask < size, inside the entry array. The slot is
        // one of the `reserved` slots past the published producer index that
        // `room` found free: the kernel's consumer index (Acquire-loaded)
        // has passed it, so the kernel no longer reads it, and it will not
        // read it again before our Release store in `commit` covers it.
        unsafe { self.ring.entries.as_ptr().add(idx as usize).write(v) }
        self.written += 1;
        true
    }

    /// Publishes the inserted entries to the kernel with one index store
    /// (none when nothing was inserted); returns how many.
    #[inline]
    pub(super) fn commit(self) -> u32 {
        let n = self.written;
        if n > 0 {
            self.ring.local = self.ring.local.wrapping_add(n);
            // Release: the entries written by `insert` become visible to the
            // kernel before the index that covers them.
            self.ring
                .producer()
                .store(self.ring.local, Ordering::Release);
        }
        n
    }
}

/// A batch of published entries on a consumer ring (RX, completion),
/// read as an iterator; see the module doc. The kernel gets the slots back
/// only on [`release`](Self::release).
#[must_use = "the kernel gets the slots back only on release()"]
pub(super) struct Consumer<'r, T: Copy> {
    ring: &'r mut Ring<T>,
    /// Entries taken, starting at the ring's published consumer index.
    avail: u32,
    /// Entries read so far, a prefix of the taken ones.
    read: u32,
}

impl<T: Copy> Consumer<'_, T> {
    /// Returns the slots of the entries read so far to the kernel with one
    /// index store (none when nothing was read); returns how many.
    #[inline]
    pub(super) fn release(self) -> u32 {
        let n = self.read;
        if n > 0 {
            self.ring.local = self.ring.local.wrapping_add(n);
            // Release: our reads of the entries happen before the kernel may
            // reuse their slots.
            self.ring
                .consumer()
                .store(self.ring.local, Ordering::Release);
        }
        n
    }
}

impl<T: Copy> Iterator for Consumer<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.read == self.avail {
            return None;
        }
        let idx = self.ring.local.wrapping_add(self.read) & self.ring.mask;
        self.read += 1;
        // SAFETY: idx <= mask < size, inside the entry array. The entry lies
        // between our published consumer index and the kernel's producer
        // index as Acquire-loaded in `consume`, so the kernel wrote it
        // completely and will not overwrite it before `release` stores an
        // index past it.
        Some(unsafe { self.ring.entries.as_ptr().add(idx as usize).read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.avail - self.read) as usize;
        (n, Some(n))
    }
}

impl<T: Copy> ExactSizeIterator for Consumer<'_, T> {}

#[cfg(test)]
mod tests {
    //! The transactions against a ring in anonymous memory, the test
    //! playing the kernel's side of the indices.

    use super::*;

    const OFF: libc::xdp_ring_offset = libc::xdp_ring_offset {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };

    fn ring(size: u32) -> Ring<u64> {
        let map_len = OFF.desc as usize + size as usize * 8;
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

    /// The "kernel" reads slot `i` of the entry array.
    fn slot(r: &Ring<u64>, i: u32) -> u64 {
        // SAFETY: i < size in every caller; single-threaded test.
        unsafe { r.entries.as_ptr().add(i as usize).read() }
    }

    /// The "kernel" produces `v` on a consumer ring.
    fn kernel_produce(r: &Ring<u64>, v: &[u64]) {
        let p = r.producer().load(Ordering::Relaxed);
        for (k, &x) in v.iter().enumerate() {
            let idx = p.wrapping_add(k as u32) & r.mask;
            // SAFETY: idx < size; single-threaded test.
            unsafe { r.entries.as_ptr().add(idx as usize).write(x) }
        }
        r.producer()
            .store(p.wrapping_add(v.len() as u32), Ordering::Release);
    }

    #[test]
    fn produce_commit_publishes_what_was_inserted() {
        let mut r = ring(4);
        let mut p = r.produce(3);
        assert_eq!(p.capacity(), 3);
        assert!(p.insert(10) && p.insert(11));
        assert_eq!(p.commit(), 2);
        assert_eq!(r.producer().load(Ordering::Relaxed), 2);
        assert_eq!((slot(&r, 0), slot(&r, 1)), (10, 11));
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn produce_stops_at_reserved_and_ring_full() {
        let mut r = ring(4);
        let mut p = r.produce(8);
        assert_eq!(p.capacity(), 4);
        for v in 0..4 {
            assert!(p.insert(v));
        }
        assert!(!p.insert(99), "insert past the reservation");
        assert_eq!(p.commit(), 4);
        // Full until the kernel consumes.
        assert_eq!(r.produce(1).capacity(), 0);
        r.consumer().store(3, Ordering::Release);
        let mut p = r.produce(8);
        assert_eq!(p.capacity(), 3);
        assert!(p.insert(4) && p.insert(5) && p.insert(6) && !p.insert(7));
        assert_eq!(p.commit(), 3);
        // Wrapped around: slots 0..3 now hold 4, 5, 6; slot 3 still 3.
        assert_eq!(
            [slot(&r, 0), slot(&r, 1), slot(&r, 2), slot(&r, 3)],
            [4, 5, 6, 3]
        );
        assert_eq!(r.producer().load(Ordering::Relaxed), 7);
    }

    #[test]
    fn dropped_producer_publishes_nothing() {
        let mut r = ring(4);
        {
            let mut p = r.produce(2);
            assert!(p.insert(1) && p.insert(2));
        }
        assert_eq!(r.producer().load(Ordering::Relaxed), 0);
        assert_eq!(r.pending(), 0);
        // The slots are still free and reused.
        let mut p = r.produce(4);
        assert_eq!(p.capacity(), 4);
        assert!(p.insert(7));
        assert_eq!(p.commit(), 1);
        assert_eq!(slot(&r, 0), 7);
        // Nothing inserted: no index store.
        assert_eq!(r.produce(2).commit(), 0);
        assert_eq!(r.producer().load(Ordering::Relaxed), 1);
    }

    #[test]
    fn consume_release_returns_what_was_read() {
        let mut r = ring(4);
        assert_eq!(r.consume(8).len(), 0);
        kernel_produce(&r, &[1, 2, 3]);
        assert!(r.has_entries());
        let mut c = r.consume(2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.next(), Some(1));
        assert_eq!(c.release(), 1);
        assert_eq!(r.consumer().load(Ordering::Relaxed), 1);
        let c = r.consume(8);
        assert_eq!(c.collect::<Vec<_>>(), [2, 3]);
        // Dropped without release: the same entries come again.
        let mut c = r.consume(8);
        assert_eq!(c.by_ref().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(c.release(), 2);
        assert_eq!(r.consumer().load(Ordering::Relaxed), 3);
        assert!(!r.has_entries());
        // Wrap around.
        kernel_produce(&r, &[4, 5, 6, 7]);
        let mut c = r.consume(8);
        assert_eq!(c.by_ref().collect::<Vec<_>>(), [4, 5, 6, 7]);
        assert_eq!(c.release(), 4);
    }

    #[test]
    fn nonsense_kernel_indices_stay_within_the_ring() {
        let mut r = ring(4);
        // A producer index far ahead: at most one ring's worth.
        r.producer().store(1000, Ordering::Release);
        assert_eq!(r.consume(u32::MAX).len(), 4);
        // A consumer index ahead of ours: no room at all.
        let mut r = ring(4);
        r.consumer().store(5, Ordering::Release);
        assert_eq!(r.produce(4).capacity(), 4, "cache still says empty");
        let mut p = r.produce(4);
        for v in 0..4 {
            assert!(p.insert(v));
        }
        assert_eq!(p.commit(), 4);
        assert_eq!(r.produce(1).capacity(), 0);
    }
}
