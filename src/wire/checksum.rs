//! The Internet checksum: full (RFC 1071) and incremental (RFC 1624).
//!
//! A *partial sum* (`u32`) is a one's-complement sum of big-endian 16-bit
//! words that has not been folded to 16 bits or complemented. Partial sums
//! add with [`combine`]; [`fold`] reduces one to 16 bits; the checksum field
//! holds the complement of the folded sum.
//!
//! The data path rewrites addresses and ports in place, so it never
//! recomputes a checksum from scratch: it patches the old one with
//! [`update16`], [`update32`] or [`update_bytes`], the way Linux
//! `csum_replace2/4` and `ip_vs_check_diff4/16` do. [`checksum`] is the
//! slow, obviously-right oracle the property tests compare against.
//!
//! # Zero has two spellings
//!
//! In one's complement 0x0000 and 0xffff are both zero. A full computation
//! ([`checksum`]) yields 0xffff only when every covered byte is zero, and
//! 0x0000 when the covered sum is 0xffff. The incremental form
//! `HC' = ~(~HC + ~m + m')` (RFC 1624 eqn. 3), starting from a correct
//! checksum, never yields 0xffff, and it equals a full recomputation except
//! in one case: when the edit leaves the covered data all zeros it gives
//! 0x0000 where only 0xffff verifies. That cannot happen to a real header:
//! the IPv4 header has its version nibble and the TCP/UDP/ICMPv6 checksums
//! cover a pseudo-header with a non-zero protocol number, so the data path
//! does not pay to check for it.
//!
//! UDP is the exception that cares: a UDP checksum field of 0 means "no
//! checksum", so a computed 0 must be sent as 0xffff. The functions here do
//! not know which protocol they serve; the UDP caller maps 0 to 0xffff
//! after an update (as [`crate::wire::udp::UdpPacket::fill_checksum_v4`]
//! does after a full computation).

use core::net::{Ipv4Addr, Ipv6Addr};

/// Bytes summed between reductions of the 64-bit accumulator. Each 8-byte
/// word adds less than 2^33, so 2^20 bytes (2^17 words) stay far below
/// 2^64; reducing per block makes [`sum`] exact for any slice length.
const BLOCK: usize = 1 << 20;

/// One's-complement sum of `data` as big-endian 16-bit words, an odd
/// trailing byte padded with a zero low byte. The result is a partial sum:
/// it may or may not be folded, and is never complemented.
///
/// Works on 8 bytes at a time in native byte order: the one's-complement sum
/// is byte-order independent (RFC 1071 §2(B)), so the native-order sum is
/// byte-swapped once at the end instead of swapping every word.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    for block in data.chunks(BLOCK) {
        acc = reduce64(acc + sum_native(block));
    }
    // Fold to 16 bits before the swap: only a 16-bit sum may be swapped.
    u32::from(u16::from_be(fold(reduce64(acc) as u32)))
}

/// Native-order sum of one block; `block.len() <= BLOCK`.
#[inline]
fn sum_native(block: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = block.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // Two 32-bit halves: 2^32 ≡ 1 (mod 2^16 - 1), so summing 32-bit
        // words is summing their 16-bit halves.
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        acc += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&last) = rest.first() {
        // The odd byte is the high byte of a big-endian word padded with 0,
        // i.e. the bytes [last, 0] in memory.
        acc += u64::from(u16::from_ne_bytes([last, 0]));
    }
    acc
}

/// Reduces a 64-bit sum to 32 bits with end-around carry. A non-zero input
/// never reduces to zero, which keeps 0 vs 0xffff exact.
#[inline]
fn reduce64(acc: u64) -> u64 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    (acc & 0xffff_ffff) + (acc >> 32)
}

/// Folds the carries of a partial sum into 16 bits (no complement).
#[inline]
pub fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds two partial sums with end-around carry (never overflows).
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    // 2^32 ≡ 1 (mod 2^16 - 1): a carry out of bit 31 comes back in at bit 0.
    // s <= 2^32 - 2 when there was a carry, so this cannot overflow.
    s + u32::from(carry)
}

/// The RFC 1071 Internet checksum of `data`: the complement of its folded
/// one's-complement sum. Run over data that includes a correct checksum
/// field, it returns 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 / RFC 768) for an upper
/// layer of `length` bytes carried as `protocol`.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(length)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper layer
/// of `length` bytes carried as `protocol`.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: u8, length: u32) -> u32 {
    let addrs = combine(sum(&src.octets()), sum(&dst.octets()));
    let rest = (length >> 16) + (length & 0xffff) + u32::from(protocol);
    combine(addrs, rest)
}

/// Patches checksum field value `check` after a 16-bit word of the covered
/// data changed from `old` to `new` (RFC 1624 eqn. 3; Linux
/// `csum_replace2`). All values are host order. Returns the new field value.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let s = combine(u32::from(!check), u32::from(!old));
    !fold(combine(s, u32::from(new)))
}

/// As [`update16`] for a 32-bit field (two adjacent words starting at an
/// even offset, e.g. an IPv4 address or a TCP sequence number; Linux
/// `csum_replace4`).
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    // !old as one 32-bit partial sum is ~old_hi·2^16 + ~old_lo, which is
    // ≡ ~old_hi + ~old_lo: the complement of both words at once.
    let s = combine(u32::from(!check), !old);
    !fold(combine(s, new))
}

/// As [`update16`] for a run of bytes that changed from `old` to `new`, e.g.
/// an IPv6 address (Linux `ip_vs_check_diff16`). The run must start at an
/// even offset of the covered data and `old` and `new` must have the same
/// (even) length; the result is meaningless otherwise.
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let s = combine(u32::from(!check), u32::from(!fold(sum(old))));
    !fold(combine(s, sum(new)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straight RFC 1071: big-endian words, end-around carry after each add.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0));
            s += word;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0x2ddf0, which
        // folds to 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(checksum(&bytes), 0x220d);
        // The same sum in 4-byte and 2-byte tails and an odd tail.
        assert_eq!(fold(sum(&bytes[..6])), naive_sum(&bytes[..6]));
        assert_eq!(fold(sum(&bytes[..7])), naive_sum(&bytes[..7]));
        assert_eq!(fold(sum(&[0xab])), 0xab00);
    }

    #[test]
    fn real_ipv4_header() {
        // 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF: checksum 0xb861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0);
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(checksum(&hdr), 0xb861);
    }

    #[test]
    fn zero_spellings() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
        assert_eq!(checksum(&[0xff, 0xff]), 0x0000);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(combine(0xffff_ffff, 1), 1);
        assert_eq!(combine(0xffff_ffff, 0xffff_ffff), 0xffff_ffff);
    }

    #[test]
    fn large_inputs() {
        // 64 KiB of 0xff: every word is -0, the sum stays 0xffff.
        let ones = vec![0xffu8; 65536];
        assert_eq!(fold(sum(&ones)), 0xffff);
        // Past one accumulator block, against the naive sum.
        let data: Vec<u8> = (0..(BLOCK * 2 + 13))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        assert_eq!(fold(sum(&data)), naive_sum(&data));
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let s4 = Ipv4Addr::new(10, 1, 2, 3);
        let d4 = Ipv4Addr::new(192, 168, 200, 1);
        let mut ph = Vec::new();
        ph.extend_from_slice(&s4.octets());
        ph.extend_from_slice(&d4.octets());
        ph.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(fold(pseudo_header_v4(s4, d4, 6, 1500)), naive_sum(&ph));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::ffff:ffff:ffff:ffff".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6.octets());
        ph.extend_from_slice(&d6.octets());
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            fold(pseudo_header_v6(&s6, &d6, 17, 0x0001_0203)),
            naive_sum(&ph)
        );
    }

    /// A buffer with a correct checksum at `check_at` (even), covering the
    /// whole buffer, as in an IPv4 header or an ICMP message.
    fn with_checksum(mut data: Vec<u8>, check_at: usize) -> Vec<u8> {
        data[check_at..check_at + 2].fill(0);
        let c = checksum(&data);
        data[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
        data
    }

    fn read16(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    /// Checks an incrementally updated buffer against a full recomputation:
    /// exact, and the buffer verifies (sums to 0 with its checksum field).
    /// The one exception (module doc): covered data that became all zeros,
    /// where eqn. 3 says 0x0000 and only the full 0xffff verifies.
    fn assert_matches_full(updated: &[u8], check_at: usize) {
        let inc = read16(updated, check_at);
        let full = read16(&with_checksum(updated.to_vec(), check_at), check_at);
        let mut rest = updated.to_vec();
        rest[check_at..check_at + 2].fill(0);
        if rest.iter().all(|&b| b == 0) {
            assert_eq!((inc, full), (0x0000, 0xffff));
        } else {
            assert_eq!(inc, full);
            assert_eq!(checksum(updated), 0, "does not verify");
            assert_ne!(inc, 0xffff, "eqn. 3 never yields -0 from a correct start");
        }
    }

    /// Random even-length data, a checksum slot and an edit slot, both at
    /// even offsets and not overlapping.
    fn setup(width: usize) -> impl Strategy<Value = (Vec<u8>, usize, usize)> {
        (2usize..64)
            .prop_flat_map(move |words| {
                // Enough words that an edit slot fits beside any checksum slot.
                let len = words.max(width + 1) * 2;
                (proptest::collection::vec(any::<u8>(), len), 0..len / 2)
            })
            .prop_flat_map(move |(data, check_word)| {
                let words = data.len() / 2;
                let slots: Vec<usize> = (0..=words - width / 2)
                    .filter(|&w| w + width / 2 <= check_word || w > check_word)
                    .collect();
                (
                    Just(data),
                    Just(check_word * 2),
                    proptest::sample::select(slots),
                )
            })
            .prop_map(|(data, check_at, edit_word)| (data, check_at, edit_word * 2))
    }

    /// Sometimes all zeros / all ones, to hit the edge cases on purpose.
    fn edge_u16() -> impl Strategy<Value = u16> {
        prop_oneof![Just(0u16), Just(0xffff), any::<u16>()]
    }

    fn edge_u32() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), Just(0xffff_ffff), Just(0xffff), any::<u32>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fold(sum(&data)), naive_sum(&data));
        }

        #[test]
        fn combine_is_split_sum(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..100) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(sum(&data));
            prop_assert_eq!(fold(combine(sum(&data[..cut]), sum(&data[cut..]))), whole);
        }

        #[test]
        fn update16_equals_full((data, check_at, edit_at) in setup(2), zero in any::<bool>(), new in edge_u16()) {
            let mut data = data;
            if zero { data.fill(0); }
            let mut data = with_checksum(data, check_at);
            let old = read16(&data, edit_at);
            let check = read16(&data, check_at);
            data[edit_at..edit_at + 2].copy_from_slice(&new.to_be_bytes());
            let c = update16(check, old, new);
            data[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
            assert_matches_full(&data, check_at);
        }

        #[test]
        fn update32_equals_full((data, check_at, edit_at) in setup(4), zero in any::<bool>(), new in edge_u32()) {
            let mut data = data;
            if zero { data.fill(0); }
            let mut data = with_checksum(data, check_at);
            let old = u32::from_be_bytes(data[edit_at..edit_at + 4].try_into().unwrap());
            let check = read16(&data, check_at);
            data[edit_at..edit_at + 4].copy_from_slice(&new.to_be_bytes());
            let c = update32(check, old, new);
            data[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
            assert_matches_full(&data, check_at);
        }

        #[test]
        fn update_bytes_equals_full((data, check_at, edit_at) in setup(16), zero in any::<bool>(), new in proptest::array::uniform16(any::<u8>())) {
            let mut data = data;
            if zero { data.fill(0); }
            let mut data = with_checksum(data, check_at);
            let old: [u8; 16] = data[edit_at..edit_at + 16].try_into().unwrap();
            let check = read16(&data, check_at);
            data[edit_at..edit_at + 16].copy_from_slice(&new);
            let c = update_bytes(check, &old, &new);
            data[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
            assert_matches_full(&data, check_at);
        }

        /// The way the NAT path uses it: a pseudo-header field (not in the
        /// buffer) changes, e.g. the destination address under a TCP
        /// checksum.
        #[test]
        fn update32_pseudo_header(payload in proptest::collection::vec(any::<u8>(), 20..120), a in any::<u32>(), b in any::<u32>(), c in any::<u32>()) {
            let (src, old, new) = (Ipv4Addr::from_bits(a), Ipv4Addr::from_bits(b), Ipv4Addr::from_bits(c));
            let len = payload.len() as u16;
            let full = |dst| {
                let mut seg = payload.clone();
                seg[16] = 0;
                seg[17] = 0;
                !fold(combine(pseudo_header_v4(src, dst, 6, len), sum(&seg)))
            };
            let inc = update32(full(old), old.to_bits(), new.to_bits());
            // Pseudo-header protocol 6 is never zero, so the covered data is
            // never all zero and the match is exact.
            prop_assert_eq!(inc, full(new));
        }
    }
}
