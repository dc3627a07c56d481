//! Property tests: merging statistics is exact for any split; the type picker never picks a
//! zero-ratio type and always returns a valid index; percentiles are monotone in the quantile.

use proptest::prelude::*;
use psp_workload::{RunStats, TypePicker};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn stats() -> RunStats {
    RunStats::with_types([("SHORT", 1), ("LONG", 2), ("GET", 10)])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_of_any_split_equals_the_whole(
        samples in prop::collection::vec((0usize..3, 1u64..10_000_000, any::<bool>()), 0..300),
        drops in prop::collection::vec(0usize..3, 0..5),
    ) {
        let (mut whole, mut left, mut right) = (stats(), stats(), stats());
        for &(class, latency, to_left) in &samples {
            let mean = [1_000.0, 100_000.0, 1_500.0][class];
            whole.record(class, latency, mean);
            if to_left { left.record(class, latency, mean) } else { right.record(class, latency, mean) }
        }
        for &class in &drops {
            whole.record_drop(class);
            right.record_drop(class);
        }
        left.merge(&right).unwrap();
        prop_assert_eq!(left.latency_histogram(), whole.latency_histogram());
        prop_assert_eq!(left.slowdown_histogram(), whole.slowdown_histogram());
        prop_assert_eq!(left.completed(), samples.len() as u64);
        prop_assert_eq!(left.dropped(), drops.len() as u64);
        for (a, b) in left.types().iter().zip(whole.types()) {
            prop_assert_eq!(a.latency_histogram(), b.latency_histogram());
        }
    }

    #[test]
    fn percentiles_are_monotone(
        samples in prop::collection::vec((0usize..3, 1u64..10_000_000), 1..300),
        unanswered in 0u64..3,
    ) {
        let mut s = stats();
        for &(class, latency) in &samples {
            s.record(class, latency, 1_000.0);
        }
        s.record_unanswered(0, unanswered);
        let p = s.latency();
        let ordered = [p.p50, p.p90, p.p99, p.p999, p.p9999];
        for pair in ordered.windows(2) {
            prop_assert!(pair[0] <= pair[1], "{:?}", p);
        }
    }

    #[test]
    fn picker_returns_valid_nonzero_types(
        weights in prop::collection::vec(0u32..5, 1..8),
        seed in any::<u64>(),
    ) {
        let total: u32 = weights.iter().sum();
        prop_assume!(total > 0);
        let ratios: Vec<f64> = weights.iter().map(|&w| f64::from(w) / f64::from(total)).collect();
        let picker = TypePicker::from_ratios(ratios.iter().copied());
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let t = picker.pick(&mut rng);
            prop_assert!(t < ratios.len());
            prop_assert!(ratios[t] > 0.0, "picked type {} with ratio 0", t);
        }
    }
}
