//! Address families the connection table is generic over. IPv4 entries stay
//! small (4-byte addresses); IPv6 needs no change to the table, only its own
//! `Addr` impl.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IP address as the connection table stores and hashes it.
pub trait Addr: Copy + Eq + Debug + Send + 'static {
    const UNSPECIFIED: Self;

    /// 64 bits of the address for the hash. Keyed mixing happens in the
    /// table; this only has to keep every bit.
    fn mix(self, key: u64) -> u64;
}

impl Addr for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;

    #[inline]
    fn mix(self, _key: u64) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Addr for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;

    #[inline]
    fn mix(self, key: u64) -> u64 {
        let bits = self.to_bits();
        // Keyed before folding, so that an attacker cannot pick addresses
        // whose halves cancel.
        folded_multiply((bits >> 64) as u64 ^ key, bits as u64)
    }
}

/// 64×64 → 128-bit multiply, folded: the mixing step of foldhash and
/// wyhash (and of the flow hash, [`super::hash`]).
#[inline]
pub fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}
