//! The sink's accounting: which sequence numbers arrived (loss,
//! duplicates, reordering) and how long they took (latency percentiles).
//!
//! Both structures are preallocated and do no allocation per packet, so
//! the sink keeps up with the forwarder it measures. Sequence numbers are
//! one stream per generator run, so reordering is "arrived after a packet
//! with a higher number" — what a per-flow order check would also see when
//! the forwarder keeps flows on one queue, at no per-flow memory.

/// Which sequence numbers arrived, as a bitmap over `0..capacity`.
/// Numbers beyond the capacity still count as received, without
/// duplicate detection (`untracked`).
pub struct SeqTracker {
    bits: Vec<u64>,
    pub unique: u64,
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    pub untracked: u64,
    /// Highest sequence number seen, if any.
    pub max_seq: Option<u64>,
}

impl SeqTracker {
    /// A tracker for sequence numbers below `capacity` (rounded up to 64).
    pub fn new(capacity: u64) -> SeqTracker {
        SeqTracker {
            bits: vec![0; capacity.div_ceil(64) as usize],
            unique: 0,
            duplicates: 0,
            reordered: 0,
            untracked: 0,
            max_seq: None,
        }
    }

    pub fn record(&mut self, seq: u64) {
        match self.max_seq {
            Some(m) if seq < m => self.reordered += 1,
            Some(m) if seq == m => {}
            _ => self.max_seq = Some(seq),
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        match self.bits.get_mut(word) {
            Some(w) if *w & (1 << bit) != 0 => self.duplicates += 1,
            Some(w) => {
                *w |= 1 << bit;
                self.unique += 1;
            }
            None => {
                self.untracked += 1;
                self.unique += 1;
            }
        }
    }

    /// Sequence numbers below the highest one seen that never arrived:
    /// the loss the sink can see by itself (the generator's count of sent
    /// packets also catches a lost tail).
    pub fn gaps(&self) -> u64 {
        self.max_seq
            .map_or(0, |m| (m + 1).saturating_sub(self.unique))
    }
}

/// Sub-buckets per power of two: values are kept to within 1/32 (~3 %).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets up to 2^40 ns (about 18 minutes).
const BUCKETS: usize = (SUB as usize) * (40 - SUB_BITS as usize + 1);

/// A log-linear latency histogram in nanoseconds (the HDR histogram idea:
/// constant relative precision over a wide range in a fixed array).
pub struct Histogram {
    counts: Vec<u64>,
    pub count: u64,
    /// Samples whose send time lies in the future: clocks not shared, or
    /// a corrupt stamp. Not in the percentiles.
    pub negative: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            negative: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) - SUB;
    let i = SUB as usize + (e - SUB_BITS) as usize * SUB as usize + sub as usize;
    i.min(BUCKETS - 1)
}

/// The lowest value of bucket `i`, and its width.
fn bounds(i: usize) -> (u64, u64) {
    if (i as u64) < SUB {
        return (i as u64, 1);
    }
    let e = (i as u64 - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i as u64 - SUB) % SUB;
    let shift = e - u64::from(SUB_BITS);
    ((SUB + sub) << shift, 1 << shift)
}

impl Histogram {
    /// Records one packet sent at `sent_ns` and received at `now_ns`.
    pub fn record(&mut self, sent_ns: u64, now_ns: u64) {
        match now_ns.checked_sub(sent_ns) {
            Some(d) => {
                self.counts[index(d)] += 1;
                self.count += 1;
            }
            None => self.negative += 1,
        }
    }

    /// The `q`-quantile (0 < q ≤ 1) in nanoseconds, as the middle of its
    /// bucket; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = bounds(i);
                return Some(lo + w / 2);
            }
        }
        unreachable!("rank <= count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_loss_or_reordering() {
        let mut t = SeqTracker::new(1000);
        for s in 0..1000 {
            t.record(s);
        }
        assert_eq!(
            (t.unique, t.duplicates, t.reordered, t.gaps()),
            (1000, 0, 0, 0)
        );
    }

    #[test]
    fn loss_duplicates_and_reordering_are_told_apart() {
        let mut t = SeqTracker::new(128);
        // 0..10 with 3 and 7 lost, 5 late (after 6), 8 twice.
        for s in [0, 1, 2, 4, 6, 5, 8, 8, 9] {
            t.record(s);
        }
        assert_eq!(t.unique, 8);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.gaps(), 2);
        assert_eq!(t.max_seq, Some(9));
    }

    #[test]
    fn beyond_capacity_counts_without_tracking() {
        let mut t = SeqTracker::new(64);
        t.record(63);
        t.record(64);
        t.record(1_000_000);
        assert_eq!((t.unique, t.untracked), (3, 2));
    }

    #[test]
    fn buckets_tile_the_range() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (lo, w) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert_eq!(index(lo), i);
            assert_eq!(index(lo + w - 1), i);
            next = lo + w;
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        // 1..=10000 µs, uniform.
        for us in 1..=10_000u64 {
            h.record(1_000_000, 1_000_000 + us * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.035, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.035, "p99 {p99}");
        assert_eq!(h.count, 10_000);
    }

    #[test]
    fn send_times_in_the_future_are_not_latencies() {
        let mut h = Histogram::default();
        h.record(10, 5);
        assert_eq!((h.count, h.negative), (0, 1));
        assert_eq!(h.quantile(0.5), None);
    }
}
