//! Synthetic objectives for comparing advisors without training anything.
//!
//! Each [`Synthetic`] problem has a mixed knob space shaped like a real
//! template's (a log-scale learning rate, integers, categoricals) and a cheap
//! score with a known best. [`compare`] runs every advisor on one problem
//! over a number of seeds and summarises the medians; `boat bench advisor`
//! reports the same figures for real training.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{run_search, trial_seed, trials_to_reach, AdvisorKind, Observation, SearchSummary, SplitMix64};
use crate::knobs::{KnobConfig, KnobSpec, KnobValue, Knobs};

/// A synthetic problem: a space and a score over it (higher is better).
pub struct Synthetic {
    pub name: &'static str,
    pub space: KnobConfig,
    /// The best score the noiseless objective reaches.
    pub optimum: f64,
    /// Standard deviation of Gaussian noise added to each score.
    pub noise: f64,
    score: fn(&Knobs) -> f64,
}

impl Synthetic {
    /// The noiseless score of `knobs`.
    pub fn true_score(&self, knobs: &Knobs) -> f64 {
        (self.score)(knobs)
    }

    /// The objective a search sees: the true score plus this problem's
    /// noise, drawn from a stream seeded by `seed`.
    pub fn objective(&self, seed: u64) -> impl FnMut(&Knobs) -> f64 + '_ {
        let mut rng = SplitMix64::new(seed ^ 0x006e_6f69_7365);
        move |knobs| {
            let s = self.true_score(knobs);
            if self.noise > 0.0 {
                s + self.noise * rng.normal()
            } else {
                s
            }
        }
    }
}

fn float(knobs: &Knobs, name: &str) -> f64 {
    knobs.get(name).and_then(KnobValue::as_f64).unwrap_or(f64::NAN)
}

fn text<'a>(knobs: &'a Knobs, name: &str) -> &'a str {
    knobs.get(name).and_then(KnobValue::as_str).unwrap_or("")
}

fn strings(values: &[&str]) -> KnobSpec {
    KnobSpec::Categorical { values: values.iter().map(|v| KnobValue::Str(v.to_string())).collect() }
}

fn space(knobs: Vec<(&str, KnobSpec)>) -> KnobConfig {
    KnobConfig {
        knobs: knobs.into_iter().map(|(n, s)| (n.to_string(), s)).collect::<BTreeMap<_, _>>(),
        early_stopping: None,
    }
}

/// A bump of height 1 at `at`, of standard deviation `width`.
fn bump(x: f64, at: f64, width: f64) -> f64 {
    let z = (x - at) / width;
    (-0.5 * z * z).exp()
}

/// A learning rate with a narrow optimum (0.3 decades wide out of five),
/// a layer count and an optimiser with one best choice. Best score 1.5.
fn narrow_lr(k: &Knobs) -> f64 {
    let lr = bump(float(k, "lr").log10(), 3e-3f64.log10(), 0.15);
    let layers = 1.0 - (float(k, "layers") - 3.0).abs() / 7.0;
    let optimiser = match text(k, "optimiser") {
        "adam" => 1.0,
        "rmsprop" => 0.6,
        _ => 0.0,
    };
    lr + 0.25 * layers + 0.25 * optimiser
}

/// A smooth bowl over five knobs of every kind, optimum in the interior
/// of each log scale. Best score 0.
fn mixed_bowl(k: &Knobs) -> f64 {
    let decay = (float(k, "weight_decay").log10() - (-4.0)) / 5.0;
    let dropout = (float(k, "dropout") - 0.1) / 0.5;
    let hidden = (float(k, "hidden").log2() - 7.0) / 7.0;
    let activation = match text(k, "activation") {
        "gelu" => 0.0,
        "relu" => 0.05,
        _ => 0.3,
    };
    let batch = match k.get("batch").and_then(KnobValue::as_i64) {
        Some(64) => 0.0,
        Some(32 | 128) => 0.05,
        _ => 0.2,
    };
    -(decay * decay + dropout * dropout + hidden * hidden) - activation - batch
}

/// Eight knobs of which two matter (a log rate and a categorical) and one
/// matters slightly. Best score 1.2.
fn few_matter(k: &Knobs) -> f64 {
    let lr = bump(float(k, "lr").log10(), -2.5, 0.3);
    let loss = if text(k, "loss") == "huber" { 1.0 } else { 0.0 };
    lr * (0.5 + 0.5 * loss) + 0.2 * bump(float(k, "momentum"), 0.9, 0.1)
}

/// The problems [`compare`] is run on.
pub fn suite() -> Vec<Synthetic> {
    let lr_space = || {
        space(vec![
            ("lr", KnobSpec::Float { min: 1e-5, max: 1.0, log: true }),
            ("layers", KnobSpec::Integer { min: 1, max: 8, log: false }),
            ("optimiser", strings(&["sgd", "momentum", "adam", "rmsprop"])),
            ("epochs", KnobSpec::Fixed { value: KnobValue::Int(10) }),
        ])
    };
    vec![
        Synthetic { name: "narrow_lr", space: lr_space(), optimum: 1.5, noise: 0.0, score: narrow_lr },
        Synthetic { name: "narrow_lr_noisy", space: lr_space(), optimum: 1.5, noise: 0.05, score: narrow_lr },
        Synthetic {
            name: "mixed_bowl",
            space: space(vec![
                ("weight_decay", KnobSpec::Float { min: 1e-6, max: 1e-1, log: true }),
                ("dropout", KnobSpec::Float { min: 0.0, max: 0.5, log: false }),
                ("hidden", KnobSpec::Integer { min: 8, max: 1024, log: true }),
                ("activation", strings(&["relu", "tanh", "sigmoid", "gelu"])),
                (
                    "batch",
                    KnobSpec::Categorical { values: [16, 32, 64, 128, 256].into_iter().map(KnobValue::Int).collect() },
                ),
            ]),
            optimum: 0.0,
            noise: 0.0,
            score: mixed_bowl,
        },
        Synthetic {
            name: "few_matter",
            space: space(vec![
                ("lr", KnobSpec::Float { min: 1e-5, max: 1.0, log: true }),
                ("loss", strings(&["mse", "huber", "l1"])),
                ("momentum", KnobSpec::Float { min: 0.0, max: 0.99, log: false }),
                ("a", KnobSpec::Float { min: 0.0, max: 1.0, log: false }),
                ("b", KnobSpec::Integer { min: 1, max: 100, log: true }),
                ("c", strings(&["x", "y"])),
                ("d", KnobSpec::Float { min: 1e-3, max: 1e3, log: true }),
                ("e", KnobSpec::Integer { min: 0, max: 5, log: false }),
            ]),
            optimum: 1.2,
            noise: 0.0,
            score: few_matter,
        },
    ]
}

/// How the advisors fared on one problem.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub problem: String,
    pub budget: usize,
    pub seeds: usize,
    /// Per advisor, in [`AdvisorKind::ALL`] order.
    pub advisors: Vec<AdvisorResult>,
    /// The median best score of the random advisor: the bar
    /// [`AdvisorResult::median_trials_to_reach`] measures against.
    pub target: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AdvisorResult {
    pub kind: AdvisorKind,
    /// Median over seeds of the best score within the budget.
    pub median_best: f64,
    /// Best score of each seed's search.
    pub bests: Vec<f64>,
    /// Median over seeds of the trials needed to reach the random
    /// advisor's median best; `None` if half the seeds never got there.
    pub median_trials_to_reach: Option<usize>,
}

impl Comparison {
    pub fn get(&self, kind: AdvisorKind) -> Option<&AdvisorResult> {
        self.advisors.iter().find(|a| a.kind == kind)
    }
}

/// Runs every advisor on `problem` with `budget` trials for `seeds` seeds.
/// Seed `s` of every advisor uses the same noise stream.
pub fn compare(problem: &Synthetic, budget: usize, seeds: usize) -> Comparison {
    let runs: Vec<(AdvisorKind, Vec<Vec<Observation>>)> = AdvisorKind::ALL
        .into_iter()
        .map(|kind| {
            let searches = (0..seeds as u64)
                .map(|s| {
                    let seed = trial_seed(0xb0a7, s);
                    let mut objective = problem.objective(seed);
                    run_search(kind, &problem.space, budget, seed, &mut objective)
                })
                .collect();
            (kind, searches)
        })
        .collect();
    let bests = |searches: &[Vec<Observation>]| -> Vec<f64> {
        searches.iter().map(|o| SearchSummary::of(o).best.unwrap_or(f64::NEG_INFINITY)).collect()
    };
    let target = runs.iter().find(|(k, _)| *k == AdvisorKind::Random).map(|(_, s)| median(&bests(s))).unwrap_or(0.0);
    let advisors = runs
        .iter()
        .map(|(kind, searches)| {
            let bests = bests(searches);
            // A search that never reaches the target counts as needing more
            // than the budget.
            let mut reach: Vec<usize> =
                searches.iter().map(|o| trials_to_reach(o, target).unwrap_or(budget + 1)).collect();
            reach.sort_unstable();
            let mid = reach.get(reach.len().saturating_sub(1) / 2).copied().filter(|&t| t <= budget);
            AdvisorResult { kind: *kind, median_best: median(&bests), bests, median_trials_to_reach: mid }
        })
        .collect();
    Comparison { problem: problem.name.to_string(), budget, seeds, advisors, target }
}

/// The median (the lower middle one for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: usize = 20;
    const SEEDS: usize = 15;

    #[test]
    fn problems_reach_their_stated_optimum() {
        let best = |p: &Synthetic, knobs: &[(&str, KnobValue)]| {
            let mut k = p.space.from_unit_point(&vec![0.5; p.space.searched().len()]);
            for (n, v) in knobs {
                k.insert(n.to_string(), v.clone());
            }
            p.space.validate(&k).unwrap();
            p.true_score(&k)
        };
        let s = suite();
        let lr = [
            ("lr", KnobValue::Float(3e-3)),
            ("layers", KnobValue::Int(3)),
            ("optimiser", KnobValue::Str("adam".into())),
        ];
        assert!((best(&s[0], &lr) - s[0].optimum).abs() < 1e-9);
        let bowl = [
            ("weight_decay", KnobValue::Float(1e-4)),
            ("dropout", KnobValue::Float(0.1)),
            ("hidden", KnobValue::Int(128)),
            ("activation", KnobValue::Str("gelu".into())),
            ("batch", KnobValue::Int(64)),
        ];
        assert!((best(&s[2], &bowl) - s[2].optimum).abs() < 1e-9);
        let few = [
            ("lr", KnobValue::Float(10f64.powf(-2.5))),
            ("loss", KnobValue::Str("huber".into())),
            ("momentum", KnobValue::Float(0.9)),
        ];
        assert!((best(&s[3], &few) - s[3].optimum).abs() < 1e-9);
    }

    /// Prints the table with `cargo test -p boat-training tpe_beats -- --nocapture`.
    #[test]
    fn tpe_beats_random_on_every_problem() {
        for problem in suite() {
            let c = compare(&problem, BUDGET, SEEDS);
            let random = c.get(AdvisorKind::Random).unwrap();
            let tpe = c.get(AdvisorKind::Tpe).unwrap();
            let wins = tpe.bests.iter().zip(&random.bests).filter(|(t, r)| t > r).count();
            eprintln!(
                "{:<16} optimum {:>5.2}  median best: random {:>7.4}  tpe {:>7.4}  (tpe ahead on {wins}/{SEEDS} seeds); \
                 trials to reach {:.4}: random {}, tpe {}",
                c.problem,
                problem.optimum,
                random.median_best,
                tpe.median_best,
                c.target,
                show(random.median_trials_to_reach),
                show(tpe.median_trials_to_reach),
            );
            assert!(tpe.median_best > random.median_best, "{}: {c:?}", c.problem);
            let reach = tpe.median_trials_to_reach.unwrap_or(usize::MAX);
            assert!(reach < BUDGET, "{}: tpe needs {reach} trials for random's median best", c.problem);
        }
    }

    fn show(t: Option<usize>) -> String {
        t.map_or_else(|| format!(">{BUDGET}"), |t| t.to_string())
    }
}
