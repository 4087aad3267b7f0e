//! The UMEM: the memory area that holds every frame of one socket, cut into
//! equal chunks, and the checks that an address the kernel hands back lies
//! inside it before any slice is formed from it.
//!
//! We register the UMEM in aligned-chunk mode (no
//! `XDP_UMEM_UNALIGNED_CHUNK_FLAG`): chunks are `chunk_size` bytes (a power
//! of two) at multiples of `chunk_size`, so the chunk of any address is the
//! address rounded down, and a packet may start anywhere in its chunk but
//! must end inside it. (In unaligned mode the kernel would put an offset in
//! the address's upper 16 bits; such an address reads as outside the UMEM
//! here, so it is refused, never misread.)

use std::io;
use std::ptr::NonNull;

/// The UMEM area: anonymous memory, registered with the socket.
pub(super) struct Umem {
    pub(super) base: NonNull<u8>,
    pub(super) len: usize,
}

impl Umem {
    pub(super) fn new(len: usize) -> io::Result<Umem> {
        // SAFETY: a fresh private anonymous mapping; no existing memory
        // is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Umem {
            base: NonNull::new(p.cast()).expect("mmap returned null"),
            len,
        })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the socket (closed before, see field
        // order in `Xsk`) keeps its own page references while it lives.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// A chunk handed to the caller: its offset in the UMEM, where the packet
/// starts in it, and how long the packet is.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Handled {
    pub(super) chunk: u64,
    pub(super) head: u32,
    pub(super) len: u32,
}

/// Why a descriptor from the kernel was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadDesc {
    /// The address lies outside the UMEM: which chunk the kernel meant is
    /// unknown.
    OutsideUmem,
    /// The address lies in chunk `chunk` (an offset into the UMEM), but the
    /// packet runs past the chunk's end.
    PastChunk { chunk: u64 },
}

/// The UMEM's geometry: `len` bytes of `chunk_size`-byte chunks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunks {
    len: u64,
    chunk_size: u32,
}

impl Chunks {
    /// `frames` chunks of `chunk_size` bytes, a power of two (`Xsk::open`
    /// checks it before the kernel sees it).
    pub(super) fn new(frames: u32, chunk_size: u32) -> Chunks {
        assert!(chunk_size.is_power_of_two());
        Chunks {
            len: frames as u64 * chunk_size as u64,
            chunk_size,
        }
    }

    /// The chunk of `addr` (a completion: an address we put on the TX
    /// ring), or `OutsideUmem`.
    #[inline]
    pub(super) fn chunk_of(&self, addr: u64) -> Result<u64, BadDesc> {
        if addr >= self.len {
            return Err(BadDesc::OutsideUmem);
        }
        Ok(addr & !(self.chunk_size as u64 - 1))
    }

    /// The received frame `len` bytes at `addr` (an RX descriptor), checked
    /// to lie inside one chunk of the UMEM. Cheap compares only: it runs
    /// once per received frame.
    #[inline]
    pub(super) fn rx_frame(&self, addr: u64, len: u32) -> Result<Handled, BadDesc> {
        let chunk = self.chunk_of(addr)?;
        // < chunk_size, since the chunk is `addr` rounded down.
        let head = addr - chunk;
        // The UMEM is a whole number of chunks, so a packet that ends inside
        // its chunk ends inside the UMEM.
        if head + len as u64 > self.chunk_size as u64 {
            return Err(BadDesc::PastChunk { chunk });
        }
        Ok(Handled {
            chunk,
            head: head as u32,
            len,
        })
    }
}

/// Where a chunk is (see the ownership invariant in the module docs of
/// `xsk`): tracked per chunk so that a descriptor naming a chunk that is
/// not where the kernel could have it (a completion for a chunk never
/// sent, an RX descriptor for a chunk not on the fill ring, the same chunk
/// twice) is refused instead of putting one chunk in two places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Place {
    Free,
    /// On the fill ring, or held by the kernel for RX.
    Fill,
    /// Handed to the caller inside a batch.
    Handling,
    /// On the TX ring or in the kernel until its completion.
    Tx,
}

/// The [`Place`] of every chunk, by chunk index.
pub(super) struct Places {
    at: Vec<Place>,
    shift: u32,
}

impl Places {
    /// `frames` chunks of `chunk_size` bytes (a power of two), all free.
    pub(super) fn new(frames: u32, chunk_size: u32) -> Places {
        Places {
            at: vec![Place::Free; frames as usize],
            shift: chunk_size.trailing_zeros(),
        }
    }

    /// Moves chunk `chunk` (an offset that passed [`Chunks`] or came from
    /// the free stack) to `to`.
    #[inline]
    pub(super) fn set(&mut self, chunk: u64, to: Place) {
        self.at[(chunk >> self.shift) as usize] = to;
    }

    /// Whether `chunk` is at `p` (tests).
    #[cfg(test)]
    pub(super) fn is(&self, chunk: u64, p: Place) -> bool {
        self.at[(chunk >> self.shift) as usize] == p
    }

    /// Moves `chunk` from `from` to `to`; false (and nothing moved) when it
    /// is elsewhere.
    #[inline]
    pub(super) fn take(&mut self, chunk: u64, from: Place, to: Place) -> bool {
        let p = &mut self.at[(chunk >> self.shift) as usize];
        if *p != from {
            return false;
        }
        *p = to;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 chunks of 2048 bytes: the UMEM is 8192 bytes.
    const C: Chunks = Chunks {
        len: 8192,
        chunk_size: 2048,
    };

    #[test]
    fn frames_inside_a_chunk_pass() {
        assert_eq!(
            C.rx_frame(256, 60),
            Ok(Handled {
                chunk: 0,
                head: 256,
                len: 60
            })
        );
        assert_eq!(
            C.rx_frame(3 * 2048 + 256, 2048 - 256),
            Ok(Handled {
                chunk: 3 * 2048,
                head: 256,
                len: 2048 - 256
            })
        );
        // A whole chunk, and an empty frame at its last byte.
        assert!(C.rx_frame(2048, 2048).is_ok());
        assert!(C.rx_frame(4095, 0).is_ok());
        assert_eq!(C.chunk_of(2048 + 300), Ok(2048));
        assert_eq!(C.chunk_of(8191), Ok(6144));
    }

    #[test]
    fn past_the_end_of_the_umem_is_refused() {
        assert_eq!(C.rx_frame(8192, 0), Err(BadDesc::OutsideUmem));
        assert_eq!(C.rx_frame(8192 + 256, 60), Err(BadDesc::OutsideUmem));
        assert_eq!(C.rx_frame(u64::MAX, 60), Err(BadDesc::OutsideUmem));
        assert_eq!(C.chunk_of(8192), Err(BadDesc::OutsideUmem));
        assert_eq!(C.chunk_of(u64::MAX), Err(BadDesc::OutsideUmem));
        // An unaligned-mode address (offset in the upper 16 bits).
        assert_eq!(
            C.rx_frame((256 << 48) | 2048, 60),
            Err(BadDesc::OutsideUmem)
        );
    }

    #[test]
    fn straddling_two_chunks_is_refused() {
        assert_eq!(
            C.rx_frame(2048 - 10, 11),
            Err(BadDesc::PastChunk { chunk: 0 })
        );
        assert_eq!(
            C.rx_frame(2048 + 256, 2048 - 255),
            Err(BadDesc::PastChunk { chunk: 2048 })
        );
        // The last chunk, running past the end of the UMEM.
        assert_eq!(
            C.rx_frame(6144 + 2000, 100),
            Err(BadDesc::PastChunk { chunk: 6144 })
        );
    }

    #[test]
    fn too_long_is_refused() {
        assert_eq!(C.rx_frame(0, 2049), Err(BadDesc::PastChunk { chunk: 0 }));
        assert_eq!(
            C.rx_frame(256, u32::MAX),
            Err(BadDesc::PastChunk { chunk: 0 })
        );
        assert_eq!(
            C.rx_frame(4096 + 256, u32::MAX),
            Err(BadDesc::PastChunk { chunk: 4096 })
        );
    }

    #[test]
    fn geometry_from_frames() {
        let c = Chunks::new(1024, 4096);
        assert!(c.rx_frame(1023 * 4096 + 256, 3840).is_ok());
        assert_eq!(c.rx_frame(1024 * 4096, 0), Err(BadDesc::OutsideUmem));
    }
}
