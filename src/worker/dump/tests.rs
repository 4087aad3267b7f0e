//! A large table listed a slice at a time while its worker keeps taking
//! rounds.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::conn::{FlowKey, NewConn};
use crate::dest::{DestRef, Forward};
use crate::service::ServiceTable;
use crate::worker::{ConnListing, Shared};

/// A table with `n` connections of worker `w` (client 198.18.w.x:port).
fn table(w: u8, n: u32) -> ConnTable<Ipv4Addr> {
    let mut t = ConnTable::new(n + n / 2 + 1, 0);
    for i in 0..n {
        let key = FlowKey {
            proto: PROTO_TCP,
            saddr: Ipv4Addr::new(198, 18, w, (i >> 16) as u8),
            sport: i as u16,
            daddr: Ipv4Addr::new(198, 18, 1, 1),
            dport: 80,
        };
        let c = Conn::connection(&NewConn {
            key,
            daddr: Ipv4Addr::new(198, 18, 2, 11),
            dport: 80,
            fwd: Forward::Dr,
            dest: DestRef::new(0, 1),
            in_port: 0,
            client_mac: [0; 6],
            expires: 900,
        });
        let h = t.hash(&c.client_key());
        t.insert(c, h).expect("room");
    }
    t
}

#[test]
fn a_large_table_lists_completely_a_bounded_slice_per_round() {
    const WORKERS: u8 = 2;
    const PER_WORKER: u32 = 100_000;
    let snap = ServiceTable::new(Vec::new(), None, Default::default()).snapshot();
    let shared = Arc::new(Shared::new(Arc::new(snap), &[vec![0], vec![0]]));
    // Simulated workers: each answers at most one slice per round, and
    // counts its rounds and the largest slice it produced.
    let ready = Arc::new(std::sync::Barrier::new(usize::from(WORKERS) + 1));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let shared = Arc::clone(&shared);
            let ready = Arc::clone(&ready);
            std::thread::spawn(move || {
                let t = table(w, PER_WORKER);
                ready.wait();
                let (mut rounds, mut answers, mut largest) = (0u64, 0u64, 0usize);
                while !shared.stop.load(Ordering::Relaxed) {
                    let d = &shared.dumps[usize::from(w)];
                    if d.requested.load(Ordering::Acquire) {
                        d.answer(&t, 0);
                        answers += 1;
                        // Peek at the slice's size without taking it.
                        largest =
                            largest.max(d.lock().answer.as_ref().map_or(0, |a| a.entries.len()));
                    }
                    rounds += 1;
                    std::thread::yield_now();
                }
                (rounds, answers, largest, t.slots())
            })
        })
        .collect();

    ready.wait();
    let mut listing = ConnListing::start(&shared, Duration::from_secs(60)).unwrap();
    // One listing at a time: the cursors are its.
    assert!(ConnListing::start(&shared, Duration::from_secs(30)).is_none());
    let mut seen = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (entries, done) = listing.poll(std::time::Instant::now());
        // At most one slice per worker arrives per poll.
        assert!(entries.len() <= usize::from(WORKERS) * SLICE);
        for e in entries {
            assert!(seen.insert(e.client), "{} listed twice", e.client);
            assert_eq!((e.state, e.expires), ("NONE", 900));
        }
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the listing never ended"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    assert_eq!(listing.skipped(), 0);
    shared.stop.store(true, Ordering::Relaxed);
    assert_eq!(seen.len(), usize::from(WORKERS) * PER_WORKER as usize);
    for w in workers {
        let (rounds, answers, largest, slots) = w.join().unwrap();
        // The worker kept taking rounds, one slice per answer, each slice
        // bounded, and as many slices as its slots need.
        assert!(largest <= SLICE);
        let full = (PER_WORKER as usize).div_ceil(SLICE);
        assert!(answers as usize >= full, "{answers} slices");
        assert!(
            answers as usize <= full + slots.div_ceil(SLICE_SLOTS),
            "{answers} slices"
        );
        assert!(rounds >= answers);
    }
    // Once it ends, the next listing may start.
    drop(listing);
    assert!(ConnListing::start(&shared, Duration::from_secs(1)).is_some());
}

#[test]
fn a_worker_that_does_not_answer_is_left_out() {
    let snap = ServiceTable::new(Vec::new(), None, Default::default()).snapshot();
    let shared = Arc::new(Shared::new(Arc::new(snap), &[vec![0]]));
    let entries = ConnListing::collect(&shared, Duration::from_millis(20)).unwrap();
    assert!(entries.is_empty());
    assert!(!shared.dumps[0].requested.load(Ordering::Relaxed));
}
