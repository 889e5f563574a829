use std::collections::BTreeMap;

use super::*;
use crate::knobs::{KnobConfig, KnobSpec, KnobValue, Knobs};

fn strs(values: &[&str]) -> KnobSpec {
    KnobSpec::Categorical { values: values.iter().map(|v| KnobValue::Str(v.to_string())).collect() }
}

fn space() -> KnobConfig {
    let mut knobs = BTreeMap::new();
    knobs.insert("epochs".to_string(), KnobSpec::Fixed { value: KnobValue::Int(30) });
    knobs.insert("activation".to_string(), strs(&["relu", "tanh", "gelu"]));
    knobs.insert("hidden".to_string(), KnobSpec::Integer { min: 4, max: 256, log: true });
    knobs.insert("lr".to_string(), KnobSpec::Float { min: 1e-4, max: 1e-1, log: true });
    knobs.insert("dropout".to_string(), KnobSpec::Float { min: 0.0, max: 0.5, log: false });
    KnobConfig { knobs, early_stopping: None }
}

fn score(k: &Knobs) -> f64 {
    let lr = k["lr"].as_f64().unwrap().log10() + 2.0;
    let act = if k["activation"].as_str() == Some("gelu") { 0.0 } else { 0.5 };
    -lr * lr - act - k["dropout"].as_f64().unwrap()
}

/// Ten finished trials of the test space.
fn history() -> Vec<Observation> {
    run_search(AdvisorKind::Random, &space(), 10, 7, &mut score)
}

#[test]
fn kinds_have_stable_names() {
    for kind in AdvisorKind::ALL {
        assert_eq!(AdvisorKind::parse(kind.as_str()), Some(kind));
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
    }
    assert_eq!(AdvisorKind::parse(" TPE "), Some(AdvisorKind::Tpe));
    assert_eq!(AdvisorKind::parse("bayes"), None);
    assert_eq!(serde_json::from_str::<AdvisorKind>("\"random\"").unwrap(), AdvisorKind::Random);
}

#[test]
fn same_inputs_same_proposal_other_seed_other_proposal() {
    let c = space();
    let obs = history();
    let pending = [propose(AdvisorKind::Tpe, &c, &obs, &[], 1)];
    for kind in AdvisorKind::ALL {
        for (o, p) in [(&obs[..0], &pending[..0]), (&obs[..], &pending[..0]), (&obs[..], &pending[..])] {
            let a = propose(kind, &c, o, p, 42);
            assert_eq!(a, propose(kind, &c, o, p, 42), "{kind}");
            assert_ne!(a, propose(kind, &c, o, p, 43), "{kind}");
            c.validate(&a).unwrap();
        }
    }
    // Whole searches replay exactly, as a new leader replays them.
    assert_eq!(
        run_search(AdvisorKind::Tpe, &c, 15, 3, &mut score),
        run_search(AdvisorKind::Tpe, &c, 15, 3, &mut score)
    );
    assert_ne!(trial_seed(1, 0), trial_seed(1, 1));
    assert_ne!(trial_seed(1, 0), trial_seed(2, 0));
}

#[test]
fn random_honours_log_scales_and_slots() {
    let c = space();
    let n = 4000;
    let (mut below_lr, mut below_hidden) = (0, 0);
    let mut activations = BTreeMap::new();
    for s in 0..n {
        let k = propose(AdvisorKind::Random, &c, &[], &[], trial_seed(9, s));
        c.validate(&k).unwrap();
        // Geometric midpoints: sqrt(1e-4 · 1e-1) and about sqrt(3.5 · 256.5).
        below_lr += (k["lr"].as_f64().unwrap() < (1e-5f64).sqrt()) as usize;
        below_hidden += (k["hidden"].as_i64().unwrap() < 30) as usize;
        *activations.entry(k["activation"].to_string()).or_insert(0usize) += 1;
        assert_eq!(k["epochs"], KnobValue::Int(30));
    }
    let frac = |x: usize| x as f64 / n as f64;
    assert!((frac(below_lr) - 0.5).abs() < 0.03, "{below_lr}");
    assert!((frac(below_hidden) - 0.5).abs() < 0.04, "{below_hidden}");
    for (name, count) in activations {
        assert!((frac(count) - 1.0 / 3.0).abs() < 0.03, "{name}: {count}");
    }
}

#[test]
fn tpe_starts_like_random() {
    let c = space();
    let obs = history();
    let startup = tpe::startup_trials(c.searched().len());
    // Fewer trials than the start-up count, done or running: a random draw.
    let (done, running) = (&obs[..startup - 2], vec![obs[0].knobs.clone()]);
    assert_eq!(propose(AdvisorKind::Tpe, &c, done, &running, 5), propose(AdvisorKind::Random, &c, done, &running, 5));
    // From then on the model decides.
    let model = (0..8)
        .filter(|s| propose(AdvisorKind::Tpe, &c, &obs, &[], *s) != propose(AdvisorKind::Random, &c, &obs, &[], *s));
    assert_eq!(model.count(), 8);
}

#[test]
fn pending_trials_spread_parallel_proposals() {
    let c = space();
    let obs = history();
    // The same seed with and without the first proposal pending.
    let first = propose(AdvisorKind::Tpe, &c, &obs, &[], 11);
    assert_ne!(propose(AdvisorKind::Tpe, &c, &obs, std::slice::from_ref(&first), 11), first);
    // Eight workers asking in turn, each seeing the others as running, get
    // eight different proposals; the same holds in a space without floats.
    let mut small = space();
    small.knobs.remove("lr");
    small.knobs.remove("dropout");
    for c in [c, small] {
        let obs = run_search(AdvisorKind::Random, &c, 10, 7, &mut |k| k["hidden"].as_f64().unwrap().ln());
        let mut pending: Vec<Knobs> = Vec::new();
        for worker in 0..8 {
            let k = propose(AdvisorKind::Tpe, &c, &obs, &pending, trial_seed(5, 10 + worker));
            c.validate(&k).unwrap();
            assert!(!pending.contains(&k), "worker {worker}: {k:?} already running");
            pending.push(k);
        }
    }
}

#[test]
fn awkward_inputs_never_panic() {
    let empty = KnobConfig::default();
    let mut fixed = KnobConfig::default();
    fixed.knobs.insert("epochs".to_string(), KnobSpec::Fixed { value: KnobValue::Int(3) });
    let c = space();
    let one = history()[..1].to_vec();
    let same: Vec<Observation> = history().into_iter().map(|o| Observation { score: 1.0, ..o }).collect();
    let bad_scores: Vec<Observation> = history()
        .into_iter()
        .zip([f64::NAN, f64::INFINITY, f64::NEG_INFINITY].into_iter().cycle())
        .map(|(o, score)| Observation { score, ..o })
        .collect();
    let mut mixed = bad_scores.clone();
    mixed.extend(history().into_iter().take(6));
    // Knobs of another space, of the wrong types, or missing.
    let mut odd = Knobs::new();
    odd.insert("lr".to_string(), KnobValue::Str("fast".into()));
    odd.insert("colour".to_string(), KnobValue::Bool(true));
    let strange = vec![Observation { knobs: odd.clone(), score: 2.0 }, Observation { knobs: Knobs::new(), score: 3.0 }];
    let lots_pending: Vec<Knobs> = (0..20).map(|s| propose(AdvisorKind::Random, &c, &[], &[], s)).collect();
    for kind in AdvisorKind::ALL {
        assert_eq!(propose(kind, &empty, &[], &[], 1), Knobs::new());
        assert_eq!(propose(kind, &empty, &history(), &[odd.clone()], 1), Knobs::new());
        let f = propose(kind, &fixed, &history(), &[], 1);
        fixed.validate(&f).unwrap();
        for obs in [&[][..], &one, &same, &bad_scores, &mixed, &strange] {
            for pending in [&[][..], &lots_pending, std::slice::from_ref(&odd)] {
                let k = propose(kind, &c, obs, pending, 77);
                c.validate(&k).unwrap_or_else(|e| panic!("{kind}: {e}: {k:?}"));
            }
        }
    }
}

#[test]
fn broken_spaces_do_not_panic() {
    let mut broken = KnobConfig::default();
    broken.knobs.insert("a".to_string(), KnobSpec::Categorical { values: vec![] });
    broken.knobs.insert("b".to_string(), KnobSpec::Integer { min: 5, max: 1, log: true });
    broken.knobs.insert("c".to_string(), KnobSpec::Float { min: f64::NAN, max: 1.0, log: false });
    broken.knobs.insert("d".to_string(), KnobSpec::Float { min: 2.0, max: -2.0, log: true });
    broken.knobs.insert("e".to_string(), KnobSpec::Float { min: -1.0, max: 1.0, log: true });
    let mut objective = |_: &Knobs| 1.0;
    for kind in AdvisorKind::ALL {
        let obs = run_search(kind, &broken, 12, 1, &mut objective);
        assert!(obs.iter().all(|o| !o.knobs.contains_key("a")));
        let e = obs[11].knobs["e"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&e));
    }
}

/// A random valid space: every kind of knob, including degenerate ranges,
/// one-value categoricals and ranges too wide for float arithmetic.
fn random_space(rng: &mut SplitMix64) -> KnobConfig {
    let mut knobs = BTreeMap::new();
    for i in 0..rng.below(7) {
        let spec = match rng.below(9) {
            0 => KnobSpec::Fixed { value: KnobValue::Float(rng.unit()) },
            1 => KnobSpec::Categorical { values: (0..1 + rng.below(5) as i64).map(KnobValue::Int).collect() },
            2 => KnobSpec::Categorical { values: vec![KnobValue::Bool(false), KnobValue::Bool(true)] },
            3 => {
                let min = rng.below(1000) as i64 - 500;
                KnobSpec::Integer { min, max: min + rng.below(20) as i64, log: false }
            }
            4 => {
                let min = 1 + rng.below(100) as i64;
                KnobSpec::Integer { min, max: min * (1 + rng.below(1000) as i64), log: true }
            }
            5 => KnobSpec::Integer { min: i64::MIN, max: i64::MAX, log: false },
            6 => {
                let min = rng.unit() * 10.0 - 5.0;
                KnobSpec::Float { min, max: min + rng.unit() * 3.0, log: false }
            }
            7 => {
                let min = 10f64.powf(rng.unit() * 10.0 - 8.0);
                KnobSpec::Float { min, max: min * 10f64.powf(rng.unit() * 6.0), log: true }
            }
            _ => KnobSpec::Float { min: -f64::MAX, max: f64::MAX, log: false },
        };
        knobs.insert(format!("k{i}"), spec);
    }
    let c = KnobConfig { knobs, early_stopping: None };
    c.check().unwrap();
    c
}

#[test]
fn proposals_are_valid_in_random_spaces() {
    let mut rng = SplitMix64::new(2024);
    for round in 0..150 {
        let c = random_space(&mut rng);
        for kind in AdvisorKind::ALL {
            let mut pending = Vec::new();
            let mut obs = Vec::new();
            for t in 0..12 {
                let k = propose(kind, &c, &obs, &pending, trial_seed(round, t));
                c.validate(&k).unwrap_or_else(|e| panic!("{kind} round {round}: {e}: {c:?} {k:?}"));
                // Every third trial stays running; scores include ties and NaNs.
                if t % 3 == 0 {
                    pending.push(k);
                } else {
                    let score = [f64::NAN, 1.0, rng.unit()][rng.below(3)];
                    obs.push(Observation { knobs: k, score });
                }
            }
        }
    }
}

#[test]
fn summaries_and_trials_to_reach() {
    let k = Knobs::new();
    let obs: Vec<Observation> = [0.1, f64::NAN, 0.5, 0.3, 0.5, f64::INFINITY]
        .into_iter()
        .map(|score| Observation { knobs: k.clone(), score })
        .collect();
    let s = SearchSummary::of(&obs);
    assert_eq!((s.trials, s.scored, s.best, s.best_trial), (6, 4, Some(0.5), Some(3)));
    assert_eq!(trials_to_reach(&obs, 0.3), Some(3));
    assert_eq!(trials_to_reach(&obs, 0.1), Some(1));
    assert_eq!(trials_to_reach(&obs, 0.6), None);
    assert_eq!(SearchSummary::best_so_far(&obs[..3]), vec![Some(0.1), Some(0.1), Some(0.5)]);
    assert_eq!(SearchSummary::of(&[]).best, None);
    let searched = run_search(AdvisorKind::Tpe, &space(), 12, 1, &mut score);
    assert_eq!(searched.len(), 12);
}
