//! The sequence-number shift an application helper leaves on a
//! connection whose payload it resized (IPVS `struct ip_vs_seq`), kept in
//! the connection entry. The helpers that apply it to segments are in
//! [`crate::app`].

/// The sequence-number shift of one direction of a connection whose
/// payload was resized (IPVS `struct ip_vs_seq`): bytes after the last
/// resized segment are shifted by `delta`, bytes up to it (retransmissions)
/// by `prev_delta`. Twelve bytes, so it fits the spare room of a
/// connection entry's cache line.
///
/// Invariant: `init_seq` is meaningful once `delta` or `prev_delta` is
/// non-zero. The helpers only ever resize one way per connection (the FTP
/// helper shortens or lengthens every 227 reply by the same amount), so
/// the deltas never come back to zero once they have left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdjust {
    /// Original (sender's) sequence number of the last resized segment.
    pub init_seq: u32,
    pub delta: i32,
    pub prev_delta: i32,
}

/// Whether sequence number `a` comes after `b` (RFC 1982 serial
/// arithmetic, as the kernel's `after()`).
#[inline]
pub fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

impl SeqAdjust {
    /// Whether any segment has been resized.
    #[inline]
    pub fn active(&self) -> bool {
        self.delta != 0 || self.prev_delta != 0
    }

    /// The sequence number the receiver expects for a segment the sender
    /// numbered `seq` (`vs_fix_seq`).
    #[inline]
    pub fn seq(&self, seq: u32) -> u32 {
        let d = if after(seq, self.init_seq) {
            self.delta
        } else {
            self.prev_delta
        };
        seq.wrapping_add(d as u32)
    }

    /// The acknowledgement (or SACK edge) the sender understands for one
    /// the receiver sent as `ack` (`vs_fix_ack_seq`): the receiver counts
    /// in the resized stream, where the last resized segment starts at
    /// `init_seq + prev_delta`. (IPVS compares with `init_seq + delta`,
    /// which shifts an acknowledgement of exactly the bytes before a
    /// shortened segment one too far.)
    #[inline]
    pub fn ack(&self, ack: u32) -> u32 {
        let d = if after(ack, self.init_seq.wrapping_add(self.prev_delta as u32)) {
            self.delta
        } else {
            self.prev_delta
        };
        ack.wrapping_sub(d as u32)
    }

    /// Records that the segment the sender numbered `seq` was resized by
    /// `diff` bytes (`vs_seq_update`). A retransmission of an already
    /// resized segment (not after `init_seq`) changes nothing.
    #[inline]
    pub fn resized(&mut self, seq: u32, diff: i32) {
        if !self.active() || after(seq, self.init_seq) {
            self.prev_delta = self.delta;
            // Sequence numbers are modulo 2^32: so are shifts of them.
            self.delta = self.delta.wrapping_add(diff);
            self.init_seq = seq;
        }
    }
}
