//! Advisors: what knobs a train job's next trial runs with.
//!
//! An advisor is a pure function of the job's knob space, the results so far,
//! the trials still running and a seed ([`propose`]). It keeps no state of its
//! own: proposals and results live in the replicated state, and a newly
//! elected leader resumes a search from those alone, getting the very
//! proposals the old leader would have made. The seed is the job's seed mixed
//! with the trial number ([`trial_seed`]); the random numbers come from a
//! small generator defined here, so the same inputs give the same knobs on
//! every node and with every version of the `rand` crate.
//!
//! Every advisor works in the unit cube of [`KnobConfig::to_unit_point`]: one
//! coordinate in `[0, 1]` per searched knob, log scales already applied and
//! every categorical value owning an equal slot. Fixed knobs keep their value.
//!
//! - [`AdvisorKind::Random`] draws each coordinate uniformly.
//! - [`AdvisorKind::Tpe`] is a Tree-structured Parzen Estimator (see the
//!   [`tpe`] module): after a few random start-up trials it splits the
//!   results into good and bad, models each group with per-knob kernel
//!   densities and proposes the candidate where good is most likely relative
//!   to bad. It is chosen over a Gaussian-process model because knob spaces
//!   mix categorical, integer and float knobs, which kernel densities handle
//!   per knob without any encoding; it needs no matrix inversion or
//!   hyper-parameter fit that could fail or be ill-conditioned; its cost is
//!   linear in the number of results; and it is easy to make exactly
//!   deterministic.
//!
//! [`run_search`] loops proposals and results for benchmarks, and
//! [`SearchSummary`] / [`trials_to_reach`] summarise a search; [`mod@bench`] holds
//! synthetic objectives to compare advisors without training anything.

pub mod bench;
mod random;
pub mod tpe;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::knobs::{KnobConfig, KnobSpec, KnobValue, Knobs};

/// Which advisor a train job uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvisorKind {
    /// Uniform draws in the unit cube.
    Random,
    /// Tree-structured Parzen Estimator: model-based, the default.
    #[default]
    Tpe,
}

impl AdvisorKind {
    pub const ALL: [AdvisorKind; 2] = [AdvisorKind::Random, AdvisorKind::Tpe];

    pub fn as_str(self) -> &'static str {
        match self {
            AdvisorKind::Random => "random",
            AdvisorKind::Tpe => "tpe",
        }
    }

    /// The kind named `name` (as [`Self::as_str`] writes it), ignoring case
    /// and surrounding blanks.
    pub fn parse(name: &str) -> Option<AdvisorKind> {
        let name = name.trim();
        Self::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for AdvisorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One completed trial: its knobs and its score, higher being better.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub knobs: Knobs,
    pub score: f64,
}

/// The knobs for a job's next trial.
///
/// - `observations`: completed trials. Scores that are NaN or infinite are
///   ignored.
/// - `pending`: knobs of trials proposed but not finished yet (running in
///   parallel), so parallel workers do not all get the same proposal.
/// - `seed`: the job's seed combined with the trial number
///   ([`trial_seed`]), so the same inputs always give the same proposal.
///
/// The result always passes [`KnobConfig::validate`] for a space that passes
/// [`KnobConfig::check`]. For a broken space this still returns without
/// panicking, but what it returns may not validate, and a categorical knob
/// without values is left out.
pub fn propose(
    kind: AdvisorKind,
    space: &KnobConfig,
    observations: &[Observation],
    pending: &[Knobs],
    seed: u64,
) -> Knobs {
    let dims = space.searched().len();
    let mut rng = SplitMix64::new(seed);
    let point = match kind {
        AdvisorKind::Random => random::point(dims, &mut rng),
        AdvisorKind::Tpe => tpe::point(space, observations, pending, &mut rng),
    };
    knobs_at(space, &point)
}

/// The seed of trial number `trial` of a job seeded with `job_seed`: distinct
/// trials get unrelated streams of random numbers.
pub fn trial_seed(job_seed: u64, trial: u64) -> u64 {
    mix64(job_seed ^ mix64(trial.wrapping_add(0x5851_f42d_4c95_7f2d)))
}

/// Runs a sequential search of `budget` trials: propose, score with
/// `objective`, record, repeat. Trial `t` uses `trial_seed(seed, t)`. The
/// result holds every trial in order, whatever its score.
pub fn run_search(
    kind: AdvisorKind,
    space: &KnobConfig,
    budget: usize,
    seed: u64,
    objective: &mut dyn FnMut(&Knobs) -> f64,
) -> Vec<Observation> {
    let mut observations = Vec::with_capacity(budget);
    for trial in 0..budget {
        let knobs = propose(kind, space, &observations, &[], trial_seed(seed, trial as u64));
        let score = objective(&knobs);
        observations.push(Observation { knobs, score });
    }
    observations
}

/// The number of trials (counting from 1, in order) a search needed until a
/// score reached `target`; `None` if none did. Non-finite scores never count.
pub fn trials_to_reach(observations: &[Observation], target: f64) -> Option<usize> {
    observations.iter().position(|o| o.score.is_finite() && o.score >= target).map(|i| i + 1)
}

/// What a search found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSummary {
    /// Trials run, including those with a non-finite score.
    pub trials: usize,
    /// Trials with a finite score.
    pub scored: usize,
    /// The best finite score, if any.
    pub best: Option<f64>,
    /// The trial number (from 1) of the first trial with the best score.
    pub best_trial: Option<usize>,
    /// Its knobs.
    pub best_knobs: Option<Knobs>,
}

impl SearchSummary {
    pub fn of(observations: &[Observation]) -> SearchSummary {
        let mut best: Option<(usize, &Observation)> = None;
        for (i, o) in observations.iter().enumerate() {
            if o.score.is_finite() && best.is_none_or(|(_, b)| o.score > b.score) {
                best = Some((i, o));
            }
        }
        SearchSummary {
            trials: observations.len(),
            scored: observations.iter().filter(|o| o.score.is_finite()).count(),
            best: best.map(|(_, o)| o.score),
            best_trial: best.map(|(i, _)| i + 1),
            best_knobs: best.map(|(_, o)| o.knobs.clone()),
        }
    }

    /// Best finite score after each trial (`None` until the first one).
    pub fn best_so_far(observations: &[Observation]) -> Vec<Option<f64>> {
        let mut best: Option<f64> = None;
        observations
            .iter()
            .map(|o| {
                if o.score.is_finite() && best.is_none_or(|b| o.score > b) {
                    best = Some(o.score);
                }
                best
            })
            .collect()
    }
}

/// Builds the knobs of a unit-cube point (one coordinate per searched knob)
/// without ever panicking, and with a valid value for every knob of a valid
/// space, even where float arithmetic over a huge range would overflow.
fn knobs_at(space: &KnobConfig, point: &[f64]) -> Knobs {
    let mut coords = point.iter().copied();
    let mut out = Knobs::new();
    for (name, spec) in &space.knobs {
        let u = if spec.is_searched() { coords.next().unwrap_or(0.5) } else { 0.5 };
        if let Some(value) = value_at(name, spec, u) {
            out.insert(name.clone(), value);
        }
    }
    out
}

fn value_at(name: &str, spec: &KnobSpec, u: f64) -> Option<KnobValue> {
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 };
    if spec.check(name).is_ok() {
        let value = spec.from_unit(u);
        if spec.validate(name, &value).is_ok() {
            return Some(value);
        }
    }
    // A broken space, or a range so wide that its arithmetic overflowed:
    // something in range without the unit mapping, where there is one.
    match spec {
        KnobSpec::Fixed { value } => Some(value.clone()),
        KnobSpec::Categorical { values } if values.is_empty() => None,
        KnobSpec::Categorical { values } => {
            Some(values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone())
        }
        KnobSpec::Integer { min, max, .. } => {
            let (lo, hi) = (*min as f64, *max as f64);
            let v = lo + u * (hi - lo);
            if min <= max && v.is_finite() {
                Some(KnobValue::Int((v.round() as i64).clamp(*min, *max)))
            } else {
                Some(KnobValue::Int(*min))
            }
        }
        KnobSpec::Float { min, max, .. } => {
            let v = min * (1.0 - u) + max * u;
            if min <= max && v.is_finite() {
                Some(KnobValue::Float(v.clamp(*min, *max)))
            } else {
                Some(KnobValue::Float(*min))
            }
        }
    }
}

/// The unit-cube point of `knobs`, with any coordinate that the mapping
/// could not place (a value of the wrong type, a huge range) at the centre.
fn point_of(space: &KnobConfig, knobs: &Knobs) -> Vec<f64> {
    space.to_unit_point(knobs).into_iter().map(|u| if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 }).collect()
}

/// SplitMix64's output function: a bijective scramble of 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast generator whose output depends on nothing but its seed.
/// Statistical quality is ample for drawing search candidates.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n` > 0), by a widening multiply: the bias is
    /// below `n / 2^64`, nothing for the sizes used here.
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal, by Box–Muller (one of the pair is dropped, which
    /// keeps the generator stateless between calls).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: the log stays finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests;
