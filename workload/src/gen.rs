//! Per-request samplers: request type, inter-arrival gap, service time.
//!
//! Everything is built once per phase (the only allocations) and then sampled with a caller-owned
//! RNG (`rand::rngs::StdRng` seeded with `seed_from_u64` for reproducible runs), so the same seed
//! gives the same request sequence in the simulator and the client. Sampling allocates nothing.
//!
//! Tested below: empirical means of every distribution and of the gaps, and the picker's
//! empirical ratios, against their configured values.

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use crate::spec::{ArrivalProcess, Phase, ServiceDist, NS_PER_S};
use crate::stats::round_to_u64;

/// Picks a type index of a phase with probability equal to its ratio (cumulative-ratio walk,
/// like the original client, docs/design.md §5.2).
#[derive(Clone, Debug)]
pub struct TypePicker {
    cumulative: Vec<f64>,
    last_nonzero: usize,
}

impl TypePicker {
    /// Builds the cumulative table of `phase`'s ratios.
    pub fn new(phase: &Phase) -> Self {
        Self::from_ratios(phase.types.iter().map(|t| t.ratio))
    }

    /// Builds the cumulative table from raw ratios (validated to sum to 1 by the caller).
    pub fn from_ratios(ratios: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let mut last_nonzero = 0;
        let cumulative = ratios
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                if r > 0.0 {
                    last_nonzero = i;
                }
                acc += r;
                acc
            })
            .collect();
        Self {
            cumulative,
            last_nonzero,
        }
    }

    /// A type index in `0..types`. Types with ratio 0 are never picked.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        // A handful of types: a linear walk beats a binary search.
        for (i, &c) in self.cumulative.iter().enumerate() {
            if u < c {
                return i;
            }
        }
        // Only reachable when the ratios sum to slightly less than 1 (rounding).
        self.last_nonzero
    }
}

/// Draws inter-arrival gaps (ns) for an offered rate.
#[derive(Copy, Clone, Debug)]
pub enum InterArrivalSampler {
    /// Exponential gaps (Poisson arrivals).
    Poisson(Exp<f64>),
    /// A fixed gap.
    Uniform(f64),
}

impl InterArrivalSampler {
    /// Gaps for `rate_rps` requests per second; `None` if the rate is not finite and positive.
    pub fn new(arrival: ArrivalProcess, rate_rps: f64) -> Option<Self> {
        if !(rate_rps.is_finite() && rate_rps > 0.0) {
            return None;
        }
        let mean_gap_ns = NS_PER_S / rate_rps;
        Some(match arrival {
            ArrivalProcess::Poisson => Self::Poisson(Exp::new(1.0 / mean_gap_ns).ok()?),
            ArrivalProcess::Uniform => Self::Uniform(mean_gap_ns),
        })
    }

    /// The next gap in ns (fractional: accumulate in `f64` to avoid truncation bias).
    #[inline]
    pub fn sample_ns<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Self::Poisson(exp) => exp.sample(rng),
            Self::Uniform(gap) => *gap,
        }
    }
}

/// Draws service times (ns) of one type.
#[derive(Copy, Clone, Debug)]
pub enum ServiceSampler {
    /// Always the mean.
    Fixed(u64),
    /// Exponential.
    Exponential(Exp<f64>),
    /// Lognormal.
    Lognormal(LogNormal<f64>),
    /// Two values.
    Bimodal {
        /// Common value.
        low_ns: f64,
        /// Rare value.
        high_ns: f64,
        /// Probability of `high_ns`.
        p_high: f64,
    },
}

impl ServiceSampler {
    /// A sampler of `dist` with mean `mean_ns`; `None` if the parameters are invalid (a
    /// validated [`crate::Workload`] never has invalid ones).
    pub fn new(dist: ServiceDist, mean_ns: f64) -> Option<Self> {
        if !(mean_ns.is_finite() && mean_ns > 0.0) {
            return None;
        }
        Some(match dist {
            ServiceDist::Fixed => Self::Fixed(mean_ns.round() as u64),
            ServiceDist::Exponential => Self::Exponential(Exp::new(1.0 / mean_ns).ok()?),
            ServiceDist::Lognormal { sigma } => {
                let mu = mean_ns.ln() - sigma * sigma / 2.0;
                Self::Lognormal(LogNormal::new(mu, sigma).ok()?)
            }
            ServiceDist::Bimodal {
                low_ns,
                high_ns,
                p_high,
            } => Self::Bimodal {
                low_ns,
                high_ns,
                p_high,
            },
        })
    }

    /// The next service time in ns, rounded to the nearest ns.
    #[inline]
    pub fn sample_ns<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            Self::Fixed(ns) => *ns,
            Self::Exponential(d) => round_to_u64(d.sample(rng)),
            Self::Lognormal(d) => round_to_u64(d.sample(rng)),
            Self::Bimodal {
                low_ns,
                high_ns,
                p_high,
            } => {
                let u: f64 = rng.random();
                round_to_u64(if u < *p_high { *high_ns } else { *low_ns })
            }
        }
    }
}

/// One generated request.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Sampled {
    /// Type index within the phase.
    pub ty: usize,
    /// Its class ([`crate::Workload::classes`] index).
    pub class: usize,
    /// Gap since the previous arrival (ns).
    pub gap_ns: f64,
    /// Service time (ns).
    pub service_ns: u64,
}

/// All samplers of one phase at one offered rate.
#[derive(Clone, Debug)]
pub struct PhaseGenerator {
    picker: TypePicker,
    services: Vec<ServiceSampler>,
    classes: Vec<usize>,
    means_ns: Vec<f64>,
    gaps: InterArrivalSampler,
}

impl PhaseGenerator {
    /// Samplers for `phase` at `rate_rps`; `None` if the rate is not finite and positive.
    pub fn new(phase: &Phase, rate_rps: f64) -> Option<Self> {
        let services = phase
            .types
            .iter()
            .map(|t| ServiceSampler::new(t.service, t.mean_ns))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            picker: TypePicker::new(phase),
            services,
            classes: phase.types.iter().map(|t| t.class).collect(),
            means_ns: phase.types.iter().map(|t| t.mean_ns).collect(),
            gaps: InterArrivalSampler::new(phase.arrival, rate_rps)?,
        })
    }

    /// The next request: type, gap and service time, in that draw order.
    #[inline]
    pub fn next<R: Rng + ?Sized>(&self, rng: &mut R) -> Sampled {
        let ty = self.picker.pick(rng);
        let gap_ns = self.gaps.sample_ns(rng);
        let service_ns = self.services[ty].sample_ns(rng);
        Sampled {
            ty,
            class: self.classes[ty],
            gap_ns,
            service_ns,
        }
    }

    /// The configured mean (ns) of the phase's type `ty` (the slowdown normaliser).
    #[inline]
    pub fn mean_ns(&self, ty: usize) -> f64 {
        self.means_ns[ty]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Workload;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const SAMPLES: usize = 200_000;

    fn mean_of(s: &ServiceSampler, rng: &mut StdRng) -> f64 {
        (0..SAMPLES).map(|_| s.sample_ns(rng) as f64).sum::<f64>() / SAMPLES as f64
    }

    #[test]
    fn every_distribution_has_the_configured_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let mean = 10_000.0;
        for dist in [
            ServiceDist::Fixed,
            ServiceDist::Exponential,
            ServiceDist::Lognormal { sigma: 1.0 },
            ServiceDist::Bimodal {
                low_ns: 5_000.0,
                high_ns: 55_000.0,
                p_high: 0.1,
            },
        ] {
            let s = ServiceSampler::new(dist, mean).unwrap();
            let m = mean_of(&s, &mut rng);
            assert!((m - mean).abs() < 0.03 * mean, "{dist}: mean {m}");
        }
    }

    #[test]
    fn picker_follows_ratios_and_gaps_follow_rate() {
        let w = Workload::from_yaml_str(
            "t",
            "- {mean_ns: [1000, 100000, 5], ratios: [.7, .3, 0], rtype: [SHORT, LONG, GET], duration: 1}",
        )
        .unwrap();
        let g = PhaseGenerator::new(&w.phases[0], 1e6).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0usize; 3];
        let mut gaps = 0.0;
        for _ in 0..SAMPLES {
            let s = g.next(&mut rng);
            counts[s.ty] += 1;
            gaps += s.gap_ns;
        }
        let short = counts[0] as f64 / SAMPLES as f64;
        assert!((short - 0.7).abs() < 0.01, "short share {short}");
        assert_eq!(counts[2], 0);
        let mean_gap = gaps / SAMPLES as f64;
        assert!((mean_gap - 1000.0).abs() < 20.0, "mean gap {mean_gap}");
    }

    #[test]
    fn invalid_rates_are_refused() {
        assert!(InterArrivalSampler::new(ArrivalProcess::Poisson, 0.0).is_none());
        assert!(InterArrivalSampler::new(ArrivalProcess::Uniform, f64::NAN).is_none());
    }
}
