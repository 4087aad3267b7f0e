//! The flow index: a fixed-size open-addressing hash table with linear
//! probing and backward-shift deletion.
//!
//! Why not hashbrown: its deletions leave tombstones, and once they pile up
//! an insert rehashes the whole table in place — an O(capacity) stall on the
//! packet path — or reallocates. Backward-shift deletion leaves no
//! tombstones, so this table never rehashes and never allocates after
//! construction. It is sized to at most half full, where linear probing
//! stays within one or two cache lines.
//!
//! A slot holds a 32-bit hash tag (its low bits are the home slot) and a
//! 32-bit value (the connection index and the direction bit). Values are
//! unique, so removal finds its slot by value without comparing keys.
//! Slots are 8 bytes: a probe of up to 8 slots stays in one cache line.

/// A slot: the hash tag in the high half, value + 1 in the low half; 0 is
/// empty, so a fresh table is zeroed memory the kernel maps lazily (and
/// backs with huge pages).
type Slot = u64;

const VACANT: Slot = 0;

#[inline]
fn slot(tag: u32, val: u32) -> Slot {
    u64::from(tag) << 32 | u64::from(val + 1)
}

#[inline]
fn tag_of(s: Slot) -> u32 {
    (s >> 32) as u32
}

#[inline]
fn val_of(s: Slot) -> u32 {
    (s as u32).wrapping_sub(1)
}

pub struct Index {
    slots: Box<[Slot]>,
    mask: u32,
}

impl Index {
    /// An index that holds `max_items` values (each below `u32::MAX - 1`)
    /// at a load factor of at most one half.
    pub fn with_capacity(max_items: usize) -> Index {
        let n = (max_items.max(4) * 2).next_power_of_two();
        assert!(n <= 1 << 32, "index too large");
        let mut slots: Vec<Slot> = Vec::with_capacity(n);
        crate::mem::advise_hugepages(&mut slots);
        slots.resize(n, VACANT);
        Index {
            slots: slots.into_boxed_slice(),
            mask: (n - 1) as u32,
        }
    }

    /// Bytes of memory the index takes.
    pub fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    #[inline]
    fn tag(hash: u64) -> u32 {
        (hash >> 32) as u32
    }

    /// The home slot of `hash`, read (a plain load, to warm the cache).
    #[inline]
    pub fn home(&self, hash: u64) -> u64 {
        self.slots[(Self::tag(hash) & self.mask) as usize]
    }

    /// The value a home slot read by [`Index::home`] holds if its tag is
    /// `hash`'s: the likely hit, for warming the cache before the lookup.
    #[inline]
    pub fn hint(hash: u64, home: u64) -> Option<u32> {
        (home != VACANT && tag_of(home) == Self::tag(hash)).then(|| val_of(home))
    }

    /// The first value whose tag matches `hash` and for which `is_match`
    /// holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(hash);
        let mut i = tag & self.mask;
        loop {
            let s = self.slots[i as usize];
            if s == VACANT {
                return None;
            }
            if tag_of(s) == tag && is_match(val_of(s)) {
                return Some(val_of(s));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Adds `val` under `hash`. The caller keeps the item count within the
    /// capacity given at construction.
    #[inline]
    pub fn insert(&mut self, hash: u64, val: u32) {
        debug_assert!(val < u32::MAX - 1);
        let tag = Self::tag(hash);
        let mut i = tag & self.mask;
        while self.slots[i as usize] != VACANT {
            i = (i + 1) & self.mask;
        }
        self.slots[i as usize] = slot(tag, val);
    }

    /// Removes `val`, which was inserted under `hash`. Returns whether it
    /// was present.
    pub fn remove(&mut self, hash: u64, val: u32) -> bool {
        let mut i = Self::tag(hash) & self.mask;
        loop {
            let s = self.slots[i as usize];
            if s == VACANT {
                return false;
            }
            if val_of(s) == val {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: pull later members of the cluster into the hole
        // unless that would move one before its home slot.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j as usize];
            if s == VACANT {
                break;
            }
            let home = tag_of(s) & self.mask;
            // Distance from home to j and from home to the hole, cyclic.
            let dist_j = j.wrapping_sub(home) & self.mask;
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            if dist_hole < dist_j {
                self.slots[hole as usize] = s;
                hole = j;
            }
        }
        self.slots[hole as usize] = VACANT;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn wraps_around_the_end() {
        let mut ix = Index::with_capacity(4); // 8 slots
        let last = u64::from(ix.mask) << 32;
        for v in 0..4 {
            ix.insert(last, v);
        }
        for v in 0..4 {
            assert_eq!(ix.find(last, |x| x == v), Some(v));
        }
        assert!(ix.remove(last, 1));
        assert_eq!(ix.find(last, |x| x == 1), None);
        for v in [0, 2, 3] {
            assert_eq!(ix.find(last, |x| x == v), Some(v));
        }
        assert!(!ix.remove(last, 1));
    }

    proptest! {
        /// Against a HashMap model, with hashes squeezed into few home slots
        /// so clusters form and wrap.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..64, 0u64..16), 1..400)) {
            let mut ix = Index::with_capacity(64);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (add, val, h) in ops {
                let hash = (h * 0x9e37_79b9) << 32 | h;
                if add && !model.contains_key(&val) && model.len() < 64 {
                    ix.insert(hash, val);
                    model.insert(val, hash);
                } else if let Some(hash) = model.remove(&val) {
                    prop_assert!(ix.remove(hash, val));
                }
                for (&v, &hash) in &model {
                    prop_assert_eq!(ix.find(hash, |x| x == v), Some(v));
                }
            }
            let used = ix.slots.iter().filter(|&&s| s != VACANT).count();
            prop_assert_eq!(used, model.len());
        }
    }
}
