//! The locality table of lblc and lblcr: destination address → the real
//! server (lblc) or servers (lblcr) it was last scheduled to, aged as IPVS
//! ages it (`ip_vs_lblc.c`, `ip_vs_lblcr.c`).
//!
//! IPVS keeps a chained hash table per service, takes the service's
//! `sched_lock` to change it and allocates an entry (and, for lblcr, a list
//! element per server) for each new address. Here the table is allocated
//! once, when the scheduler is first built on the control side, and carried
//! over to the schedulers built after it ([`super::Scheduler::rebuild`]);
//! every worker reads and writes it with atomics: no lock, no allocation.
//!
//! # Layout
//!
//! - A dense array of 64-bit *heads*, one per slot, probed linearly from the
//!   address's hash for at most [`PROBE`] slots: `key << 32 | incarnation`.
//!   0 is a slot never used: it ends every probe run, so no slot is ever
//!   written back to 0 and runs are never broken. Key 0 (0.0.0.0 is never
//!   a destination) marks a free slot. A slot is claimed for an address by
//!   one compare-and-swap of its head from the value the claimant saw, with
//!   an incarnation number taken from a counter (never 0): slots are reused
//!   in place, never deleted.
//! - Per slot, `lastuse` and `lastmod` (seconds) and `N` member words
//!   `tag(16) | stamp(16) | DestRef(32)`. The tag is derived from the
//!   incarnation of the head that wrote the member, so a member left by an
//!   earlier occupant of the slot, or written late by a worker that still
//!   saw that occupant, is not part of the entry (and counts as free). The
//!   stamp, from a per-slot counter, orders members newest first, as IPVS's
//!   `list_add` does.
//!
//! Servers are named by their [`DestRef`], which survives list reordering
//! and deletion; [`Positions`] maps them back to list positions.
//!
//! # Invariants
//!
//! - An address has at most one slot. A new slot is claimed, then the probe
//!   run is read again; a claimant that sees another slot for its address
//!   frees its own. Claim and re-read are `SeqCst`, so of two workers
//!   claiming for one address at once at least one sees the other.
//! - A set never holds a server twice, by the same claim-and-re-read.
//! - Losing a race never blocks and never loses a decision: the server
//!   chosen is still returned, only its recording may be dropped, as IPVS
//!   drops it when it cannot allocate (`/* If we fail to create a cache
//!   entry, we'll just use the valid dest */`).
//!
//! # Aging: what is kept and what is adapted
//!
//! IPVS runs a timer every 60 s (`ip_vs_lblc_check_expire`). Every 30th run
//! it does a full check that removes entries unused for
//! `sysctl_lblc(r)_expiration` (24 h); the lookups themselves do not look at
//! age, so an entry stays usable until that check. That is kept exactly, but
//! lazily: an entry is gone once a full check at `epoch + 1800 k` (k ≥ 1, the
//! epoch being the table's first use, where IPVS's timer starts when the
//! service is created) falls at or after `lastuse + expiration`.
//!
//! The other runs of the timer act only when the table holds more than
//! `max_size` (16 × 1024) entries: they remove entries idle for 6 minutes
//! (`ENTRY_TIMEOUT`), pausing the full checks meanwhile. A fixed table has
//! no "more than": instead, with 2 × 16384 slots, an address whose probe
//! run is full may take over a slot idle for `ENTRY_TIMEOUT`, and is not
//! recorded when there is none (the full checks never pause).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::scheduler::Dests;
use crate::dest::{Dest, DestRef};

/// `DEFAULT_EXPIRATION`: the default of the `lblc_expiration` and
/// `lblcr_expiration` sysctls.
pub const DEFAULT_EXPIRATION: u32 = 24 * 60 * 60;
/// `CHECK_EXPIRE_INTERVAL * COUNT_FOR_FULL_EXPIRATION`: how often IPVS's
/// full expiration check runs.
pub const FULL_CHECK_PERIOD: u32 = 60 * 30;
/// `ENTRY_TIMEOUT`: idle time after which an entry may be dropped when the
/// table is over its size.
pub const ENTRY_TIMEOUT: u32 = 6 * 60;
/// log2 of the slots: twice IPVS's `max_size` (`IP_VS_LBLC_TAB_SIZE * 16`).
pub const DEFAULT_BITS: u32 = 15;
/// Longest probe run.
pub const PROBE: usize = 32;

/// The table key for a packet's destination address. IPv6 addresses (IPv6
/// services are refused today) and 0.0.0.0 are not recorded: they are
/// scheduled as IPVS schedules an address it fails to record.
#[inline]
pub fn key(addr: IpAddr) -> Option<u32> {
    match addr {
        IpAddr::V4(a) if !a.is_unspecified() => Some(u32::from(a)),
        _ => None,
    }
}

/// `a - b` in seconds, 0 when `a` is before `b` (workers' clocks may lag
/// one another by a tick). Wrapping, as the kernel's `time_before`.
#[inline]
fn since(a: u32, b: u32) -> u32 {
    let d = a.wrapping_sub(b) as i32;
    d.max(0) as u32
}

/// `time_after(a, b)`.
#[inline]
pub fn time_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

#[inline]
fn head_key(head: u64) -> u32 {
    (head >> 32) as u32
}

/// The member tag of an incarnation: never 0, so an empty word has none.
#[inline]
fn tag(head: u64) -> u16 {
    ((head as u32) % 0xffff) as u16 + 1
}

#[inline]
fn pack(tag: u16, stamp: u16, r: DestRef) -> u64 {
    u64::from(tag) << 48 | u64::from(stamp) << 32 | u64::from(r.0)
}

#[inline]
fn word_tag(w: u64) -> u16 {
    (w >> 48) as u16
}

#[inline]
fn word_stamp(w: u64) -> u16 {
    (w >> 32) as u16
}

#[inline]
fn word_dest(w: u64) -> DestRef {
    DestRef(w as u32)
}

struct Slot<const N: usize> {
    lastuse: AtomicU32,
    lastmod: AtomicU32,
    next_stamp: AtomicU32,
    members: [AtomicU64; N],
}

impl<const N: usize> Default for Slot<N> {
    fn default() -> Self {
        Slot {
            lastuse: AtomicU32::new(0),
            lastmod: AtomicU32::new(0),
            next_stamp: AtomicU32::new(0),
            members: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// An entry as a lookup found it: its slot and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    slot: usize,
    head: u64,
}

/// One server of an entry, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub r: DestRef,
    word: u64,
    idx: u8,
}

impl Default for Member {
    fn default() -> Self {
        Member {
            r: DestRef(0),
            word: 0,
            idx: 0,
        }
    }
}

/// An entry's servers, newest first.
pub struct Members<const N: usize> {
    items: [Member; N],
    len: usize,
}

impl<const N: usize> Members<N> {
    pub fn as_slice(&self) -> &[Member] {
        &self.items[..self.len]
    }
}

/// How a decision is recorded for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// lblc: the entry maps to this server alone (`ip_vs_lblc_new`).
    Replace,
    /// lblcr: the server joins the set unless already in it
    /// (`ip_vs_lblcr_new`, `ip_vs_dest_set_insert`).
    Add,
}

/// The table, shared by every worker and by successive builds of one
/// service's scheduler. `N` bounds the servers per entry.
pub struct Locality<const N: usize> {
    shift: u32,
    mask: usize,
    probe: usize,
    expiration: u32,
    heads: Box<[AtomicU64]>,
    slots: Box<[Slot<N>]>,
    /// Incarnation numbers, one per claim.
    claims: AtomicU32,
    /// Where IPVS's timer started: the first use. `u64::MAX` before.
    epoch: AtomicU64,
}

impl<const N: usize> Locality<N> {
    /// A table of `1 << bits` slots whose entries expire `expiration`
    /// seconds after their last use (at the next full check).
    pub fn new(bits: u32, expiration: u32) -> Self {
        assert!((1..=30).contains(&bits) && N >= 1 && N <= usize::from(u8::MAX));
        let len = 1usize << bits;
        Locality {
            shift: 32 - bits,
            mask: len - 1,
            probe: PROBE.min(len),
            expiration,
            heads: (0..len).map(|_| AtomicU64::new(0)).collect(),
            slots: (0..len).map(|_| Slot::default()).collect(),
            claims: AtomicU32::new(1),
            epoch: AtomicU64::new(u64::MAX),
        }
    }

    /// `lblc_expiration` / `lblcr_expiration`, seconds.
    pub fn expiration(&self) -> u32 {
        self.expiration
    }

    /// The slots an address may live in, in probe order.
    #[inline]
    fn run(&self, key: u32) -> impl Iterator<Item = usize> + '_ {
        let home = (key.wrapping_mul(0x9e37_79b1) >> self.shift) as usize;
        (0..self.probe).map(move |i| (home + i) & self.mask)
    }

    fn epoch(&self, now: u32) -> u32 {
        // Relaxed: the epoch is a plain value; racing first uses agree to
        // within a tick.
        match self.epoch.load(Ordering::Relaxed) {
            u64::MAX => match self.epoch.compare_exchange(
                u64::MAX,
                u64::from(now),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => now,
                Err(e) => e as u32,
            },
            e => e as u32,
        }
    }

    /// Whether IPVS's full check would have removed the entry in `slot` by
    /// `now` (`ip_vs_lblc_full_check`: gone when `now >= lastuse +
    /// expiration` at a check).
    fn dead(&self, slot: usize, now: u32) -> bool {
        let epoch = self.epoch(now);
        let last = self.slots[slot].lastuse.load(Ordering::Relaxed);
        let due = u64::from(since(last, epoch)) + u64::from(self.expiration);
        let period = u64::from(FULL_CHECK_PERIOD);
        let check = due.div_ceil(period).max(1) * period;
        u64::from(since(now, epoch)) >= check
    }

    fn idle(&self, slot: usize, now: u32) -> u32 {
        since(now, self.slots[slot].lastuse.load(Ordering::Relaxed))
    }

    fn find(&self, key: u32) -> Option<(usize, u64)> {
        for s in self.run(key) {
            // Acquire: pairs with the claim's release, so the members and
            // times written before it are seen.
            let h = self.heads[s].load(Ordering::Acquire);
            if h == 0 {
                return None;
            }
            if head_key(h) == key {
                return Some((s, h));
            }
        }
        None
    }

    /// The live entry for `key`, its last use set to `now`
    /// (`ip_vs_lblc_get`, then `en->lastuse = jiffies`).
    pub fn lookup(&self, key: u32, now: u32) -> Option<Entry> {
        self.epoch(now);
        let (slot, head) = self.find(key)?;
        if self.dead(slot, now) {
            return None;
        }
        // Relaxed: an age, written without a lock in IPVS too.
        let lu = &self.slots[slot].lastuse;
        if since(now, lu.load(Ordering::Relaxed)) > 0 {
            lu.store(now, Ordering::Relaxed);
        }
        Some(Entry { slot, head })
    }

    /// The entry's servers, newest first.
    pub fn members(&self, e: Entry) -> Members<N> {
        let slot = &self.slots[e.slot];
        let t = tag(e.head);
        let mut m = Members {
            items: [Member::default(); N],
            len: 0,
        };
        for (i, a) in slot.members.iter().enumerate() {
            // SeqCst: see `add`.
            let w = a.load(Ordering::SeqCst);
            if word_tag(w) == t {
                m.items[m.len] = Member {
                    r: word_dest(w),
                    word: w,
                    idx: i as u8,
                };
                m.len += 1;
            }
        }
        // Read after the members, so every stamp seen is below it; ages
        // are exact while a member has lived through fewer than 65536
        // insertions into its set.
        let next = slot.next_stamp.load(Ordering::SeqCst) as u16;
        m.items[..m.len].sort_unstable_by_key(|x| next.wrapping_sub(word_stamp(x.word)));
        m
    }

    /// The set's last modification (`set.lastmod`).
    pub fn lastmod(&self, e: Entry) -> u32 {
        self.slots[e.slot].lastmod.load(Ordering::Relaxed)
    }

    /// Sets `lastmod` to `now` if it is still `seen`: of workers acting on
    /// one expired `lastmod`, one wins (IPVS re-checks under its lock).
    pub fn touch_lastmod(&self, e: Entry, seen: u32, now: u32) -> bool {
        self.slots[e.slot]
            .lastmod
            .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Removes a member as read (`ip_vs_dest_set_erase`, without the
    /// `lastmod` update: see [`Locality::touch_lastmod`]); false when it
    /// has changed since.
    pub fn remove(&self, e: Entry, m: &Member) -> bool {
        self.slots[e.slot].members[usize::from(m.idx)]
            .compare_exchange(m.word, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// lblc: the entry now maps to `r` (`ip_vs_lblc_new` on an entry that
    /// exists). Of two workers replacing at once, one's choice stays, as
    /// it would after IPVS applied both in turn.
    pub fn replace(&self, e: Entry, r: DestRef) {
        let t = tag(e.head);
        let a = &self.slots[e.slot].members[0];
        let w = a.load(Ordering::SeqCst);
        if word_tag(w) == t && word_dest(w) == r {
            return;
        }
        let _ = a.compare_exchange(w, pack(t, 0, r), Ordering::SeqCst, Ordering::Relaxed);
    }

    /// lblcr: `r` joins the entry's set at its head unless it is already
    /// in it; `lastmod` becomes `now` if it joins
    /// (`ip_vs_dest_set_insert(set, dest, true)`). A full set is left as
    /// it is.
    pub fn add(&self, e: Entry, r: DestRef, now: u32) {
        let t = tag(e.head);
        let slot = &self.slots[e.slot];
        // Bounded: each retry follows another worker's change to this set.
        for _ in 0..N + 1 {
            let mut free = None;
            for (i, a) in slot.members.iter().enumerate() {
                let w = a.load(Ordering::SeqCst);
                if word_tag(w) == t {
                    if word_dest(w) == r {
                        return;
                    }
                } else if free.is_none() {
                    free = Some((i, w));
                }
            }
            let Some((i, w)) = free else { return };
            let stamp = slot.next_stamp.fetch_add(1, Ordering::SeqCst) as u16;
            let new = pack(t, stamp, r);
            if slot.members[i]
                .compare_exchange(w, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SeqCst with the store above: of two workers adding `r` at
            // once, at least one sees the other's copy and takes its own
            // back.
            let twice = slot.members.iter().enumerate().any(|(j, a)| {
                let w = a.load(Ordering::SeqCst);
                j != i && word_tag(w) == t && word_dest(w) == r
            });
            if twice {
                let _ =
                    slot.members[i].compare_exchange(new, 0, Ordering::SeqCst, Ordering::Relaxed);
            } else {
                slot.lastmod.store(now, Ordering::Relaxed);
            }
            return;
        }
    }

    /// Records that `key` went to `r`, when the lookup found no live
    /// entry: a new entry (`ip_vs_lblc_new`, `ip_vs_lblcr_new`), or, if one
    /// appeared meanwhile, `how` applied to it.
    pub fn record(&self, key: u32, r: DestRef, now: u32, how: Record) {
        self.epoch(now);
        for _ in 0..3 {
            let (mut found, mut reuse, mut end, mut idle) = (None, None, None, None);
            for s in self.run(key) {
                let h = self.heads[s].load(Ordering::SeqCst);
                if h == 0 {
                    end = Some((s, 0));
                    break;
                }
                if head_key(h) == key {
                    found = Some((s, h));
                    break;
                }
                if reuse.is_none() && (head_key(h) == 0 || self.dead(s, now)) {
                    reuse = Some((s, h));
                }
                if idle.is_none() && self.idle(s, now) >= ENTRY_TIMEOUT {
                    idle = Some((s, h));
                }
            }
            let (s, h) = match found {
                Some((slot, head)) if !self.dead(slot, now) => {
                    let e = Entry { slot, head };
                    match how {
                        Record::Replace => self.replace(e, r),
                        Record::Add => self.add(e, r, now),
                    }
                    return;
                }
                // Its own expired slot is renewed in place.
                Some(f) => f,
                // A free or expired slot, else a never-used one, else (the
                // run is full: the table is over its size) one idle for
                // ENTRY_TIMEOUT; else it is not recorded.
                None => match reuse.or(end).or(idle) {
                    Some(c) => c,
                    None => return,
                },
            };
            if self.claim(s, h, key, r, now) {
                return;
            }
        }
    }

    /// Makes `slot`, whose head was `seen`, the entry of `key` with the
    /// single server `r`. False if another worker changed the head first.
    fn claim(&self, s: usize, seen: u64, key: u32, r: DestRef, now: u32) -> bool {
        let inc = loop {
            // Relaxed: only uniqueness matters.
            let i = self.claims.fetch_add(1, Ordering::Relaxed);
            if i != 0 {
                break i;
            }
        };
        let head = u64::from(key) << 32 | u64::from(inc);
        if self.heads[s].load(Ordering::SeqCst) != seen {
            return false;
        }
        // Written before the head is published; should the claim fail,
        // they land on an entry that has just been claimed by another
        // worker, which writes its own (times: the same `now`; a member
        // under a tag not its own: ignored).
        let slot = &self.slots[s];
        slot.lastuse.store(now, Ordering::Relaxed);
        slot.lastmod.store(now, Ordering::Relaxed);
        slot.next_stamp.store(1, Ordering::SeqCst);
        slot.members[0].store(pack(tag(head), 0, r), Ordering::SeqCst);
        // SeqCst: releases the writes above to lookups (Acquire), and
        // orders the claim before the re-read below.
        if self.heads[s]
            .compare_exchange(seen, head, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if self.has_other(key, s) {
            // Free the slot (key 0) rather than empty it: it may lie
            // inside other addresses' runs.
            let _ = self.heads[s].compare_exchange(
                head,
                u64::from(inc),
                Ordering::SeqCst,
                Ordering::Relaxed,
            );
        }
        true
    }

    /// Whether a slot other than `s` in `key`'s run holds `key`.
    fn has_other(&self, key: u32, s: usize) -> bool {
        for t in self.run(key) {
            let h = self.heads[t].load(Ordering::SeqCst);
            if h == 0 {
                return false;
            }
            if t != s && head_key(h) == key {
                return true;
            }
        }
        false
    }
}

/// Servers' list positions by [`DestRef`], for one build.
pub struct Positions(Box<[(u32, u32)]>);

impl Positions {
    pub fn new(dests: &Dests<'_>) -> Positions {
        let mut v: Vec<(u32, u32)> = (0..dests.len())
            .map(|p| (dests.at(p).r.0, p as u32))
            .collect();
        v.sort_unstable();
        Positions(v.into_boxed_slice())
    }

    /// The list position of server `r`, if it is still in the service.
    #[inline]
    pub fn get(&self, dests: &Dests<'_>, r: DestRef) -> Option<usize> {
        let p = self
            .0
            .binary_search_by_key(&r.0, |e| e.0)
            .ok()
            .map(|i| self.0[i].1 as usize)
            .filter(|&p| p < dests.len() && dests.at(p).r == r);
        // Built for these servers; the scan only guards a caller that
        // passes others.
        p.or_else(|| (0..dests.len()).find(|&p| dests.at(p).r == r))
    }
}

/// `ip_vs_dest_conn_overhead`: `ActiveConn * 256 + InActConn`.
#[inline]
pub fn overhead(d: &Dest) -> i64 {
    let (active, inactive) = d.counters.conns();
    i64::from(active) * 256 + i64::from(inactive)
}

/// `is_overloaded` of lblc and lblcr: more active connections than its
/// weight while some server of the service is below half of its own.
#[inline]
pub fn is_overloaded(d: &Dest, dests: &Dests<'_>) -> bool {
    let active = |d: &Dest| u64::from(d.counters.conns().0);
    active(d) > u64::from(d.weight) && dests.iter().any(|m| active(m) * 2 < u64::from(m.weight))
}

#[cfg(test)]
impl<const N: usize> Locality<N> {
    /// Every entry that has a key, as (key, servers newest first), after
    /// checking the invariants: one slot per address, no server twice in
    /// a set.
    pub fn entries(&self) -> Vec<(u32, Vec<DestRef>)> {
        let mut out = Vec::new();
        for (s, h) in self.heads.iter().enumerate() {
            let h = h.load(Ordering::SeqCst);
            let k = head_key(h);
            if k == 0 {
                continue;
            }
            assert!(!self.has_other(k, s), "address {k:#x} in two slots");
            let rs: Vec<DestRef> = self
                .members(Entry { slot: s, head: h })
                .as_slice()
                .iter()
                .map(|m| m.r)
                .collect();
            for (i, r) in rs.iter().enumerate() {
                assert!(!rs[..i].contains(r), "{r:?} twice in the set of {k:#x}");
            }
            out.push((k, rs));
        }
        out.sort_unstable_by_key(|e| e.0);
        out
    }

    /// The live entry of `key` at `now`, without touching it.
    pub fn peek(&self, key: u32, now: u32) -> Option<Vec<DestRef>> {
        let (slot, head) = self.find(key)?;
        if self.dead(slot, now) {
            return None;
        }
        let e = Entry { slot, head };
        Some(self.members(e).as_slice().iter().map(|m| m.r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn k(i: u8) -> u32 {
        u32::from(Ipv4Addr::new(10, 0, 0, i))
    }

    #[test]
    fn keys() {
        assert_eq!(key(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), None);
        assert_eq!(key("::1".parse().unwrap()), None);
        assert_eq!(key(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), Some(k(1)));
    }

    /// The full check runs every 30 minutes from the first use; an entry
    /// lives until the first check at or after `lastuse + expiration`.
    #[test]
    fn expiry_follows_the_full_check() {
        let t: Locality<1> = Locality::new(4, 100);
        t.record(k(1), DestRef(7), 0, Record::Replace);
        assert!(t.lookup(k(1), 1799).is_some(), "first check is at 1800");
        t.record(k(2), DestRef(8), 1799, Record::Replace);
        // k(1): last used 1799, due 1899, first check at or after: 3600.
        assert!(t.lookup(k(2), 3599).is_some());
        assert_eq!(t.peek(k(1), 3599), Some(vec![DestRef(7)]));
        assert_eq!(t.peek(k(1), 3600), None);
        assert_eq!(t.peek(k(2), 3600), Some(vec![DestRef(8)]), "used at 3599");
        // Renewed in place, with the new server only.
        t.record(k(1), DestRef(9), 3600, Record::Add);
        assert_eq!(t.peek(k(1), 3600), Some(vec![DestRef(9)]));
        assert_eq!(t.entries().len(), 2);
    }

    #[test]
    fn sets_are_newest_first_and_bounded() {
        let t: Locality<3> = Locality::new(4, DEFAULT_EXPIRATION);
        t.record(k(1), DestRef(1), 0, Record::Add);
        let e = t.lookup(k(1), 0).unwrap();
        t.add(e, DestRef(2), 5);
        t.add(e, DestRef(1), 6);
        assert_eq!(t.lastmod(e), 5, "already a member: not modified");
        t.add(e, DestRef(3), 7);
        t.add(e, DestRef(4), 8);
        let rs = |t: &Locality<3>| t.peek(k(1), 9).unwrap();
        assert_eq!(rs(&t), vec![DestRef(3), DestRef(2), DestRef(1)]);
        let m = t.members(e);
        assert!(t.remove(e, &m.as_slice()[1]));
        assert!(!t.remove(e, &m.as_slice()[1]), "already gone");
        t.add(e, DestRef(4), 10);
        assert_eq!(rs(&t), vec![DestRef(4), DestRef(3), DestRef(1)]);
        assert!(t.touch_lastmod(e, 10, 11));
        assert!(!t.touch_lastmod(e, 10, 12));
    }

    /// A full run takes over an entry idle for ENTRY_TIMEOUT, else the
    /// address is not recorded.
    #[test]
    fn full_run_reclaims_idle_entries() {
        let t: Locality<1> = Locality::new(3, DEFAULT_EXPIRATION);
        for i in 1..=8 {
            t.record(k(i), DestRef(u32::from(i)), u32::from(i), Record::Replace);
        }
        assert_eq!(t.entries().len(), 8);
        t.record(k(9), DestRef(9), 100, Record::Replace);
        assert_eq!(t.peek(k(9), 100), None, "nothing idle long enough");
        assert!(t.lookup(k(1), 300).is_some());
        // At 362 only k(2), last used at 2, has been idle 6 minutes (k(1)
        // was used at 300).
        t.record(k(9), DestRef(9), 362, Record::Replace);
        assert_eq!(t.peek(k(9), 362), Some(vec![DestRef(9)]));
        assert_eq!(t.peek(k(2), 362), None);
        assert_eq!(t.peek(k(1), 362), Some(vec![DestRef(1)]));
        assert_eq!(t.entries().len(), 8);
    }

    /// A lookup that lags the epoch, or a clock that lags another worker's,
    /// neither expires nor ages anything.
    #[test]
    fn lagging_clocks() {
        let t: Locality<1> = Locality::new(4, 10);
        t.record(k(1), DestRef(1), 1000, Record::Replace);
        assert!(t.lookup(k(1), 999).is_some());
        assert_eq!(
            t.slots
                .iter()
                .map(|s| s.lastuse.load(Ordering::Relaxed))
                .max(),
            Some(1000)
        );
    }

    /// A worker that claims a slot for an address another worker has
    /// just claimed elsewhere backs out, freeing (not emptying) its slot.
    #[test]
    fn second_claim_backs_out() {
        let t: Locality<1> = Locality::new(4, DEFAULT_EXPIRATION);
        t.record(k(1), DestRef(1), 0, Record::Replace);
        let (s, _) = t.find(k(1)).unwrap();
        let other = (s + 1) & t.mask;
        assert!(t.claim(other, 0, k(1), DestRef(2), 0));
        let h = t.heads[other].load(Ordering::Relaxed);
        assert!(h != 0 && head_key(h) == 0);
        assert_eq!(t.peek(k(1), 0), Some(vec![DestRef(1)]));
        assert_eq!(t.entries().len(), 1);
        assert!(!t.claim(other, 0, k(2), DestRef(2), 0), "head has changed");
    }

    #[test]
    fn hammered_from_two_threads() {
        let t: Locality<4> = Locality::new(4, 60);
        std::thread::scope(|s| {
            for w in 0..2u32 {
                let t = &t;
                s.spawn(move || {
                    for i in 0..20_000u32 {
                        let key = k((i * 7 + w) as u8 % 40 + 1);
                        let now = i / 16;
                        let r = DestRef((i + w) % 6);
                        match t.lookup(key, now) {
                            Some(e) => {
                                let m = t.members(e);
                                if let Some(x) = m.as_slice().last()
                                    && i % 3 == 0
                                {
                                    t.remove(e, x);
                                }
                                t.add(e, r, now);
                            }
                            None => t.record(key, r, now, Record::Add),
                        }
                    }
                });
            }
        });
        let entries = t.entries();
        assert!(!entries.is_empty() && entries.len() <= 16);
        assert!(entries.iter().all(|(_, rs)| rs.len() <= 4));
    }
}

/// Shared by the lblc and lblcr property tests.
#[cfg(test)]
pub mod tests_support {
    use super::super::{Flow, Params, Scheduler, testutil};
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const SERVERS: usize = 5;

    #[derive(Debug, Clone)]
    pub enum Op {
        /// A new connection to 10.0.0.`dst`, `dt` seconds on; it is
        /// bound to the server chosen.
        Conn { dst: u8, dt: u32 },
        /// One of the server's inactive connections is established.
        Establish(usize),
        /// One of its active (`true`) or inactive connections ends.
        End(usize, bool),
        /// `ipvsadm -x` reached or cleared.
        Overload(usize, bool),
        /// `ipvsadm -e -w`: a new snapshot.
        Weight(usize, u32),
        /// `ipvsadm -d`, or `-a` again (a new server in the slot, at the
        /// list head): a new snapshot.
        Toggle(usize),
    }

    pub fn op() -> impl Strategy<Value = Op> {
        let server = 0..SERVERS;
        prop_oneof![
            8 => (1u8..6, prop_oneof![Just(0u32), 1u32..400, Just(90_000)])
                .prop_map(|(dst, dt)| Op::Conn { dst, dt }),
            3 => server.clone().prop_map(Op::Establish),
            2 => (server.clone(), any::<bool>()).prop_map(|(i, a)| Op::End(i, a)),
            1 => (server.clone(), any::<bool>()).prop_map(|(i, o)| Op::Overload(i, o)),
            1 => (server.clone(), 0u32..4).prop_map(|(i, w)| Op::Weight(i, w)),
            1 => server.prop_map(Op::Toggle),
        ]
    }

    /// A new connection to 10.0.0.`dst` at `now`.
    pub fn to(dst: u8, now: u32) -> Flow {
        Flow {
            vip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, dst)),
            now,
            ..testutil::flow()
        }
    }

    /// Schedules a connection to 10.0.0.`dst` and binds it to the server
    /// chosen, as the pipeline does; returns the server's list position.
    pub fn go<S: Scheduler>(s: &S, d: &Dests<'_>, dst: u8, now: u32) -> usize {
        let p = s.schedule(d, &to(dst, now)).unwrap();
        d.at(p).counters.bind();
        p
    }

    /// Establishes `n` of the server's inactive connections.
    pub fn activate(d: &Dest, n: u32) {
        for _ in 0..n {
            d.counters.set_active(true);
        }
    }

    /// The servers (slots) recorded for 10.0.0.`dst` at `now`, newest
    /// first.
    pub fn recorded<const N: usize>(t: &Locality<N>, dst: u8, now: u32) -> Option<Vec<u32>> {
        let k = u32::from(Ipv4Addr::new(10, 0, 0, dst));
        t.peek(k, now)
            .map(|v| v.iter().map(|r| r.slot() as u32).collect())
    }

    /// Applies `ops`, checking every decision: an available server of
    /// the current list, or `None` when there is none.
    pub fn run_ops<S: Scheduler>(ops: &[Op]) {
        let (mut order, mut all) = testutil::dests(&[1; SERVERS]);
        let mut generation = [0u32; SERVERS];
        let mut now = 0u32;
        let mut s = S::build(&Dests::new(&order, &all), &Params::default());
        for op in ops {
            let counters = |i: usize| Arc::clone(&all[i].as_ref().unwrap().counters);
            match *op {
                Op::Conn { dst, dt } => {
                    now += dt;
                    let d = Dests::new(&order, &all);
                    match s.schedule(&d, &to(dst, now)) {
                        Some(p) => {
                            assert!(d.at(p).available(), "{:?} at {now}", d.at(p));
                            d.at(p).counters.bind();
                        }
                        None => assert!(d.iter().all(|x| !x.available())),
                    }
                    continue;
                }
                Op::Establish(i) => {
                    let c = counters(i);
                    if c.conns().1 > 0 {
                        c.set_active(true);
                    }
                    continue;
                }
                Op::End(i, active) => {
                    let c = counters(i);
                    let (a, n) = c.conns();
                    if active && a > 0 || !active && n > 0 {
                        c.unbind(!active);
                    }
                    continue;
                }
                Op::Overload(i, on) => {
                    counters(i).set_overloaded(on);
                    continue;
                }
                Op::Weight(i, w) => all[i].as_mut().unwrap().weight = w,
                Op::Toggle(i) => match order.iter().position(|&x| x as usize == i) {
                    Some(p) => {
                        order.remove(p);
                    }
                    None => {
                        generation[i] += 1;
                        all[i].as_mut().unwrap().r = DestRef::new(i as u32, generation[i]);
                        order.insert(0, i as u32);
                    }
                },
            }
            s = S::rebuild(&Dests::new(&order, &all), &Params::default(), &s);
        }
    }

    /// Two workers scheduling at once for 24 addresses over 3000
    /// seconds (four connections a second each); every decision is an available server. Returns the
    /// scheduler for its table to be checked.
    pub fn two_workers<S: Scheduler>(seed: u64, make: impl Fn(&Dests<'_>) -> S) -> S {
        let (order, all) = testutil::dests(&[1, 2, 0, 3, 1]);
        let d = Dests::new(&order, &all);
        let s = make(&d);
        std::thread::scope(|sc| {
            for w in 0..2u64 {
                let s = &s;
                sc.spawn(move || {
                    // Connections this worker bound and may end: (active, inactive).
                    let mut mine = [(0u32, 0u32); 5];
                    let mut x = (seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                    for i in 0..12_000u32 {
                        let now = i / 4;
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let dst = (x % 24) as u8 + 1;
                        if let Some(p) = s.schedule(&d, &to(dst, now)) {
                            let dest = d.at(p);
                            assert!(dest.available());
                            dest.counters.bind();
                            mine[p].1 += 1;
                            if x & 2 == 0 {
                                dest.counters.set_active(true);
                                mine[p] = (mine[p].0 + 1, mine[p].1 - 1);
                            }
                        }
                        let q = (x >> 8) as usize % 5;
                        if x & 4 == 0 && mine[q].0 > 0 {
                            d.at(q).counters.unbind(false);
                            mine[q].0 -= 1;
                        } else if mine[q].1 > 0 {
                            d.at(q).counters.unbind(true);
                            mine[q].1 -= 1;
                        }
                    }
                });
            }
        });
        s
    }
}
