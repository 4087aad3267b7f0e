//! The hash inputs and the multiplicative hash that IPVS's hashing
//! schedulers (dh, sh, mh, and lblc/lblcr) share.

use std::net::IpAddr;

/// `GOLDEN_RATIO_32` of Linux `include/linux/hash.h`: 2^32 / φ, negated.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// Linux `hash_32(val, bits)`: multiply by the golden ratio and keep the
/// top `bits` bits (the well-mixed ones). `bits` is 1..=32.
#[inline]
pub(crate) const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// An address as IPVS feeds it to a hash (`addr_fold` in `ip_vs_*_hashkey`,
/// after `ntohl`): IPv4 in host order; IPv6 as the XOR of its four 32-bit
/// words (byte order commutes with XOR, so folding first and converting
/// after, as IPVS does, gives the same value).
#[inline]
pub(crate) fn addr_fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x ^ (x >> 32) ^ (x >> 64) ^ (x >> 96)) as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn hash_32_is_the_kernel_multiply_shift() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        // 0xC612000A * 0x61C88647 mod 2^32 = 0x2CD33EC6
        assert_eq!(hash_32(0xC612_000A, 32), 0x2CD3_3EC6);
        assert_eq!(hash_32(0xC612_000A, 8), 0x2C);
    }

    #[test]
    fn fold() {
        let v4 = Ipv4Addr::new(198, 18, 0, 10);
        assert_eq!(addr_fold(IpAddr::V4(v4)), 0xC612_000A);
        // 0x20010db8 ^ 0x00010002 ^ 0x00030004 ^ 0x00050006
        let v6: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(addr_fold(IpAddr::V6(v6)), 0x2006_0db8);
    }
}
