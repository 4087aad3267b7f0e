//! Lookup: the per-worker connection table.
//!
//! Each worker owns one table: no locks, no sharing, no atomics on the
//! lookup path. Everything is allocated at construction — the entry array,
//! the flow index and the timer wheel — so neither a packet nor a new
//! connection allocates. Capacity is fixed: when the table is full a new
//! flow is refused (the caller drops and counts it) while established flows
//! carry on untouched.
//!
//! A connection is found by the 5-tuple of its client's packets
//! (proto, client addr:port → VIP:port). A NAT connection is also indexed by
//! the 5-tuple of its real server's replies (proto, RIP:rport → client
//! addr:port), so one lookup serves both directions and tells which side the
//! packet came from.
//!
//! A connection starts *unreplied* and is confirmed once it is
//! established (TCP ESTABLISHED, a UDP reply or second datagram; the
//! pipeline decides, [`defense`] explains why). The table counts the
//! unreplied connections and finds one at random to evict
//! ([`ConnTable::pick_unreplied`]), so that they can be held to a share of
//! the table.
//!
//! Invariants: an entry is live iff its `LIVE` flag is set; every live entry
//! is in exactly one wheel list and in the index once (twice with
//! `REVERSE`); a free entry is on the free list threaded through
//! `links.next`; `unreplied` is the number of live connections (not
//! templates or expectations) without `CONFIRMED`.

pub mod addr;
pub mod defense;
pub mod frag;
pub mod hash;
pub mod index;
mod key;
pub mod seq;
pub mod state;
pub mod wheel;

pub use addr::Addr;
pub use defense::{Defense, Mode};
pub use key::FlowKey;
pub use seq::SeqAdjust;
pub use state::{Direction, TcpState, Timeouts};

use crate::dest::{DestRef, Forward};

use hash::FlowHasher;
use index::Index;
use wheel::{Linked, Links, NIL, Wheel};

/// Which side of a connection a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client → virtual service.
    Client,
    /// Real server → client (NAT replies).
    Server,
}

/// Connection flags (one byte in the entry), private to this module:
/// outside it a connection is read through [`Conn`]'s accessors.
mod flags {
    /// Forwarding method, [`Forward`] as u8.
    pub const FWD_MASK: u8 = 0x03;
    /// Counted in the real server's InActConn rather than ActiveConn.
    pub const INACTIVE: u8 = 0x04;
    /// The director never sees the server's half (DR, TUN).
    pub const NO_OUTPUT: u8 = 0x08;
    /// Also indexed by the server side's 5-tuple (NAT).
    pub const REVERSE: u8 = 0x10;
    /// A persistence template or an expectation, not a connection
    /// (`IP_VS_CONN_F_TEMPLATE`).
    pub const TEMPLATE: u8 = 0x20;
    /// Taken out of the index (a template whose real server went away),
    /// kept until the connections it controls are gone.
    pub const UNHASHED: u8 = 0x40;
    /// The entry is in use.
    pub const LIVE: u8 = 0x80;
}

/// Set in a connection's state byte once it is confirmed (established,
/// or a UDP flow answered); the TCP state is in the bits below.
const CONFIRMED: u8 = 0x80;

/// Added to the protocol number of a persistence template's key, so that
/// no packet's 5-tuple can ever match a template.
const TEMPLATE_PROTO: u8 = 0x80;

/// Added to the protocol number of an expected data connection's key
/// (IPVS: a connection with `IP_VS_CONN_F_NO_CPORT`): the FTP helper
/// knows the client's address and the VIP port, not the client's port, so
/// the entry is keyed with client port 0 and found by the client's first
/// SYN, which then gets a connection of its own.
const EXPECT_PROTO: u8 = 0x40;

/// What an entry of the table is (DPVS `dp_vs_conn_is_template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client's connection to a real server.
    Connection,
    /// A persistence template: the real server of a client (or of its
    /// masked block) for a service (`IP_VS_CONN_F_TEMPLATE`).
    Template,
    /// A data connection the FTP helper expects the client to open, with
    /// its client port unknown (`IP_VS_CONN_F_NO_CPORT`).
    Expectation,
}

impl<A: Addr> FlowKey<A> {
    /// The key of the persistence template of client `caddr` (already
    /// masked) for `vaddr:vport` (port 0: the VIP's every port).
    #[inline]
    pub fn template(proto: u8, caddr: A, vaddr: A, vport: u16) -> FlowKey<A> {
        FlowKey {
            proto: proto | TEMPLATE_PROTO,
            saddr: caddr,
            sport: 0,
            daddr: vaddr,
            dport: vport,
        }
    }

    /// The key of an expected data connection from `caddr` (any port) to
    /// `vaddr:vport`.
    #[inline]
    pub fn expectation(proto: u8, caddr: A, vaddr: A, vport: u16) -> FlowKey<A> {
        FlowKey {
            proto: proto | EXPECT_PROTO,
            saddr: caddr,
            sport: 0,
            daddr: vaddr,
            dport: vport,
        }
    }
}

/// A new connection, as the pipeline opens one (IPVS `ip_vs_conn_new`).
#[derive(Debug, Clone, Copy)]
pub struct NewConn<A> {
    /// The client's first packet's 5-tuple.
    pub key: FlowKey<A>,
    /// The real server's address and port.
    pub daddr: A,
    pub dport: u16,
    pub fwd: Forward,
    pub dest: DestRef,
    /// The port the client's packets arrive on, and the MAC they come
    /// from (NAT replies go back to it).
    pub in_port: u8,
    pub client_mac: [u8; 6],
    pub expires: u32,
}

/// One connection, persistence template or expectation: 52 bytes for
/// IPv4, aligned to a cache line of its own, so that a lookup costs one
/// miss, not two (measured: 80 vs 92 ns per packet at 1 M flows, for 12
/// more bytes). Addresses and ports are plain fields; what is packed into
/// bytes (kind, forwarding method, state, counts) is read through methods.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct Conn<A> {
    pub caddr: A,
    pub vaddr: A,
    /// The real server's address and port.
    pub daddr: A,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// The IP protocol, plus `TEMPLATE_PROTO` or `EXPECT_PROTO` for the
    /// entries that are no connection (so no packet's key matches them).
    key_proto: u8,
    /// [`TcpState`] as u8 for TCP; 0 for UDP.
    state: u8,
    flags: u8,
    /// The port the client's packets arrive on; NAT replies leave by it.
    in_port: u8,
    dest: DestRef,
    /// A connection: the MAC the client's packets came from (its next
    /// hop), where NAT replies are sent. A template: its persistence
    /// timeout (little-endian, in the first four bytes); templates have no
    /// client MAC, and this keeps the entry in one line.
    client_mac: [u8; 6],
    /// The tick at which the entry expires unless refreshed (set through
    /// [`ConnTable::set_expires`], which keeps the wheel in step).
    expires: u32,
    /// A connection: its persistence template's index + 1 (0 = none). A
    /// template: how many connections it controls (IPVS `n_control`).
    control: u32,
    /// The shift of the server's sequence numbers after an application
    /// helper resized its payload (NAT FTP control connections; zero for
    /// every other connection). It fills the entry's spare bytes.
    pub seq: SeqAdjust,
    pub(crate) links: Links,
}

impl<A: Addr> Default for Conn<A> {
    fn default() -> Self {
        Conn {
            caddr: A::UNSPECIFIED,
            vaddr: A::UNSPECIFIED,
            daddr: A::UNSPECIFIED,
            cport: 0,
            vport: 0,
            dport: 0,
            key_proto: 0,
            state: 0,
            flags: 0,
            in_port: 0,
            dest: DestRef(0),
            client_mac: [0; 6],
            expires: 0,
            control: 0,
            seq: SeqAdjust::default(),
            links: Links::default(),
        }
    }
}

impl<A: Addr> Conn<A> {
    /// A client's connection, counted inactive until it is established;
    /// NAT connections are also found by their replies.
    pub fn connection(n: &NewConn<A>) -> Conn<A> {
        let side = match n.fwd {
            Forward::Nat => flags::REVERSE,
            Forward::Dr | Forward::Tun => flags::NO_OUTPUT,
        };
        Conn {
            caddr: n.key.saddr,
            vaddr: n.key.daddr,
            daddr: n.daddr,
            cport: n.key.sport,
            vport: n.key.dport,
            dport: n.dport,
            key_proto: n.key.proto,
            state: TcpState::None as u8,
            flags: n.fwd as u8 | flags::INACTIVE | side,
            in_port: n.in_port,
            dest: n.dest,
            client_mac: n.client_mac,
            expires: n.expires,
            ..Conn::default()
        }
    }

    /// A persistence template under `key` ([`FlowKey::template`]) for real
    /// server `dest` (`daddr:dport`), re-armed for `timeout` seconds.
    pub fn template(
        key: &FlowKey<A>,
        (daddr, dport): (A, u16),
        fwd: Forward,
        dest: DestRef,
        expires: u32,
        timeout: u32,
    ) -> Conn<A> {
        let mut c = Conn {
            caddr: key.saddr,
            vaddr: key.daddr,
            daddr,
            cport: 0,
            vport: key.dport,
            dport,
            key_proto: key.proto,
            flags: fwd as u8 | flags::TEMPLATE,
            dest,
            expires,
            ..Conn::default()
        };
        c.client_mac[..4].copy_from_slice(&timeout.to_le_bytes());
        c
    }

    /// The expectation of a NAT data connection from the client of `ctl`
    /// to VIP:`port`, for its real server's `port` (passive FTP).
    pub fn expectation(ctl: &Conn<A>, port: u16, expires: u32) -> Conn<A> {
        Conn {
            caddr: ctl.caddr,
            vaddr: ctl.vaddr,
            daddr: ctl.daddr,
            cport: 0,
            vport: port,
            dport: port,
            key_proto: ctl.proto() | EXPECT_PROTO,
            flags: Forward::Nat as u8 | flags::TEMPLATE,
            in_port: ctl.in_port,
            dest: ctl.dest,
            expires,
            ..Conn::default()
        }
    }

    /// The key of the client's packets.
    #[inline]
    pub fn client_key(&self) -> FlowKey<A> {
        FlowKey {
            proto: self.key_proto,
            saddr: self.caddr,
            sport: self.cport,
            daddr: self.vaddr,
            dport: self.vport,
        }
    }

    /// The key of the real server's replies.
    #[inline]
    pub fn server_key(&self) -> FlowKey<A> {
        FlowKey {
            proto: self.key_proto,
            saddr: self.daddr,
            sport: self.dport,
            daddr: self.caddr,
            dport: self.cport,
        }
    }

    #[inline]
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    #[inline]
    pub fn kind(&self) -> Kind {
        if self.key_proto & EXPECT_PROTO != 0 {
            Kind::Expectation
        } else if self.has(flags::TEMPLATE) {
            Kind::Template
        } else {
            Kind::Connection
        }
    }

    /// The IP protocol (TCP or UDP).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.key_proto & !(TEMPLATE_PROTO | EXPECT_PROTO)
    }

    #[inline]
    pub fn forward(&self) -> Forward {
        // A table, not a match: one load on the packet path.
        const BY_BITS: [Forward; 4] = [Forward::Dr, Forward::Tun, Forward::Nat, Forward::Nat];
        BY_BITS[usize::from(self.flags & flags::FWD_MASK)]
    }

    /// The real server.
    #[inline]
    pub fn dest(&self) -> DestRef {
        self.dest
    }

    /// Points an expectation at another real server (a refreshed
    /// announcement).
    pub fn retarget(&mut self, daddr: A, dest: DestRef) {
        (self.daddr, self.dest) = (daddr, dest);
    }

    /// The port the client's packets arrive on (NAT replies leave by it).
    #[inline]
    pub fn in_port(&self) -> u8 {
        self.in_port
    }

    /// The MAC the client's packets come from (a connection's).
    #[inline]
    pub fn client_mac(&self) -> [u8; 6] {
        self.client_mac
    }

    #[inline]
    pub fn expires(&self) -> u32 {
        self.expires
    }

    /// A TCP connection's state ([`TcpState::None`] for UDP).
    #[inline]
    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_u8(self.state & !CONFIRMED)
    }

    /// A connection that is established, or a UDP flow that was answered
    /// ([`ConnTable::confirm`]); templates and expectations are neither.
    #[inline]
    pub fn is_confirmed(&self) -> bool {
        self.state & CONFIRMED != 0
    }

    /// Counted as unreplied: a connection not confirmed yet.
    #[inline]
    fn is_unreplied(&self) -> bool {
        self.kind() == Kind::Connection && !self.is_confirmed()
    }

    /// Moves a TCP connection to state `new`. Returns `Some(active)` when
    /// it moves between its real server's ActiveConn (ESTABLISHED) and
    /// InActConn counts, which the caller then updates.
    #[inline]
    pub fn set_tcp_state(&mut self, new: TcpState) -> Option<bool> {
        self.state = new as u8 | (self.state & CONFIRMED);
        let established = new == TcpState::Established;
        if self.has(flags::INACTIVE) == established {
            self.flags ^= flags::INACTIVE;
            Some(established)
        } else {
            None
        }
    }

    /// Counted in its real server's InActConn (not ESTABLISHED).
    #[inline]
    pub fn is_inactive(&self) -> bool {
        self.has(flags::INACTIVE)
    }

    /// The director sees only the client's half (DR, TUN).
    #[inline]
    pub fn is_input_only(&self) -> bool {
        self.has(flags::NO_OUTPUT)
    }

    /// A connection: whether a persistence template controls it.
    #[inline]
    pub fn is_controlled(&self) -> bool {
        self.kind() == Kind::Connection && self.control != 0
    }

    /// A template: how many connections it controls.
    #[inline]
    pub fn controls(&self) -> u32 {
        if self.kind() == Kind::Template {
            self.control
        } else {
            0
        }
    }

    /// A template's persistence timeout in seconds.
    pub fn template_timeout(&self) -> u32 {
        let b = &self.client_mac;
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    fn is_live(&self) -> bool {
        self.has(flags::LIVE)
    }
}

/// Why a connection could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table is at capacity.
    Full,
    /// A NAT connection's reply 5-tuple already belongs to another
    /// connection, so its replies could not be told apart.
    Collision,
}

struct Entries<A>(Box<[Conn<A>]>);

impl<A> Linked for Entries<A> {
    #[inline]
    fn links(&mut self, i: u32) -> &mut Links {
        &mut self.0[i as usize].links
    }
    #[inline]
    fn expires(&self, i: u32) -> u32 {
        self.0[i as usize].expires
    }
}

pub struct ConnTable<A> {
    entries: Entries<A>,
    index: Index,
    hasher: FlowHasher,
    wheel: Wheel,
    free: u32,
    len: u32,
    /// Live connections not confirmed yet.
    unreplied: u32,
    /// xorshift64 state for the random probes of the flood defence.
    rng: u64,
    /// Unreplied connections in the order they were opened, entry
    /// numbers in a ring (a power of two long, at least the capacity):
    /// the flood defence evicts from its head. Items whose entry has been
    /// confirmed or freed since are skipped when they come up; an entry
    /// freed and reused may be found early through its old item (it is
    /// unreplied, so the share rule holds).
    order: Box<[u32]>,
    order_head: u32,
    order_tail: u32,
}

impl<A: Addr> ConnTable<A> {
    /// A table for at most `capacity` connections, with the expiry clock
    /// starting at tick `now`.
    pub fn new(capacity: u32, now: u32) -> ConnTable<A> {
        assert!(capacity > 0 && capacity < 1 << 30, "capacity out of range");
        let mut entries = Vec::with_capacity(capacity as usize);
        crate::mem::advise_hugepages(&mut entries);
        // Every entry starts on the free list, in index order.
        entries.extend((1..=capacity).map(|next| {
            let mut e = Conn::<A>::default();
            e.links.next = if next < capacity { next } else { NIL };
            e
        }));
        ConnTable {
            entries: Entries(entries.into_boxed_slice()),
            // Room for both keys of every entry.
            index: Index::with_capacity(2 * capacity as usize),
            hasher: FlowHasher::random(),
            wheel: Wheel::new(now),
            free: 0,
            len: 0,
            unreplied: 0,
            order: vec![NIL; (capacity as usize).next_power_of_two()].into_boxed_slice(),
            order_head: 0,
            order_tail: 0,
            rng: {
                use std::hash::BuildHasher;
                std::hash::RandomState::new().hash_one(0u8) | 1
            },
        }
    }

    pub fn capacity(&self) -> u32 {
        self.entries.0.len() as u32
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live connections not confirmed yet (see the module docs).
    pub fn unreplied(&self) -> u32 {
        self.unreplied
    }

    /// Confirms connection `i` (once established or answered): it no
    /// longer counts as unreplied and is never picked for eviction.
    #[inline]
    pub fn confirm(&mut self, i: u32) {
        let c = &mut self.entries.0[i as usize];
        if c.is_unreplied() {
            c.state |= CONFIRMED;
            self.unreplied -= 1;
        }
    }

    /// A random entry number (xorshift64; not for cryptography, only to
    /// make the entries a flood's packets can push out unpredictable).
    #[inline]
    fn random_entry(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (((x >> 32) * u64::from(self.capacity())) >> 32) as u32
    }

    /// Probes up to `probes` random entries for unreplied connections and
    /// returns, of the first `choices` found, the one that expires first
    /// (the longest idle of them), for the flood defence to evict (the
    /// caller ends it). With several choices a connection that has just
    /// been opened is seldom the one picked, so a real client's handshake
    /// survives a flood that churns the share far faster than at random.
    /// O(probes), no scan.
    pub fn pick_unreplied(&mut self, probes: u32, choices: u32) -> Option<u32> {
        if self.unreplied == 0 {
            return None;
        }
        let mut best: Option<(u32, u32)> = None;
        let mut found = 0;
        for _ in 0..probes {
            let i = self.random_entry();
            let c = &self.entries.0[i as usize];
            if c.is_live() && c.is_unreplied() {
                if best.is_none_or(|(_, at)| c.expires < at) {
                    best = Some((i, c.expires));
                }
                found += 1;
                if found == choices {
                    break;
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// The oldest unreplied connection (the first opened of those still
    /// unreplied), looking at most at `max` items of the order ring, for
    /// the flood defence to evict (the caller ends it). A real client's
    /// handshake then survives a flood for as long as the flood takes to
    /// cycle through the whole share, not a random while.
    pub fn pick_oldest_unreplied(&mut self, max: u32) -> Option<u32> {
        let mask = self.order.len() as u32 - 1;
        for _ in 0..max {
            if self.order_head == self.order_tail {
                return None;
            }
            let i = self.order[(self.order_head & mask) as usize];
            self.order_head = self.order_head.wrapping_add(1);
            let c = &self.entries.0[i as usize];
            if c.is_live() && c.is_unreplied() {
                return Some(i);
            }
        }
        None
    }

    /// Whether every entry due by `now` has been reaped: [`Self::expire`]
    /// would find nothing to do.
    #[inline]
    pub fn caught_up(&self, now: u32) -> bool {
        self.wheel.caught_up(now)
    }

    /// Bytes of memory the table holds (entries, index and wheel).
    pub fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.entries.0)
            + std::mem::size_of_val(&*self.order)
            + self.index.memory()
            + 4 * (wheel::SLOTS as usize + 1)
    }

    #[inline]
    pub fn hash(&self, key: &FlowKey<A>) -> u64 {
        self.hasher.hash(key)
    }

    /// Warms the cache for the lookups of a batch: reads the home index
    /// slot of every hash, then the connection entry each likely holds.
    /// Two tight loops of independent loads, so the CPU keeps many cache
    /// misses in flight at once (on the machines measured this overlapped
    /// far more than software prefetches did).
    #[inline]
    pub fn warm(&self, hashes: &[u64]) {
        let mut homes = [0u64; 64];
        for (h, &hash) in homes.iter_mut().zip(hashes) {
            *h = self.index.home(hash);
        }
        let mut acc = 0u32;
        for (&home, &hash) in homes.iter().zip(hashes) {
            if let Some(val) = Index::hint(hash, home) {
                acc ^= self.entries.0[(val >> 1) as usize].expires;
            }
        }
        std::hint::black_box(acc);
    }

    /// The connection a packet with `key` (whose hash is `hash`) belongs to,
    /// and which side it came from. Expired entries not yet reaped are
    /// returned too: the caller checks `expires`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey<A>, hash: u64) -> Option<(u32, Side)> {
        let entries = &self.entries.0;
        let val = self.index.find(hash, |val| {
            let c = &entries[(val >> 1) as usize];
            if val & 1 == 0 {
                c.client_key() == *key
            } else {
                c.server_key() == *key
            }
        })?;
        let side = if val & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        Some((val >> 1, side))
    }

    #[inline]
    pub fn get(&self, i: u32) -> &Conn<A> {
        &self.entries.0[i as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn<A> {
        &mut self.entries.0[i as usize]
    }

    /// Adds `conn` (its `expires` set), indexing it by its client key,
    /// whose hash the caller has already computed (`hash`), and, with the
    /// `REVERSE` flag, by its server key, unless that key is taken. The
    /// caller has checked that no live connection has the client key.
    pub fn insert(&mut self, mut conn: Conn<A>, hash: u64) -> Result<u32, InsertError> {
        debug_assert_eq!(hash, self.hash(&conn.client_key()));
        let reverse = conn.has(flags::REVERSE);
        let server_hash = if reverse {
            let sk = conn.server_key();
            let h = self.hasher.hash(&sk);
            if self.lookup(&sk, h).is_some() {
                return Err(InsertError::Collision);
            }
            h
        } else {
            0
        };
        let i = self.free;
        if i == NIL {
            return Err(InsertError::Full);
        }
        self.free = self.entries.0[i as usize].links.next;
        conn.flags |= flags::LIVE;
        let at = conn.expires;
        self.entries.0[i as usize] = conn;
        self.index.insert(hash, i << 1);
        if reverse {
            self.index.insert(server_hash, i << 1 | 1);
        }
        self.wheel.schedule(&mut self.entries, i, at);
        self.len += 1;
        if conn.is_unreplied() {
            self.unreplied += 1;
            let mask = self.order.len() as u32 - 1;
            if self.order_tail.wrapping_sub(self.order_head) > mask {
                self.order_head = self.order_head.wrapping_add(1);
            }
            self.order[(self.order_tail & mask) as usize] = i;
            self.order_tail = self.order_tail.wrapping_add(1);
        }
        Ok(i)
    }

    /// Sets connection `i` to expire at tick `at`.
    #[inline]
    pub fn set_expires(&mut self, i: u32, at: u32) {
        self.entries.0[i as usize].expires = at;
        self.wheel.reschedule(&mut self.entries, i, at);
    }

    /// Frees connection `i` at once (the caller updates any counters).
    pub fn remove(&mut self, i: u32) {
        self.wheel.unlink(&mut self.entries, i);
        self.release(i);
    }

    /// Takes entry `i` out of the index: lookups no longer find it, but it
    /// stays live (and on the wheel) until removed or expired.
    pub fn unhash(&mut self, i: u32) {
        let c = self.entries.0[i as usize];
        if !c.has(flags::UNHASHED) {
            self.unindex(i, &c);
            self.entries.0[i as usize].flags |= flags::UNHASHED;
        }
    }

    fn unindex(&mut self, i: u32, c: &Conn<A>) {
        self.index.remove(self.hasher.hash(&c.client_key()), i << 1);
        if c.has(flags::REVERSE) {
            self.index
                .remove(self.hasher.hash(&c.server_key()), i << 1 | 1);
        }
    }

    /// Makes connection `i` one that template `t` controls.
    pub fn set_control(&mut self, i: u32, t: u32) {
        debug_assert!(self.entries.0[t as usize].kind() == Kind::Template);
        self.entries.0[i as usize].control = t + 1;
        self.entries.0[t as usize].control += 1;
    }

    fn release(&mut self, i: u32) {
        let c = self.entries.0[i as usize];
        debug_assert!(c.is_live());
        if !c.has(flags::UNHASHED) {
            self.unindex(i, &c);
        }
        if c.is_controlled() {
            // A template outlives the connections it controls, so its
            // index is still its own.
            let t = &mut self.entries.0[c.control as usize - 1];
            debug_assert!(t.kind() == Kind::Template && t.control > 0);
            t.control -= 1;
        }
        if c.is_unreplied() {
            self.unreplied -= 1;
        }
        let e = &mut self.entries.0[i as usize];
        e.flags = 0;
        e.state = 0;
        e.links.next = self.free;
        self.free = i;
        self.len -= 1;
    }

    /// Reaps connections expired by tick `now`, examining at most `budget`
    /// entries. `on_expire` sees each due entry and either lets it go
    /// (`None`) or keeps it until a later tick (`Some(at)`: a template that
    /// still controls connections is re-armed, as IPVS does). Returns how
    /// many it freed. Call it between batches: the work is amortised and
    /// bounded, never a scan of the table.
    pub fn expire(
        &mut self,
        now: u32,
        budget: usize,
        mut on_expire: impl FnMut(&Conn<A>) -> Option<u32>,
    ) -> usize {
        let mut reaped: [u32; 64] = [NIL; 64];
        let mut total = 0;
        let mut left = budget;
        // The wheel hands out unlinked entries; release them in chunks so
        // the index is not touched while the wheel walks its lists.
        while left > 0 {
            let mut n = 0;
            let chunk = left.min(reaped.len());
            self.wheel.advance(&mut self.entries, now, chunk, |i| {
                reaped[n] = i;
                n += 1;
            });
            for &i in &reaped[..n] {
                match on_expire(&self.entries.0[i as usize]) {
                    Some(at) if at > now => {
                        self.entries.0[i as usize].expires = at;
                        self.wheel.schedule(&mut self.entries, i, at);
                    }
                    _ => {
                        self.release(i);
                        total += 1;
                    }
                }
            }
            left -= chunk;
            if self.wheel.caught_up(now) {
                break;
            }
        }
        total
    }

    /// Live connections, for listing (`ipvsadm -L -c`). Not for the packet
    /// path: it walks the whole entry array.
    pub fn iter(&self) -> impl Iterator<Item = &Conn<A>> {
        self.entries.0.iter().filter(|c| c.is_live())
    }

    /// Entry slots, live or free: the positions [`ConnTable::live_in`]
    /// takes.
    pub fn slots(&self) -> usize {
        self.entries.0.len()
    }

    /// Live connections in entry slots `range` (clamped to the table), for
    /// listing a large table a slice at a time. An entry keeps its slot for
    /// its whole life, so slices taken in order over the whole range list
    /// each connection that lives throughout exactly once.
    /// Each comes with its slot.
    pub fn live_in(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, &Conn<A>)> {
        let n = self.entries.0.len();
        let range = range.start.min(n)..range.end.min(n);
        let start = range.start;
        self.entries.0[range]
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_live())
            .map(move |(i, c)| (start + i, c))
    }
}

#[cfg(test)]
mod tests;
