//! Datagrams in flight whose later fragments follow a translation learnt
//! from the first (the pipeline's `frag.rs` says what is learnt): a
//! direct-mapped, preallocated table per worker, keyed as RFC 791 groups
//! fragments (source, destination, protocol, identification). A fragment
//! costs one hash and one slot; nothing is allocated after creation. A
//! newer datagram takes an older one's slot; an entry ends with the last
//! fragment or at its expiry.

use std::net::Ipv4Addr;

use crate::frame::Tick;

/// Which datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragKey {
    pub saddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub id: u16,
    pub proto: u8,
}

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    key: FragKey,
    value: V,
    expires: Tick,
}

/// `slots` datagrams, each with a value `V` (the translation).
pub struct FragTable<V> {
    slots: Box<[Option<Slot<V>>]>,
}

impl<V: Copy> FragTable<V> {
    pub fn new(slots: usize) -> FragTable<V> {
        FragTable {
            slots: vec![None; slots.max(1)].into_boxed_slice(),
        }
    }

    fn slot(&self, key: &FragKey) -> usize {
        let x = (u64::from(key.saddr.to_bits()) << 32) | u64::from(key.daddr.to_bits());
        let h = (x ^ (u64::from(key.id) << 8) ^ u64::from(key.proto))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The high half, scaled to the table (Lemire's reduction).
        (((h >> 32) * self.slots.len() as u64) >> 32) as usize
    }

    /// Remembers `value` for `key` until `expires` (in its slot, replacing
    /// whatever was there).
    pub fn insert(&mut self, key: FragKey, value: V, expires: Tick) {
        let i = self.slot(&key);
        self.slots[i] = Some(Slot {
            key,
            value,
            expires,
        });
    }

    /// The live value for `key` at `now`; `last` (the fragment without
    /// "more fragments") frees the entry.
    pub fn take(&mut self, key: &FragKey, now: Tick, last: bool) -> Option<V> {
        let i = self.slot(key);
        let slot = &mut self.slots[i];
        match *slot {
            Some(s) if s.key == *key && s.expires > now => {
                if last {
                    *slot = None;
                }
                Some(s.value)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey {
            saddr: Ipv4Addr::new(198, 18, 2, 31),
            daddr: Ipv4Addr::new(198, 18, 0, 10),
            id,
            proto: 17,
        }
    }

    #[test]
    fn entries_end_with_the_last_fragment_or_their_expiry() {
        let mut t = FragTable::new(64);
        t.insert(key(1), 'a', 5);
        assert_eq!(t.take(&key(1), 4, false), Some('a'));
        assert_eq!(t.take(&key(2), 4, false), None);
        assert_eq!(t.take(&key(1), 4, true), Some('a'));
        assert_eq!(t.take(&key(1), 4, false), None);
        t.insert(key(3), 'b', 5);
        assert_eq!(t.take(&key(3), 5, false), None, "expired");
    }

    #[test]
    fn a_newer_datagram_takes_the_slot() {
        let mut t = FragTable::new(1);
        t.insert(key(1), 'a', 9);
        t.insert(key(2), 'b', 9);
        assert_eq!(t.take(&key(1), 0, false), None);
        assert_eq!(t.take(&key(2), 0, false), Some('b'));
    }
}
