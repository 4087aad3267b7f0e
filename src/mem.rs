//! Memory helpers for large, randomly accessed tables.
//!
//! A connection table of a million entries spans about 80 MiB. With 4 KiB
//! pages every lookup also misses the TLB, and under virtualisation a page
//! walk costs several memory accesses of its own; backing the tables with
//! 2 MiB transparent huge pages removes most of that. The kernel only
//! gives huge pages to ranges that ask for them (`MADV_HUGEPAGE`) when THP
//! is in `madvise` mode (Debian's default), and only on first touch, so
//! callers advise a fresh, untouched allocation before filling it.
//!
//! Besides [`crate::xsk`], the only module allowed `unsafe`: one
//! `madvise(2)` call, which only ever gives the kernel advice.

// SAFETY: the one `unsafe` block below passes the kernel a range inside a
// live allocation and an advice that cannot change memory contents; it is
// kept here, not in `xsk/`, because the connection tables use it.
#![allow(unsafe_code)]

const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned part of the memory of `v`'s
/// whole capacity with transparent huge pages. Advice only: contents and
/// validity are unchanged, and failure (THP disabled) is ignored.
pub fn advise_hugepages<T>(v: &mut Vec<T>) {
    let start = v.as_mut_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end - end % HUGE_PAGE;
    if last <= first {
        return;
    }
    // SAFETY: [first, last) lies within `v`'s allocation, which stays
    // mapped for this call; MADV_HUGEPAGE changes neither the mapping's
    // contents nor its permissions, only how the kernel backs it.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}
