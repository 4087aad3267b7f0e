//! The keyed flow hash. Keys are drawn at random per table, so a remote
//! sender cannot aim many flows at one probe sequence (hash flooding).

use std::hash::{BuildHasher, RandomState};

use super::addr::{Addr, folded_multiply};
use super::key::FlowKey;

#[derive(Debug, Clone, Copy)]
pub struct FlowHasher {
    k: [u64; 3],
}

impl FlowHasher {
    /// A hasher with fresh random keys.
    pub fn random() -> Self {
        let s = RandomState::new();
        FlowHasher {
            k: [s.hash_one(1u8), s.hash_one(2u8), s.hash_one(3u8) | 1],
        }
    }

    #[inline]
    pub fn hash<A: Addr>(&self, key: &FlowKey<A>) -> u64 {
        let ports = u64::from(key.sport) << 32 | u64::from(key.dport) << 16 | u64::from(key.proto);
        let a = key.saddr.mix(self.k[0]).rotate_left(32) ^ key.daddr.mix(self.k[1]);
        let h = folded_multiply(a ^ self.k[0], ports ^ self.k[1]);
        folded_multiply(h, self.k[2])
    }
}
