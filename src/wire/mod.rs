//! Parse: borrowed, zero-copy views over packet bytes, and Internet checksums
//! (full, incremental, and finishing the partial ones of offloading senders:
//! [`partial`]).
//!
//! Every header type is a view `X<T: AsRef<[u8]>> { buffer: T }` over bytes
//! that stay where the NIC put them (an AF_XDP UMEM frame). Nothing here
//! copies a packet or allocates.
//!
//! # Invariants
//!
//! - **`new_checked` is the gate.** Anything that came off the wire goes
//!   through `new_checked`, which proves every fixed offset the getters read
//!   is in bounds (and, where a header carries its own length, that the
//!   length is sane). After that no getter or setter can panic, whatever the
//!   bytes say. `new_unchecked` skips the proof; it is for buffers this
//!   process built itself, and getters on a too-short unchecked buffer panic.
//! - **Offsets, not structs.** Fields are read by byte offset from a private
//!   `mod field` in each file. Frames are not aligned, so nothing is ever
//!   cast to a `#[repr(C)]` struct.
//! - **Host values in the API, network order on the wire.** Getters return
//!   host integers and `std::net` addresses; setters take them. The byte
//!   swapping happens only here.
//! - **Setters only where the buffer is mutable** (`T: AsMut<[u8]>`). They
//!   write the field and nothing else: no setter fixes up a checksum. The
//!   rewriting stage patches checksums incrementally with
//!   [`checksum::update16`] and friends; the `fill_checksum*` methods do a
//!   full recomputation and exist for building packets and for tests.
//! - **Layering is the caller's job.** Each view covers one header and what
//!   follows it; the caller hands `payload()` of one layer to the next view's
//!   `new_checked`. An L4 view's buffer is exactly the IP payload, because
//!   the transport checksums cover exactly that many bytes.
//!
//! Errors are one small `Copy` enum, [`WireError`], so that the data path
//! can map each variant to a drop counter.

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod layout;
pub mod partial;
pub mod tcp;
pub mod udp;

pub use layout::{Layout, Layout6};

use core::fmt;

/// Why a buffer was refused by a `new_checked` (or a header walk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the fixed header (or an extension header).
    Truncated,
    /// The IP version nibble does not match the view.
    BadVersion,
    /// IPv4 IHL is below 5 or points past the buffer.
    BadHeaderLen,
    /// The IP total/payload length disagrees with the header or the buffer.
    BadTotalLen,
    /// TCP data offset is below 5 or points past the segment.
    BadDataOffset,
    /// UDP length field is below 8 or larger than the datagram buffer.
    BadLength,
    /// Well-formed but outside what we handle (stacked VLAN tags, too many
    /// IPv6 extension headers).
    Unsupported,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::BadVersion => "bad IP version",
            WireError::BadHeaderLen => "bad IPv4 header length",
            WireError::BadTotalLen => "bad IP total length",
            WireError::BadDataOffset => "bad TCP data offset",
            WireError::BadLength => "bad UDP length",
            WireError::Unsupported => "unsupported packet layout",
        })
    }
}

impl std::error::Error for WireError {}

/// Reads a big-endian `u16` from a two-byte field slice.
#[inline]
fn read_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a big-endian `u32` from a four-byte field slice.
#[inline]
fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes `v` big-endian into a two-byte field slice.
#[inline]
fn write_u16(b: &mut [u8], v: u16) {
    b.copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` big-endian into a four-byte field slice.
#[inline]
fn write_u32(b: &mut [u8], v: u32) {
    b.copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests;
