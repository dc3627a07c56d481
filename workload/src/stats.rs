//! Latency and slowdown statistics over HDR histograms.
//!
//! - Per type: a latency histogram (ns) and a slowdown histogram (latency / the type's
//!   configured mean, stored ×[`SLOWDOWN_SCALE`] as an integer), plus completed, dropped and
//!   unanswered counts.
//! - Overall: the latency histogram of all requests and the **slowdown histogram of all
//!   requests** — its p99.9 is the paper's "overall p99.9 slowdown" (the per-request slowdown
//!   across types, docs/design.md §5.6).
//! - A request that never completed (dropped, or sent and never answered) counts as +∞ in every
//!   percentile: if the rank `⌈q·(completed + dropped + unanswered)⌉` falls beyond the completed
//!   requests, the percentile is `f64::INFINITY`.
//! - Histograms keep [`SIGNIFICANT_DIGITS`] digits, start sized for [`INITIAL_MAX_NS`] and grow
//!   by themselves beyond it, so memory is flat in the number of requests. Merging adds counts
//!   exactly (merging the stats of two halves equals recording everything in one).
//!
//! Tested below: percentiles of known data, the +∞ rule, and merge exactness.

use hdrhistogram::Histogram;

use crate::spec::TypeClass;

/// Significant decimal digits kept by every histogram (0.1 % relative precision).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Slowdowns are stored ×1000 as integers (a slowdown of 1.234 is recorded as 1234).
pub const SLOWDOWN_SCALE: f64 = 1000.0;

/// Histograms are allocated for values up to 1 s (ns) and resize themselves beyond.
pub const INITIAL_MAX_NS: u64 = 1_000_000_000;

/// The percentiles every report carries.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 0.9999];

/// Errors from merging statistics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The two sides track different types.
    #[error("cannot merge statistics of types {left:?} with {right:?}")]
    TypeMismatch {
        /// This side's type names.
        left: Vec<String>,
        /// The other side's.
        right: Vec<String>,
    },
    /// A histogram could not grow to hold the other's range.
    #[error("merging histograms: {0}")]
    Histogram(String),
}

/// Percentiles of a distribution, with never-completed requests as +∞.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Percentiles {
    /// Completed requests.
    pub count: u64,
    /// Requests counted as +∞ (dropped + unanswered).
    pub infinite: u64,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// 99.99th.
    pub p9999: f64,
    /// Largest finite value.
    pub max: f64,
    /// Mean of finite values.
    pub mean: f64,
}

/// A new histogram for latencies (ns) or scaled slowdowns: [`SIGNIFICANT_DIGITS`] digits,
/// sized for [`INITIAL_MAX_NS`], auto-resizing beyond it.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (1 ≤ 2·1 ≤ INITIAL_MAX_NS, 3 digits).
    let mut h = Histogram::new_with_max(INITIAL_MAX_NS, SIGNIFICANT_DIGITS)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"));
    h.auto(true);
    h
}

#[inline]
fn record(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

/// The value at quantile `q` of `h` when `infinite` more samples sit at +∞. NaN when empty.
pub fn quantile_with_infinite(h: &Histogram<u64>, infinite: u64, q: f64, scale: f64) -> f64 {
    let finite = h.len();
    let total = finite + infinite;
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    if rank > finite {
        return f64::INFINITY;
    }
    // The middle of the bucket, like the original loader's bucket midpoints (§5.6).
    h.median_equivalent(h.value_at_quantile(rank as f64 / finite as f64)) as f64 / scale
}

/// The [`QUANTILES`], max and mean of `h` with `infinite` more samples at +∞, values divided
/// by `scale` (1 for ns, [`SLOWDOWN_SCALE`] for slowdowns). NaN fields when `h` is empty.
pub fn percentiles(h: &Histogram<u64>, infinite: u64, scale: f64) -> Percentiles {
    let q = |p| quantile_with_infinite(h, infinite, p, scale);
    Percentiles {
        count: h.len(),
        infinite,
        p50: q(QUANTILES[0]),
        p90: q(QUANTILES[1]),
        p99: q(QUANTILES[2]),
        p999: q(QUANTILES[3]),
        p9999: q(QUANTILES[4]),
        max: if h.is_empty() {
            f64::NAN
        } else {
            h.max() as f64 / scale
        },
        mean: if h.is_empty() {
            f64::NAN
        } else {
            h.mean() / scale
        },
    }
}

/// Statistics of one request type.
#[derive(Clone, Debug)]
pub struct TypeStats {
    /// Type name.
    pub name: String,
    /// Wire id.
    pub wire_id: u32,
    latency_ns: Histogram<u64>,
    slowdown_scaled: Histogram<u64>,
    /// Requests refused by the server / scheduler.
    pub dropped: u64,
    /// Requests sent and never answered.
    pub unanswered: u64,
}

impl TypeStats {
    fn new(name: &str, wire_id: u32) -> Self {
        Self {
            name: name.to_string(),
            wire_id,
            latency_ns: new_histogram(),
            slowdown_scaled: new_histogram(),
            dropped: 0,
            unanswered: 0,
        }
    }

    /// Completed requests.
    pub fn completed(&self) -> u64 {
        self.latency_ns.len()
    }

    /// Latency percentiles (ns).
    pub fn latency(&self) -> Percentiles {
        percentiles(&self.latency_ns, self.dropped + self.unanswered, 1.0)
    }

    /// Slowdown percentiles (latency / the type's mean).
    pub fn slowdown(&self) -> Percentiles {
        percentiles(
            &self.slowdown_scaled,
            self.dropped + self.unanswered,
            SLOWDOWN_SCALE,
        )
    }

    /// The raw latency histogram (ns).
    pub fn latency_histogram(&self) -> &Histogram<u64> {
        &self.latency_ns
    }

    /// The raw slowdown histogram (×[`SLOWDOWN_SCALE`]).
    pub fn slowdown_histogram(&self) -> &Histogram<u64> {
        &self.slowdown_scaled
    }
}

/// Statistics of a run: per type and overall. The overall histograms are the exact sums of
/// the per-type ones, built on demand (a request is recorded twice, not four times).
#[derive(Clone, Debug)]
pub struct RunStats {
    types: Vec<TypeStats>,
}

/// Rounds a non-negative value to the nearest integer (`as` saturates; NaN gives 0). Cheaper
/// than `f64::round`, which is a libm call on baseline x86-64.
#[inline]
pub fn round_to_u64(v: f64) -> u64 {
    (v + 0.5) as u64
}

/// The exact sum of `hists` (counts added bucket by bucket) in a [`new_histogram`].
pub fn sum_histograms<'a>(hists: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut total = new_histogram();
    for h in hists {
        // Same significant digits and auto-resize: adding cannot fail short of usize overflow.
        if total.add(h).is_err() {
            for v in h.iter_recorded() {
                total.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }
    total
}

impl RunStats {
    /// Empty statistics for `classes` (a [`crate::Workload`]'s classes).
    pub fn new(classes: &[TypeClass]) -> Self {
        Self::with_types(classes.iter().map(|c| (c.name.as_str(), c.wire_id)))
    }

    /// Empty statistics for `(name, wire_id)` pairs; the index of each pair is its class.
    pub fn with_types<'a>(types: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        Self {
            types: types
                .into_iter()
                .map(|(n, id)| TypeStats::new(n, id))
                .collect(),
        }
    }

    /// Records a completed request of class `class` with latency `latency_ns`, normalised by
    /// `mean_ns` (its type's configured mean). An out-of-range class is ignored.
    #[inline]
    pub fn record(&mut self, class: usize, latency_ns: u64, mean_ns: f64) {
        let Some(t) = self.types.get_mut(class) else {
            return;
        };
        let slowdown = round_to_u64(latency_ns as f64 * SLOWDOWN_SCALE / mean_ns);
        record(&mut t.latency_ns, latency_ns);
        record(&mut t.slowdown_scaled, slowdown);
    }

    /// Records a refused request (+∞ in percentiles).
    #[inline]
    pub fn record_drop(&mut self, class: usize) {
        if let Some(t) = self.types.get_mut(class) {
            t.dropped += 1;
        }
    }

    /// Records `n` requests that were sent and never answered (+∞ in percentiles).
    pub fn record_unanswered(&mut self, class: usize, n: u64) {
        if let Some(t) = self.types.get_mut(class) {
            t.unanswered += n;
        }
    }

    /// Per-type statistics, by class.
    pub fn types(&self) -> &[TypeStats] {
        &self.types
    }

    /// Completed requests of all types.
    pub fn completed(&self) -> u64 {
        self.types.iter().map(TypeStats::completed).sum()
    }

    /// Dropped requests of all types.
    pub fn dropped(&self) -> u64 {
        self.types.iter().map(|t| t.dropped).sum()
    }

    /// Unanswered requests of all types.
    pub fn unanswered(&self) -> u64 {
        self.types.iter().map(|t| t.unanswered).sum()
    }

    /// Latency percentiles of all requests (ns).
    pub fn latency(&self) -> Percentiles {
        percentiles(
            &self.latency_histogram(),
            self.dropped() + self.unanswered(),
            1.0,
        )
    }

    /// Overall slowdown percentiles: per-request slowdown across all types (docs/design.md §5.6).
    pub fn slowdown(&self) -> Percentiles {
        percentiles(
            &self.slowdown_histogram(),
            self.dropped() + self.unanswered(),
            SLOWDOWN_SCALE,
        )
    }

    /// The overall latency histogram (ns): the sum of the per-type ones.
    pub fn latency_histogram(&self) -> Histogram<u64> {
        sum_histograms(self.types.iter().map(|t| &t.latency_ns))
    }

    /// The overall slowdown histogram (×[`SLOWDOWN_SCALE`]): the sum of the per-type ones.
    pub fn slowdown_histogram(&self) -> Histogram<u64> {
        sum_histograms(self.types.iter().map(|t| &t.slowdown_scaled))
    }

    /// Adds `other`'s counts to `self` (exact). Both must track the same types in the same order.
    pub fn merge(&mut self, other: &RunStats) -> Result<(), StatsError> {
        let same = self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(&other.types)
                .all(|(a, b)| a.name == b.name && a.wire_id == b.wire_id);
        if !same {
            return Err(StatsError::TypeMismatch {
                left: self.types.iter().map(|t| t.name.clone()).collect(),
                right: other.types.iter().map(|t| t.name.clone()).collect(),
            });
        }
        let add = |a: &mut Histogram<u64>, b: &Histogram<u64>| {
            a.add(b)
                .map_err(|e| StatsError::Histogram(format!("{e:?}")))
        };
        for (a, b) in self.types.iter_mut().zip(&other.types) {
            add(&mut a.latency_ns, &b.latency_ns)?;
            add(&mut a.slowdown_scaled, &b.slowdown_scaled)?;
            a.dropped += b.dropped;
            a.unanswered += b.unanswered;
        }
        Ok(())
    }

    /// Clears every count, keeping the allocations.
    pub fn reset(&mut self) {
        for t in &mut self.types {
            t.latency_ns.reset();
            t.slowdown_scaled.reset();
            t.dropped = 0;
            t.unanswered = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_types() -> RunStats {
        RunStats::with_types([("SHORT", 1), ("LONG", 2)])
    }

    #[test]
    fn percentiles_of_known_data() {
        let mut s = two_types();
        for v in 1..=1000u64 {
            s.record(0, v * 1000, 1000.0);
        }
        let lat = s.types()[0].latency();
        assert_eq!(lat.count, 1000);
        // Within hdrhistogram's 3-digit precision.
        assert!((lat.p50 - 500_000.0).abs() <= 500.0, "{lat:?}");
        assert!((lat.p99 - 990_000.0).abs() <= 1000.0, "{lat:?}");
        let sd = s.slowdown();
        assert!((sd.p999 - 999.0).abs() <= 1.0, "{sd:?}");
        assert!(s.types()[1].latency().p50.is_nan());
    }

    #[test]
    fn slowdown_mixes_types_per_request() {
        let mut s = two_types();
        // 999 SHORT at slowdown 1, 1 LONG at slowdown 50: the overall p99.9 is 1, p99.99 is 50.
        for _ in 0..999 {
            s.record(0, 1000, 1000.0);
        }
        s.record(1, 5_000_000, 100_000.0);
        let sd = s.slowdown();
        assert!((sd.p999 - 1.0).abs() < 0.01, "{sd:?}");
        assert!((sd.p9999 - 50.0).abs() < 0.1, "{sd:?}");
    }

    #[test]
    fn unanswered_and_dropped_are_infinite() {
        let mut s = two_types();
        for _ in 0..998 {
            s.record(0, 1000, 1000.0);
        }
        s.record_drop(0);
        s.record_unanswered(1, 1);
        let sd = s.slowdown();
        assert_eq!(sd.infinite, 2);
        assert!((sd.p99 - 1.0).abs() < 0.01);
        assert!(sd.p999.is_infinite(), "{sd:?}");
        assert!(s.types()[1].latency().p50.is_infinite());
    }

    #[test]
    fn merge_is_exact() {
        let mut whole = two_types();
        let mut left = two_types();
        let mut right = two_types();
        for v in 0..5000u64 {
            let (class, lat) = ((v % 2) as usize, 1000 + v * 37 % 100_000);
            whole.record(class, lat, 1000.0);
            if v < 2500 {
                left.record(class, lat, 1000.0)
            } else {
                right.record(class, lat, 1000.0)
            }
        }
        right.record_drop(1);
        whole.record_drop(1);
        left.merge(&right).unwrap();
        assert_eq!(left.latency_histogram(), whole.latency_histogram());
        assert_eq!(left.slowdown_histogram(), whole.slowdown_histogram());
        assert_eq!(left.slowdown(), whole.slowdown());
        assert_eq!(left.dropped(), 1);
        let other = RunStats::with_types([("GET", 10)]);
        assert!(left.merge(&other).is_err());
    }
}
