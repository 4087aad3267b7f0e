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
//! Work is done in batches: `reserve`/`write`/`submit` for producers,
//! `peek`/`read`/`release` for consumers — one index store per batch.

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
    /// Our own index (mirrors what we last published, plus anything
    /// reserved/peeked but not yet published).
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
    /// Maps the ring of `size` entries at page offset `pgoff` of socket `fd`,
    /// laid out as `off` says.
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
        let base = p.cast::<u8>();
        let at = |o: u64| {
            // SAFETY: the kernel's offsets lie inside the mapping it just gave.
            NonNull::new(unsafe { base.add(o as usize) }).expect("mmap returned null")
        };
        Ok(Ring {
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
        })
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

    /// Free entries, reloading the kernel's consumer index when fewer than
    /// `want` look free.
    pub(super) fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.local.wrapping_sub(self.cached);
        if free >= want {
            return free;
        }
        // Acquire: pairs with the kernel's release of its consumer index, so
        // the entries it has consumed are no longer read by it.
        self.cached = self.consumer().load(Ordering::Acquire);
        self.size - self.local.wrapping_sub(self.cached)
    }

    /// Writes entry `i` of the batch that starts at the producer index.
    /// The caller has checked `i < free(..)`.
    pub(super) fn write(&mut self, i: u32, v: T) {
        let idx = self.local.wrapping_add(i) & self.mask;
        // SAFETY: idx <= mask < size, inside the entry array; the slot is
        // free (checked by the caller through `free`), so the kernel is not
        // reading it.
        unsafe { self.entries.as_ptr().add(idx as usize).write(v) }
    }

    /// Publishes `n` written entries.
    pub(super) fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: the entries written above become visible to the kernel
        // before the index that covers them.
        self.producer().store(self.local, Ordering::Release);
    }

    /// Entries produced but not yet consumed by the kernel.
    pub(super) fn pending(&self) -> u32 {
        self.local
            .wrapping_sub(self.consumer().load(Ordering::Relaxed))
    }

    // ---- consumer side (RX, completion) ------------------------------------

    /// Entries available, at most `max`.
    pub(super) fn peek(&mut self, max: u32) -> u32 {
        let mut avail = self.cached.wrapping_sub(self.local);
        if avail == 0 {
            // Acquire: pairs with the kernel's release of its producer index;
            // the entries it covers are fully written.
            self.cached = self.producer().load(Ordering::Acquire);
            avail = self.cached.wrapping_sub(self.local);
        }
        avail.min(max)
    }

    /// Entry `i` of the batch starting at the consumer index (`i < peek`).
    pub(super) fn read(&self, i: u32) -> T {
        let idx = self.local.wrapping_add(i) & self.mask;
        // SAFETY: idx < size; the kernel published the entry (peek) and will
        // not overwrite it until we release it.
        unsafe { self.entries.as_ptr().add(idx as usize).read() }
    }

    /// Returns `n` read entries to the kernel.
    pub(super) fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: our reads of the entries happen before the kernel may
        // reuse their slots.
        self.consumer().store(self.local, Ordering::Release);
    }

    /// Whether the kernel has published entries we have not read.
    pub(super) fn has_entries(&self) -> bool {
        self.producer().load(Ordering::Relaxed) != self.local
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
