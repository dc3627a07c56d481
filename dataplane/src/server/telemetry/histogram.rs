//! The per-window service-time histogram the dispatcher records into once per completion.
//!
//! The same log-linear layout as an HDR histogram of 2 significant digits (128 linear
//! sub-buckets per power of two above 256 ns, exact below: at most 1/128 = 0.8 % relative error;
//! 0 to [`MAX_RECORDED_NS`] in 3 899 `u32` counters), but a record is only an index and an
//! add: no minimum, maximum or total count kept up to date per value, no error path. It costs
//! the dispatcher about half of what `hdrhistogram`'s `saturating_record` does
//! (`benches/telemetry.rs`). Quantiles are computed by the telemetry writer, off the
//! dispatcher, by a walk over the counters, and answer as HDR's `value_at_quantile` does (the
//! highest value equivalent to the bucket's). Tested below against `hdrhistogram`.

use crate::server::stages::MAX_RECORDED_NS;

/// Bits of linear resolution per power of two: 2^7 = 128 sub-buckets, HDR's count for 2
/// significant digits.
const SUB_BUCKET_BITS: u32 = 7;
/// Values below this are counted exactly (HDR's first bucket: 2 × 128).
const EXACT_BELOW: u64 = 2 << SUB_BUCKET_BITS;
/// Counters: the index of [`MAX_RECORDED_NS`] plus one.
pub(crate) const SERVICE_COUNTERS: usize = index_of(MAX_RECORDED_NS) + 1;

/// The counter of `value_ns` (at most [`MAX_RECORDED_NS`]): `value_ns` itself below
/// [`EXACT_BELOW`], then 128 counters per power of two, branch-free.
#[inline]
const fn index_of(value_ns: u64) -> usize {
    let msb = 63 - (value_ns | 1).leading_zeros();
    // Halvings that bring the value below EXACT_BELOW (0 for the exact range).
    let shift = msb.saturating_sub(SUB_BUCKET_BITS);
    ((shift as usize) << SUB_BUCKET_BITS) + (value_ns >> shift) as usize
}

/// The highest value counted by counter `index`.
fn highest_value_of(index: usize) -> u64 {
    let sub_buckets = 1usize << SUB_BUCKET_BITS;
    if (index as u64) < EXACT_BELOW {
        return index as u64;
    }
    // Index = shift·128 + (value >> shift), with (value >> shift) in [128, 256).
    let shift = (index >> SUB_BUCKET_BITS) - 1;
    let top = ((index & (sub_buckets - 1)) + sub_buckets) as u64;
    ((top + 1) << shift) - 1
}

/// Service times of one type over one window: counts per log-linear bucket.
#[derive(Clone, Debug)]
pub(crate) struct ServiceHistogram {
    counts: Box<[u32]>,
}

impl Default for ServiceHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; SERVICE_COUNTERS].into_boxed_slice(),
        }
    }
}

impl ServiceHistogram {
    /// Counts one service time (values above [`MAX_RECORDED_NS`] count as it; a counter that
    /// has reached `u32::MAX` in one window stays there).
    #[inline]
    pub(crate) fn record(&mut self, service_ns: u64) {
        let index = index_of(service_ns.min(MAX_RECORDED_NS));
        if let Some(count) = self.counts.get_mut(index) {
            *count = count.saturating_add(1);
        }
    }

    /// Values counted.
    pub(crate) fn len(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The value at quantile `q` (0–1): the highest value of the bucket where the count
    /// reaches `q` of the total, as HDR's `value_at_quantile`; 0 when empty.
    pub(crate) fn value_at_quantile(&self, q: f64) -> u64 {
        let total = self.len();
        if total == 0 {
            return 0;
        }
        // The rank HDR uses: at least the first value.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return highest_value_of(index);
            }
        }
        highest_value_of(self.counts.len() - 1)
    }

    /// Empties it (the writer, off the dispatcher).
    pub(crate) fn reset(&mut self) {
        self.counts.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    #[test]
    fn the_layout_is_hdr_of_two_significant_digits() {
        assert_eq!(SERVICE_COUNTERS, 3_899, "the count the docs give");
        let hdr = Histogram::<u32>::new_with_bounds(1, MAX_RECORDED_NS, 2).expect("bounds");
        // HDR rounds its last bucket up to whole: 3 968.
        assert!(SERVICE_COUNTERS <= hdr.distinct_values());
        // Same bucket boundaries: every value's bucket tops out where HDR's does.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for v in (0..5_000u64).chain((0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % MAX_RECORDED_NS
        })) {
            let top = highest_value_of(index_of(v));
            assert!(top >= v, "{v} above its bucket's top {top}");
            if v > 0 {
                assert_eq!(top, hdr.highest_equivalent(v), "bucket of {v}");
            }
        }
    }

    #[test]
    fn indices_are_contiguous_and_increasing() {
        let mut last = 0;
        for v in 1..200_000u64 {
            let i = index_of(v);
            assert!(i == last || i == last + 1, "{v}: index {i} after {last}");
            last = i;
        }
        assert_eq!(index_of(MAX_RECORDED_NS), SERVICE_COUNTERS - 1);
    }

    #[test]
    fn quantiles_answer_as_hdr_does() {
        let mut ours = ServiceHistogram::default();
        let mut hdr = Histogram::<u32>::new_with_bounds(1, MAX_RECORDED_NS, 2).expect("bounds");
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 200 + x % 2_000_000;
            ours.record(v);
            hdr.record(v).expect("in range");
        }
        assert_eq!(ours.len(), hdr.len());
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(ours.value_at_quantile(q), hdr.value_at_quantile(q), "q {q}");
        }
    }

    #[test]
    fn out_of_range_values_saturate_and_reset_empties() {
        let mut h = ServiceHistogram::default();
        assert_eq!(h.value_at_quantile(0.5), 0, "empty");
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.len(), 2);
        assert_eq!(h.value_at_quantile(0.0), 0);
        assert!(h.value_at_quantile(1.0) >= MAX_RECORDED_NS);
        h.reset();
        assert_eq!(h.len(), 0);
    }
}
