//! The random advisor: every searched coordinate uniform in `[0, 1]`.
//!
//! Uniform in the unit cube rather than in the knob's own range, so a knob
//! on a log scale is drawn log-uniformly and every categorical value gets an
//! equal chance. It ignores results and pending trials:
//! distinct trials already get distinct seeds.

use super::SplitMix64;

pub(super) fn point(dims: usize, rng: &mut SplitMix64) -> Vec<f64> {
    (0..dims).map(|_| rng.unit()).collect()
}
