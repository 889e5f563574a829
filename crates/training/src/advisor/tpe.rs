//! The Tree-structured Parzen Estimator advisor.
//!
//! Rather than modelling the score as a function of the knobs, TPE models
//! the knobs given the score: it splits the results at a quantile into a
//! good group and a bad group and fits a density to each, `l(x)` for the good
//! and `g(x)` for the bad. The point where `l(x) / g(x)` is highest is where
//! the expected improvement over the split is highest, so it draws candidates
//! from `l` and proposes the one with the best ratio.
//!
//! The steps, all in the unit cube of the searched knobs:
//!
//! 1. Start-up: until [`startup_trials`] trials are done or running, or while
//!    no result has a finite score, propose uniformly at random, exactly as
//!    the random advisor would with the same seed.
//! 2. Pending trials count as results at the worst observed score ("constant
//!    liar"). They always join the bad group, so `g` rises around them and the
//!    next proposal goes elsewhere: parallel workers get different proposals,
//!    and a finished trial replaces its lie with its real score.
//! 3. The best `ceil(GAMMA · n)` of the `n` real results (at least one) are
//!    good, the other results and all lies are bad. Ties keep trial order.
//! 4. Each group gets one density per knob, their product being the group's
//!    density. A float or integer knob gets a mixture of a uniform prior and
//!    one Gaussian per result, truncated to `[0, 1]`; each Gaussian's width is
//!    the larger gap to its neighbouring results, kept between a floor that
//!    narrows as results accumulate and the width of the whole range. An
//!    integer's candidates are snapped to the centre of their integer's slot,
//!    the point results sit at. A categorical knob gets its categories'
//!    frequencies in the group, smoothed by a uniform prior.
//! 5. [`CANDIDATES`] candidates are drawn from the good densities, knob by
//!    knob, and the first with the highest `ln l(x) − ln g(x)` wins.
//!
//! Every random draw comes from the seeded generator and every tie is broken
//! by order, so the proposal depends on the inputs alone.

use super::{point_of, random, value_at, SplitMix64};
use crate::knobs::{KnobConfig, KnobSpec, Knobs};

use super::Observation;

/// Fraction of the real results that form the good group.
pub const GAMMA: f64 = 0.25;
/// Candidates drawn from the good densities per proposal.
pub const CANDIDATES: usize = 24;
/// Weight of the uniform prior in every density, against one per result.
const PRIOR_WEIGHT: f64 = 1.0;
/// The narrowest a kernel gets, however many results sit close together.
const MIN_BANDWIDTH: f64 = 0.01;

/// Trials (finished with a finite score, or running) before TPE stops
/// proposing at random: one more for every two searched knobs, between 4
/// and 6. Budgets here are tens of trials, so every random start-up trial is
/// a model-guided trial lost; the uniform prior in each density keeps
/// exploring after the start-up.
pub fn startup_trials(searched: usize) -> usize {
    (searched / 2 + 2).clamp(4, 6)
}

pub(super) fn point(
    space: &KnobConfig,
    observations: &[Observation],
    pending: &[Knobs],
    rng: &mut SplitMix64,
) -> Vec<f64> {
    let searched = space.searched();
    let real: Vec<(Vec<f64>, f64)> =
        observations.iter().filter(|o| o.score.is_finite()).map(|o| (point_of(space, &o.knobs), o.score)).collect();
    if searched.is_empty() || real.is_empty() || real.len() + pending.len() < startup_trials(searched.len()) {
        return random::point(searched.len(), rng);
    }

    // Best first; the sort is stable, so equal scores keep trial order.
    let mut order: Vec<usize> = (0..real.len()).collect();
    order.sort_by(|&a, &b| real[b].1.total_cmp(&real[a].1));
    let n_good = ((GAMMA * real.len() as f64).ceil() as usize).clamp(1, real.len());
    let good: Vec<&[f64]> = order[..n_good].iter().map(|&i| real[i].0.as_slice()).collect();
    let lies: Vec<Vec<f64>> = pending.iter().map(|k| point_of(space, k)).collect();
    let bad: Vec<&[f64]> =
        order[n_good..].iter().map(|&i| real[i].0.as_slice()).chain(lies.iter().map(|p| p.as_slice())).collect();

    let dims: Vec<Dim> = searched.iter().map(|(name, spec)| Dim::of(name, spec)).collect();
    let l: Vec<Parzen> = dims.iter().enumerate().map(|(d, dim)| Parzen::fit(dim, good.iter().map(|p| p[d]))).collect();
    let g: Vec<Parzen> = dims.iter().enumerate().map(|(d, dim)| Parzen::fit(dim, bad.iter().map(|p| p[d]))).collect();

    let mut best: Option<(f64, Vec<f64>)> = None;
    for _ in 0..CANDIDATES {
        let x: Vec<f64> = dims.iter().zip(&l).map(|(dim, l)| dim.snap(l.sample(rng))).collect();
        let ratio: f64 = x.iter().zip(l.iter().zip(&g)).map(|(&u, (l, g))| l.ln_density(u) - g.ln_density(u)).sum();
        // NaN cannot arise (every density is at least its prior's share),
        // but a NaN ratio would simply never win.
        if best.as_ref().is_none_or(|(b, _)| ratio > *b) {
            best = Some((ratio, x));
        }
    }
    match best {
        Some((_, x)) => x,
        None => random::point(searched.len(), rng),
    }
}

/// How one searched knob is modelled.
enum Dim<'a> {
    Float,
    /// Snapped to slot centres through the knob's own mapping.
    Integer {
        name: &'a str,
        spec: &'a KnobSpec,
    },
    Categorical {
        choices: usize,
    },
}

impl<'a> Dim<'a> {
    fn of(name: &'a str, spec: &'a KnobSpec) -> Dim<'a> {
        match spec {
            KnobSpec::Categorical { values } if !values.is_empty() => Dim::Categorical { choices: values.len() },
            KnobSpec::Integer { .. } => Dim::Integer { name, spec },
            _ => Dim::Float,
        }
    }

    fn snap(&self, u: f64) -> f64 {
        match self {
            Dim::Float => u,
            Dim::Integer { name, spec } => match value_at(name, spec, u) {
                Some(v) => {
                    let c = spec.to_unit(&v);
                    if c.is_finite() {
                        c
                    } else {
                        u
                    }
                }
                None => u,
            },
            Dim::Categorical { choices } => (slot(u, *choices) as f64 + 0.5) / *choices as f64,
        }
    }
}

fn slot(u: f64, choices: usize) -> usize {
    ((u.clamp(0.0, 1.0) * choices as f64) as usize).min(choices - 1)
}

/// One group's density over one knob.
enum Parzen {
    Kernels(Vec<Kernel>),
    /// Probability of each category.
    Masses(Vec<f64>),
}

/// A Gaussian truncated to `[0, 1]`.
struct Kernel {
    mu: f64,
    sigma: f64,
    /// `1 / (sigma · sqrt(2π) · mass of the Gaussian inside [0, 1])`.
    scale: f64,
}

impl Kernel {
    fn new(mu: f64, sigma: f64) -> Kernel {
        let inside = normal_cdf((1.0 - mu) / sigma) - normal_cdf(-mu / sigma);
        // With mu in [0, 1] at least a third of the mass is inside; the floor
        // only guards against rounding.
        let scale = 1.0 / (sigma * (std::f64::consts::TAU).sqrt() * inside.max(1e-12));
        Kernel { mu, sigma, scale }
    }

    fn density(&self, u: f64) -> f64 {
        let z = (u - self.mu) / self.sigma;
        self.scale * (-0.5 * z * z).exp()
    }

    fn sample(&self, rng: &mut SplitMix64) -> f64 {
        for _ in 0..32 {
            let u = self.mu + self.sigma * rng.normal();
            if (0.0..=1.0).contains(&u) {
                return u;
            }
        }
        // Reached with a chance below 0.67^32; any point of the kernel will do.
        self.mu
    }
}

impl Parzen {
    fn fit(dim: &Dim, points: impl Iterator<Item = f64>) -> Parzen {
        let mut points: Vec<f64> = points.collect();
        if let Dim::Categorical { choices } = dim {
            let k = *choices;
            let mut masses = vec![PRIOR_WEIGHT / k as f64; k];
            for &u in &points {
                masses[slot(u, k)] += 1.0;
            }
            let total = PRIOR_WEIGHT + points.len() as f64;
            return Parzen::Masses(masses.into_iter().map(|m| m / total).collect());
        }
        points.sort_by(f64::total_cmp);
        let m = points.len();
        // The floor narrows as results accumulate, so a search can close in
        // on a narrow optimum, but never below MIN_BANDWIDTH.
        let floor = (1.0 / (m as f64 + 1.0)).max(MIN_BANDWIDTH);
        let kernels = (0..m)
            .map(|i| {
                let left = if i > 0 { points[i] - points[i - 1] } else { 0.0 };
                let right = if i + 1 < m { points[i + 1] - points[i] } else { 0.0 };
                let gap = if m == 1 { 1.0 } else { left.max(right) };
                Kernel::new(points[i], gap.clamp(floor, 1.0))
            })
            .collect();
        Parzen::Kernels(kernels)
    }

    fn ln_density(&self, u: f64) -> f64 {
        match self {
            Parzen::Kernels(kernels) => {
                let sum: f64 = kernels.iter().map(|k| k.density(u)).sum();
                ((PRIOR_WEIGHT + sum) / (PRIOR_WEIGHT + kernels.len() as f64)).ln()
            }
            Parzen::Masses(masses) => masses[slot(u, masses.len())].ln(),
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match self {
            Parzen::Kernels(kernels) => {
                // Component 0 is the uniform prior, then one per result, all
                // of equal weight (PRIOR_WEIGHT is 1).
                let j = rng.below(kernels.len() + 1);
                if j == 0 {
                    rng.unit()
                } else {
                    kernels[j - 1].sample(rng)
                }
            }
            Parzen::Masses(masses) => {
                let r = rng.unit();
                let mut acc = 0.0;
                let k = masses.len();
                let mut pick = k - 1;
                for (i, m) in masses.iter().enumerate() {
                    acc += m;
                    if r < acc {
                        pick = i;
                        break;
                    }
                }
                (pick as f64 + 0.5) / k as f64
            }
        }
    }
}

/// The standard normal distribution function, through a Chebyshev-fitted
/// complementary error function (relative error below 1.2e-7, far finer
/// than a bandwidth needs).
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    const C: [f64; 10] = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let poly = C.iter().rev().fold(0.0, |acc, c| c + t * acc);
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        for (x, want) in [(0.0, 0.5), (1.0, 0.841_344_746), (-1.96, 0.024_997_895), (3.0, 0.998_650_102)] {
            assert!((normal_cdf(x) - want).abs() < 1e-6, "{x}: {}", normal_cdf(x));
        }
    }

    #[test]
    fn truncated_kernels_integrate_to_one() {
        for (mu, sigma) in [(0.5, 0.1), (0.0, 0.3), (1.0, 1.0), (0.2, 0.01)] {
            let k = Kernel::new(mu, sigma);
            let steps = 20_000;
            let area: f64 = (0..steps).map(|i| k.density((i as f64 + 0.5) / steps as f64)).sum::<f64>() / steps as f64;
            assert!((area - 1.0).abs() < 1e-3, "mu {mu} sigma {sigma}: {area}");
        }
    }
}
