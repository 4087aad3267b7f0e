use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;

fn key(n: u32) -> FlowKey<Ipv4Addr> {
    FlowKey {
        proto: 6,
        saddr: Ipv4Addr::from_bits(0xc612_0000 | (n >> 16)),
        sport: n as u16,
        daddr: Ipv4Addr::new(198, 18, 1, 1),
        dport: 80,
    }
}

fn conn(n: u32, expires: u32, nat: bool) -> Conn<Ipv4Addr> {
    let k = key(n);
    Conn {
        caddr: k.saddr,
        cport: k.sport,
        vaddr: k.daddr,
        vport: k.dport,
        daddr: Ipv4Addr::new(198, 18, 2, 11),
        dport: 8080,
        key_proto: 6,
        flags: if nat {
            flags::REVERSE
        } else {
            flags::NO_OUTPUT
        },
        expires,
        ..Conn::default()
    }
}

/// Inserts `c` under its client key's hash, as the pipeline does.
fn add(t: &mut ConnTable<Ipv4Addr>, c: Conn<Ipv4Addr>) -> Result<u32, InsertError> {
    let h = t.hash(&c.client_key());
    t.insert(c, h)
}

fn find(t: &ConnTable<Ipv4Addr>, k: &FlowKey<Ipv4Addr>) -> Option<(u32, Side)> {
    t.lookup(k, t.hash(k))
}

#[test]
fn entry_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<Conn<Ipv4Addr>>(), 64);
}

#[test]
fn memory_per_connection() {
    let t = ConnTable::<Ipv4Addr>::new(1 << 20, 0);
    let per = t.memory() as f64 / f64::from(t.capacity());
    println!("connection table: {per:.1} bytes per connection (entry 64 + index + wheel)");
    assert!(per <= 128.0, "{per} bytes per connection");
}

#[test]
fn memory_per_ipv6_connection() {
    // Measured 164 (entry 128 + index + wheel): above issue 16's goal of
    // 128; this bound only keeps it from growing until the entry shrinks.
    let t = ConnTable::<std::net::Ipv6Addr>::new(1 << 20, 0);
    let per = t.memory() as f64 / f64::from(t.capacity());
    let entry = std::mem::size_of::<Conn<std::net::Ipv6Addr>>();
    println!("IPv6 connection table: {per:.1} bytes per connection (entry {entry})");
    assert!(per <= 168.0, "{per} bytes per IPv6 connection");
}

#[test]
fn both_sides_of_a_nat_connection() {
    let mut t = ConnTable::new(16, 0);
    let i = add(&mut t, conn(1, 10, true)).unwrap();
    let c = *t.get(i);
    assert_eq!(find(&t, &c.client_key()), Some((i, Side::Client)));
    assert_eq!(find(&t, &c.server_key()), Some((i, Side::Server)));
    let j = add(&mut t, conn(2, 10, false)).unwrap();
    let d = *t.get(j);
    assert_eq!(find(&t, &d.client_key()), Some((j, Side::Client)));
    assert_eq!(
        find(&t, &d.server_key()),
        None,
        "DR is not indexed by reply"
    );
    t.remove(i);
    assert_eq!(find(&t, &c.client_key()), None);
    assert_eq!(find(&t, &c.server_key()), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn nat_reply_tuple_taken_is_refused() {
    let mut t = ConnTable::new(16, 0);
    let a = add(&mut t, conn(1, 10, true)).unwrap();
    // Another client key whose reply 5-tuple is the same.
    let mut c = conn(1, 10, true);
    c.vaddr = Ipv4Addr::new(198, 18, 1, 9);
    assert_eq!(add(&mut t, c), Err(InsertError::Collision));
    assert_eq!(t.len(), 1);
    assert_eq!(find(&t, &t.get(a).server_key()), Some((a, Side::Server)));
}

#[test]
fn full_table_refuses_new_and_keeps_old() {
    let mut t = ConnTable::new(4, 0);
    let ids: Vec<_> = (0..4)
        .map(|n| add(&mut t, conn(n, 100, true)).unwrap())
        .collect();
    assert_eq!(add(&mut t, conn(9, 100, true)), Err(InsertError::Full));
    for (n, &i) in ids.iter().enumerate() {
        assert_eq!(find(&t, &key(n as u32)), Some((i, Side::Client)));
    }
    t.remove(ids[2]);
    assert!(add(&mut t, conn(9, 100, true)).is_ok());
}

#[test]
fn expires_on_time_not_before() {
    let mut t = ConnTable::new(8, 0);
    let a = add(&mut t, conn(1, 5, false)).unwrap();
    add(&mut t, conn(2, 7, false)).unwrap();
    let mut seen = Vec::new();
    assert_eq!(
        t.expire(4, 100, |c| {
            seen.push(c.cport);
            None
        }),
        0
    );
    // Refreshed: now due at 2000 (more than a turn of the wheel away).
    t.set_expires(a, 2000);
    assert_eq!(
        t.expire(7, 100, |c| {
            seen.push(c.cport);
            None
        }),
        1
    );
    assert_eq!(seen, vec![2]);
    assert_eq!(t.expire(1999, 100, |_| None), 0);
    assert_eq!(
        t.expire(2000, 100, |c| {
            seen.push(c.cport);
            None
        }),
        1
    );
    assert_eq!(seen, vec![2, 1]);
    assert!(t.is_empty());
}

#[test]
fn shortened_timeout_frees_early() {
    let mut t = ConnTable::new(8, 0);
    let a = add(&mut t, conn(1, 900, false)).unwrap();
    t.set_expires(a, 10); // ESTABLISHED → CLOSE
    assert_eq!(t.expire(10, 100, |_| None), 1);
}

#[test]
fn budget_bounds_the_work() {
    let mut t = ConnTable::new(1000, 0);
    for n in 0..1000 {
        add(&mut t, conn(n, 3, false)).unwrap();
    }
    assert_eq!(t.expire(3, 100, |_| None), 100);
    assert_eq!(t.len(), 900);
    assert_eq!(t.expire(3, 10_000, |_| None), 900);
}

#[test]
fn clock_jump_catches_up() {
    let mut t = ConnTable::new(8, 0);
    add(&mut t, conn(1, 5, false)).unwrap();
    add(&mut t, conn(2, 500_000, false)).unwrap();
    assert_eq!(t.expire(100_000, 100, |_| None), 1);
    assert_eq!(t.expire(500_000, 100, |_| None), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u32),
    Touch(u32, u32),
    Remove(u32),
    Tick(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..64, 1u32..1500).prop_map(|(k, t)| Op::Insert(k, t)),
        (0u32..64, 1u32..1500).prop_map(|(k, t)| Op::Touch(k, t)),
        (0u32..64).prop_map(Op::Remove),
        (0u32..400).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Against a model: after `expire(now)` with enough budget, exactly the
    /// connections whose expiry is later than `now` remain, each findable
    /// from both sides.
    #[test]
    fn matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = ConnTable::new(32, 0);
        let mut model: HashMap<u32, (u32, u32)> = HashMap::new(); // key → (index, expires)
        let mut now = 0u32;
        for op in ops {
            match op {
                Op::Insert(k, ttl) if !model.contains_key(&k) => {
                    match add(&mut t, conn(k, now + ttl, k % 2 == 0)) {
                        Ok(i) => { model.insert(k, (i, now + ttl)); }
                        Err(InsertError::Full) => prop_assert_eq!(model.len(), 32),
                        Err(InsertError::Collision) => prop_assert!(false, "distinct keys collided"),
                    }
                }
                Op::Insert(..) => {}
                Op::Touch(k, ttl) => if let Some(e) = model.get_mut(&k) {
                    t.set_expires(e.0, now + ttl);
                    e.1 = now + ttl;
                },
                Op::Remove(k) => if let Some((i, _)) = model.remove(&k) {
                    t.remove(i);
                },
                Op::Tick(d) => {
                    now += d;
                    let mut gone = Vec::new();
                    t.expire(now, usize::MAX, |c| { gone.push(u32::from(c.cport)); None });
                    let mut due: Vec<u32> = model.iter().filter(|e| e.1.1 <= now).map(|e| *e.0).collect();
                    due.sort_unstable();
                    gone.sort_unstable();
                    prop_assert_eq!(&gone, &due);
                    model.retain(|_, e| e.1 > now);
                }
            }
            prop_assert_eq!(t.len() as usize, model.len());
            for (&k, &(i, _)) in &model {
                let c = *t.get(i);
                prop_assert_eq!(find(&t, &key(k)), Some((i, Side::Client)));
                if k % 2 == 0 {
                    prop_assert_eq!(find(&t, &c.server_key()), Some((i, Side::Server)));
                }
            }
        }
    }
}

#[test]
fn unreplied_connections_are_counted_and_only_they_are_picked() {
    let mut t = ConnTable::<Ipv4Addr>::new(64, 0);
    let ids: Vec<u32> = (0..40)
        .map(|n| add(&mut t, conn(n, 100, n % 2 == 0)).unwrap())
        .collect();
    assert_eq!(t.unreplied(), 40);
    for &i in &ids[..30] {
        t.confirm(i);
        t.confirm(i);
    }
    assert_eq!(t.unreplied(), 10);
    assert!(t.get(ids[0]).is_confirmed() && !t.get(ids[35]).is_confirmed());
    for _ in 0..1000 {
        if let Some(i) = t.pick_unreplied(64, 4) {
            assert!(ids[30..].contains(&i), "picked confirmed or free entry {i}");
        }
    }
    // Removal and expiry keep the count.
    t.remove(ids[35]);
    t.remove(ids[0]);
    assert_eq!(t.unreplied(), 9);
    assert_eq!(t.expire(100, 1000, |_| None), 38);
    assert_eq!((t.len(), t.unreplied()), (0, 0));
    assert_eq!(t.pick_unreplied(64, 4), None);
    // A reused entry starts unreplied again.
    let i = add(&mut t, conn(7, 200, false)).unwrap();
    assert!(!t.get(i).is_confirmed());
    assert_eq!(t.unreplied(), 1);
    assert!(t.caught_up(100) && !t.caught_up(200));
}

#[test]
fn eviction_prefers_the_longest_idle_of_its_choices() {
    let mut t = ConnTable::<Ipv4Addr>::new(64, 0);
    // 63 old unreplied connections and one just opened.
    for n in 0..63 {
        add(&mut t, conn(n, 10, false)).unwrap();
    }
    let fresh = add(&mut t, conn(63, 70, false)).unwrap();
    let mut picked_fresh = 0;
    for _ in 0..10_000 {
        if t.pick_unreplied(64, 8) == Some(fresh) {
            picked_fresh += 1;
        }
    }
    // Only when all 8 choices are the fresh one: never in practice
    // (1/64^7 a pick); at random it would be about 156 of 10 000.
    assert_eq!(picked_fresh, 0);
}

#[test]
fn the_oldest_unreplied_connection_is_evicted_first() {
    let mut t = ConnTable::<Ipv4Addr>::new(16, 0);
    let ids: Vec<u32> = (0..10)
        .map(|n| add(&mut t, conn(n, 100, false)).unwrap())
        .collect();
    t.confirm(ids[0]);
    t.remove(ids[1]);
    // 0 confirmed and 1 gone are skipped: 2 is the oldest unreplied.
    assert_eq!(t.pick_oldest_unreplied(64), Some(ids[2]));
    t.remove(ids[2]);
    assert_eq!(t.pick_oldest_unreplied(64), Some(ids[3]));
    // Bounded: a ring of stale items gives up after `max`.
    for &i in &ids[3..] {
        t.confirm(i);
    }
    assert_eq!(t.pick_oldest_unreplied(2), None);
    assert_eq!(t.pick_oldest_unreplied(64), None);
    // The ring never overflows: many more insertions than its length.
    for n in 100..10_000 {
        let i = add(&mut t, conn(n, 100, false)).unwrap();
        let old = t.pick_oldest_unreplied(64).unwrap();
        t.remove(old);
        assert_eq!(t.get(i).caddr, key(n).saddr);
    }
}
