//! Expiry of connections: a hashed timing wheel of one-second slots whose
//! lists are threaded through the entries themselves (no allocation).
//!
//! Refreshing a connection on every packet must cost nothing but a store, so
//! entries are requeued lazily: each entry sits in the slot of the tick it
//! was queued for (`queued`), and only its `expires` moves forward as
//! packets arrive. When the slot comes round, an entry that is not yet due
//! is requeued at its real expiry. An entry whose expiry moves *earlier*
//! than its slot (a state change to a shorter timeout) is moved at once, so
//! a closed connection frees its entry on time. Work per call is bounded by
//! a budget; a wheel that falls behind catches up over later calls.
//!
//! Lists are doubly linked so that an entry can be unlinked in O(1); a
//! `prev` with [`HEAD`] set names the list whose head the entry is.

/// Slots on the wheel; one tick is one second. Timeouts longer than this
/// (persistence templates, long `--set tcp`) go round more than once.
pub const SLOTS: u32 = 1024;
const MASK: u32 = SLOTS - 1;
/// The list of entries detached from a due slot and not yet processed.
const PENDING: u32 = SLOTS;

pub const NIL: u32 = u32::MAX;
/// Set in `prev` when the entry is the head of list `prev & !HEAD`.
pub const HEAD: u32 = 1 << 31;

/// The link fields of one entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    pub next: u32,
    pub prev: u32,
    /// The tick whose slot holds the entry.
    pub queued: u32,
}

/// Access to the links of entries stored elsewhere.
pub trait Linked {
    fn links(&mut self, i: u32) -> &mut Links;
    fn expires(&self, i: u32) -> u32;
}

pub struct Wheel {
    heads: Box<[u32]>,
    /// The next tick to process.
    cursor: u32,
}

impl Wheel {
    pub fn new(now: u32) -> Wheel {
        Wheel {
            heads: vec![NIL; SLOTS as usize + 1].into_boxed_slice(),
            cursor: now,
        }
    }

    fn push(&mut self, es: &mut impl Linked, list: u32, i: u32) {
        let old = self.heads[list as usize];
        if old != NIL {
            es.links(old).prev = i;
        }
        let l = es.links(i);
        l.next = old;
        l.prev = HEAD | list;
        self.heads[list as usize] = i;
    }

    /// Queues entry `i` for tick `at`.
    pub fn schedule(&mut self, es: &mut impl Linked, i: u32, at: u32) {
        es.links(i).queued = at;
        self.push(es, at & MASK, i);
    }

    /// Unlinks entry `i` from whatever list holds it.
    pub fn unlink(&mut self, es: &mut impl Linked, i: u32) {
        let Links { next, prev, .. } = *es.links(i);
        if prev & HEAD != 0 {
            self.heads[(prev & !HEAD) as usize] = next;
        } else {
            es.links(prev).next = next;
        }
        if next != NIL {
            es.links(next).prev = prev;
        }
    }

    /// Called after entry `i`'s expiry changed to `at`: moves it if it now
    /// expires before the slot it waits in.
    #[inline]
    pub fn reschedule(&mut self, es: &mut impl Linked, i: u32, at: u32) {
        if at < es.links(i).queued {
            self.unlink(es, i);
            self.schedule(es, i, at);
        }
    }

    /// Whether every slot up to `now` has been processed.
    pub fn caught_up(&self, now: u32) -> bool {
        self.cursor > now && self.heads[PENDING as usize] == NIL
    }

    /// Visits due slots up to `now`, handing each expired entry to
    /// `expire` (which must not touch the wheel; the entry is already
    /// unlinked) and requeueing the rest. At most `budget` entries are
    /// examined.
    pub fn advance<E: Linked>(
        &mut self,
        es: &mut E,
        now: u32,
        budget: usize,
        mut expire: impl FnMut(u32),
    ) {
        // Past a whole turn, visiting every slot once is enough: entries are
        // compared against `now`, not against the slot's tick.
        if now > self.cursor.saturating_add(SLOTS) {
            self.cursor = now - SLOTS;
        }
        let mut examined = 0;
        loop {
            while self.heads[PENDING as usize] != NIL {
                if examined == budget {
                    return;
                }
                examined += 1;
                let i = self.heads[PENDING as usize];
                self.unlink(es, i);
                let at = es.expires(i);
                if at <= now {
                    expire(i);
                } else {
                    self.schedule(es, i, at);
                }
            }
            if self.cursor > now {
                return;
            }
            let slot = (self.cursor & MASK) as usize;
            let head = self.heads[slot];
            if head != NIL {
                // Move the whole slot to PENDING, then drain that.
                self.heads[slot] = NIL;
                self.heads[PENDING as usize] = head;
                es.links(head).prev = HEAD | PENDING;
            }
            self.cursor += 1;
        }
    }
}
