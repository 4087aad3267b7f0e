//! Application helpers: protocols that carry addresses in their payload,
//! which NAT has to see and sometimes rewrite (IPVS `ip_vs_app.c`).
//!
//! Only FTP needs one ([`ftp`]). A helper binds to the NAT connections of
//! a virtual port (as IPVS binds an application to a port), watches the
//! control connection's payload, rewrites what NAT makes wrong and creates
//! the connections the payload announces.
//!
//! When a rewrite changes the payload's length, every later sequence
//! number of that direction and every acknowledgement of the other one is
//! off by the difference; [`SeqAdjust`] keeps the running difference the
//! way IPVS's `ip_vs_seq` does, so one entry per connection suffices and no
//! packet is ever held back.

pub mod ftp;

pub use crate::conn::seq::{SeqAdjust, after};
use crate::wire::checksum::update32;

/// Offsets in the TCP header.
const SEQ: usize = 4;
const ACK: usize = 8;
const CHECK: usize = 16;
/// TCP option kinds.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;

#[inline]
fn rd32(h: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// Replaces the 32-bit word at `at` of a TCP segment (an even offset),
/// patching its checksum.
#[inline]
fn set32(tcp: &mut [u8], at: usize, v: u32) {
    let old = rd32(tcp, at);
    if old == v {
        return;
    }
    tcp[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let c = update32(u16::from_be_bytes([tcp[CHECK], tcp[CHECK + 1]]), old, v);
    tcp[CHECK..CHECK + 2].copy_from_slice(&c.to_be_bytes());
}

/// Shifts the sequence number of a segment from the resized side
/// (`tcp` is the segment from its header on, `doff` its header length).
pub fn fix_seq(tcp: &mut [u8], adj: &SeqAdjust) {
    if adj.active() {
        let v = adj.seq(rd32(tcp, SEQ));
        set32(tcp, SEQ, v);
    }
}

/// Shifts the acknowledgement, and the edges of SACK blocks, of a segment
/// from the other side back into the resized side's numbering. (IPVS
/// leaves SACK blocks alone; a receiver that trusts a shifted SACK edge
/// could skip retransmitting bytes the client never got.)
pub fn fix_ack(tcp: &mut [u8], doff: usize, adj: &SeqAdjust) {
    if !adj.active() {
        return;
    }
    if tcp[13] & crate::wire::tcp::ACK != 0 {
        let v = adj.ack(rd32(tcp, ACK));
        set32(tcp, ACK, v);
    }
    let mut at = 20;
    while at < doff {
        match tcp[at] {
            OPT_END => break,
            OPT_NOP => at += 1,
            kind => {
                let Some(&len) = tcp.get(at + 1) else { break };
                let len = usize::from(len);
                if len < 2 || at + len > doff {
                    break;
                }
                if kind == OPT_SACK && (len - 2) % 8 == 0 {
                    // Edges may sit at odd offsets: patch the checksum
                    // with the words as they are aligned in the segment.
                    for e in (at + 2..at + len).step_by(4) {
                        let v = adj.ack(rd32(tcp, e));
                        set_any32(tcp, e, v);
                    }
                }
                at += len;
            }
        }
    }
}

/// As [`set32`] for a word at any offset: the checksum is patched over the
/// aligned 16-bit words the change touches (a missing last byte counts as
/// the zero padding of the checksum's odd tail).
fn set_any32(tcp: &mut [u8], at: usize, v: u32) {
    if at.is_multiple_of(2) {
        return set32(tcp, at, v);
    }
    let from = at - 1;
    let to = (at + 5).min(tcp.len());
    let mut old = [0u8; 6];
    old[..to - from].copy_from_slice(&tcp[from..to]);
    tcp[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let mut new = [0u8; 6];
    new[..to - from].copy_from_slice(&tcp[from..to]);
    let check = u16::from_be_bytes([tcp[CHECK], tcp[CHECK + 1]]);
    let c = crate::wire::checksum::update_bytes(check, &old, &new);
    tcp[CHECK..CHECK + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(after(1, 0));
        assert!(!after(0, 0));
        assert!(after(0, u32::MAX));
        assert!(!after(u32::MAX, 0));
    }

    #[test]
    fn shift_after_and_before_the_resized_segment() {
        let mut s = SeqAdjust::default();
        assert!(!s.active());
        assert_eq!(s.seq(1000), 1000);
        // The segment at 1000 lost one byte.
        s.resized(1000, -1);
        assert_eq!(s.seq(1000), 1000, "the resized segment keeps its start");
        assert_eq!(s.seq(1050), 1049);
        assert_eq!(s.ack(1049), 1050, "the receiver's ack in sender numbers");
        assert_eq!(s.ack(900), 900);
        assert_eq!(s.ack(1000), 1000, "everything before the resized segment");
        // Retransmitted: no second shift.
        s.resized(1000, -1);
        assert_eq!(s.delta, -1);
        // A later one: the earlier shift becomes the previous delta.
        s.resized(2000, -1);
        assert_eq!((s.prev_delta, s.delta), (-1, -2));
        assert_eq!(s.seq(2000), 1999);
        assert_eq!(s.seq(2100), 2098);
        // Around the wrap.
        let mut w = SeqAdjust::default();
        w.resized(u32::MAX - 10, 2);
        assert_eq!(w.seq(5), 7);
        assert_eq!(w.ack(7), 5);
    }

    /// A segment with options NOP NOP SACK(2 blocks) at an odd offset
    /// (after one more NOP), checksummed over a pseudo-header.
    fn segment(seq: u32, ack: u32, sack: [u32; 4]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[13] = crate::wire::tcp::ACK;
        t.extend_from_slice(&[1, 1, 1, 5, 18]);
        for e in sack {
            t.extend_from_slice(&e.to_be_bytes());
        }
        t.push(0); // end of options, then padding to 44 bytes
        while !t.len().is_multiple_of(4) {
            t.push(0);
        }
        t[12] = ((t.len() / 4) as u8) << 4;
        t.extend_from_slice(b"PASV\r\n");
        fill(&mut t);
        t
    }

    fn fill(t: &mut [u8]) {
        use crate::wire::checksum;
        let pseudo = checksum::pseudo_header_v4(
            [198, 18, 0, 10].into(),
            [198, 18, 2, 11].into(),
            6,
            t.len() as u16,
        );
        t[16..18].fill(0);
        let c = !checksum::fold(checksum::combine(pseudo, checksum::sum(t)));
        t[16..18].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn ack_and_sack_edges_are_shifted_checksum_follows() {
        let mut adj = SeqAdjust::default();
        adj.resized(5000, -1);
        let mut t = segment(1, 5100, [5100, 5200, 4000, 4100]);
        fix_ack(&mut t, 44, &adj);
        let mut want = segment(1, 5101, [5101, 5201, 4000, 4100]);
        fill(&mut want);
        assert_eq!(t, want, "values and incrementally patched checksum");
        // The seq side.
        let mut s = segment(5100, 1, [0; 4]);
        fix_seq(&mut s, &adj);
        assert_eq!(s, segment(5099, 1, [0; 4]));
        // Nothing active: untouched.
        let mut u = segment(5100, 5100, [1, 2, 3, 4]);
        fix_ack(&mut u, 44, &SeqAdjust::default());
        assert_eq!(u, segment(5100, 5100, [1, 2, 3, 4]));
    }

    #[test]
    fn hostile_options_do_not_panic() {
        let adj = SeqAdjust {
            init_seq: 1,
            delta: 3,
            prev_delta: 0,
        };
        for len in [0u8, 1, 2, 3, 9, 200] {
            let mut t = segment(1, 1, [0; 4]);
            t[24] = len;
            fix_ack(&mut t, 44, &adj);
            let n = t.len();
            fix_ack(&mut t, n, &adj);
        }
    }
}
