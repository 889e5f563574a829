//! `boat bench advisor`: the advisors on real training, and what a second
//! worker buys a train job.
//!
//! 1. **Advisor quality.** The dataset (by default the shipped
//!    `datasets/digits.csv`) is split once, with a fixed seed, into 20%
//!    training and 80% validation rows (`--train-fraction`) written to a
//!    temporary directory. Why so few training rows: with 80% of digits to
//!    train on, nearly every configuration reaches 97-98% and one of the
//!    360 validation rows is worth 0.0028, so the searches end within two
//!    rows of each other and the comparison measures noise. On 359 training
//!    rows the knobs matter (capacity, learning rate and weight decay
//!    against overfitting), and 1,438 validation rows resolve 0.0007.
//!    Every advisor then runs a sequential search of `--trials` trials for
//!    each of `--seeds` seeds, every trial training the template in this
//!    process ([`boat_training::templates::train`]) and scoring on the
//!    validation rows. Seed `s` of every advisor uses the same search seed,
//!    and a trial is seeded the way the orchestrator seeds it (the
//!    proposal's seed), so two advisors proposing the same knobs train the
//!    same model. Seeds alternate between the advisors so that both see the
//!    same machine. The
//!    report gives each advisor's median best score over the seeds, every
//!    seed's best, and the trials each advisor needs (median over seeds) to
//!    reach the random advisor's median best, the bar the synthetic
//!    comparison in `boat_training::advisor::bench` uses too.
//! 2. **Job wall time.** On a fresh local cluster, the same split is
//!    uploaded as two datasets and a job of `--job-trials` trials runs with
//!    one worker, then with two, through `POST /api/jobs`; each is polled
//!    until it ends. The report gives both wall times (seen by the client,
//!    and the job's own elapsed time), their ratio, and the sum of the
//!    trials' own durations (worker start to finish), which shows how much
//!    of the wall time is training and how much is scheduling around it.
//!
//! `--epochs-cap N` fixes the `epochs` knob at N in both parts (the knob
//! must have N in its space), which shortens every trial; without it the
//! template's own space is searched. Training runs on one thread
//! (`RAYON_NUM_THREADS=1` unless already set), the fastest setting for
//! networks this small.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat_training::advisor::bench::median;
use boat_training::advisor::{run_search, trial_seed, trials_to_reach, AdvisorKind, Observation, SearchSummary};
use boat_training::knobs::{KnobConfig, KnobOverride, KnobValue, Knobs};
use boat_training::templates::{builtin_template, train, Task, TemplateInfo, TrialSpec};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::bench::{BenchCluster, ClusterArgs};
use crate::client::{HttpClient, Method};

#[derive(Debug, Clone, Args)]
pub struct AdvisorArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Trials per search.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Searches per advisor, each with its own seed; medians over them are reported.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// Fix the epochs knob at this value (shorter trials); default: the template's space.
    #[arg(long)]
    pub epochs_cap: Option<i64>,
    /// CSV file to split into training and validation rows.
    #[arg(long, default_value = "datasets/digits.csv")]
    pub dataset: PathBuf,
    /// Fraction of the rows used for training; the rest validate.
    #[arg(long, default_value_t = 0.2)]
    pub train_fraction: f64,
    /// The dataset's target column.
    #[arg(long, default_value = "target")]
    pub target: String,
    /// Built-in template to tune.
    #[arg(long, default_value = "mlp_classifier")]
    pub template: String,
    /// Trials of each cluster job.
    #[arg(long, default_value_t = 10)]
    pub job_trials: u32,
    /// Worker runtime of the cluster jobs (local, docker or swarm).
    #[arg(long, default_value = "local")]
    pub runtime: String,
    /// Run only one part.
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The advisor searches, trained in this process.
    Quality,
    /// The cluster jobs with one and two workers.
    Jobs,
}

/// Seeds the split of the dataset into training and validation rows.
const SPLIT_SEED: u64 = 0x5b11_7da7;
/// Seeds the searches, as the synthetic comparison does.
const SEARCH_SEED: u64 = 0xb0a7;
/// Seeds both cluster jobs, so that they start from the same proposals.
const JOB_SEED: u64 = 7;
const PASSWORD: &str = "bench-password-1";

pub async fn run(args: AdvisorArgs) -> anyhow::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Before anything trains, so the first use of the compute thread
        // pool sees it; the nodes and their workers inherit it.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    if args.trials == 0 || args.seeds == 0 || args.job_trials == 0 {
        bail!("--trials, --seeds and --job-trials must be at least 1");
    }
    let template =
        builtin_template(&args.template).with_context(|| format!("no built-in template {}", args.template))?;
    let space = knob_space(&template, args.epochs_cap)?;
    let dir = tempfile::Builder::new().prefix("boat-bench-advisor-").tempdir()?;
    if !(args.train_fraction > 0.0 && args.train_fraction < 1.0) {
        bail!("--train-fraction must be between 0 and 1");
    }
    let split = Split::write(&args.dataset, dir.path(), args.train_fraction)?;
    let started = Instant::now();
    println!(
        "{} on {} ({} training / {} validation rows, split with a fixed seed), {}, RAYON_NUM_THREADS={}",
        template.name,
        args.dataset.display(),
        split.train_rows,
        split.val_rows,
        match args.epochs_cap {
            Some(n) => format!("epochs fixed at {n}"),
            None => "epochs searched in the template's range".to_string(),
        },
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
    );

    if args.only != Some(Part::Jobs) {
        boat_serving::init_runtime(None).context("loading ONNX Runtime (set ORT_DYLIB_PATH)")?;
        let (a, t, s, sp) = (args.clone(), template.clone(), space.clone(), split.clone());
        let quality = tokio::task::spawn_blocking(move || advisor_quality(&a, &t, &s, &sp)).await??;
        quality.print(&args, template.task);
    }
    if args.only != Some(Part::Quality) {
        job_wall_times(&args, &template, &split).await?;
    }
    println!("total wall time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The template's space with the epochs knob fixed at `cap`, if given.
fn knob_space(template: &TemplateInfo, cap: Option<i64>) -> anyhow::Result<KnobConfig> {
    let Some(cap) = cap else { return Ok(template.knob_config.clone()) };
    let overrides = BTreeMap::from([("epochs".to_string(), KnobOverride::Value(KnobValue::Int(cap)))]);
    template.knob_config.with_overrides(&overrides).with_context(|| format!("--epochs-cap {cap}"))
}

/// The dataset split once into two CSV files.
#[derive(Debug, Clone)]
struct Split {
    train: PathBuf,
    val: PathBuf,
    train_rows: usize,
    val_rows: usize,
}

impl Split {
    /// Orders the rows by a seeded hash of their position and writes the
    /// first `fraction` of them to `train.csv`, the rest to `val.csv`, both
    /// under `dir` with the original header.
    fn write(dataset: &Path, dir: &Path, fraction: f64) -> anyhow::Result<Split> {
        let text = std::fs::read_to_string(dataset).with_context(|| format!("reading {}", dataset.display()))?;
        let mut lines = text.lines();
        let header = lines.next().with_context(|| format!("{} is empty", dataset.display()))?;
        let mut rows: Vec<(u64, &str)> = lines
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| (trial_seed(SPLIT_SEED, i as u64), l))
            .collect();
        if rows.len() < 5 {
            bail!("{} has {} rows; the split needs at least 5", dataset.display(), rows.len());
        }
        rows.sort_unstable();
        let n_train = ((rows.len() as f64 * fraction).round() as usize).clamp(1, rows.len() - 1);
        let write = |name: &str, part: &[(u64, &str)]| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            let mut out = String::with_capacity(text.len());
            out.push_str(header);
            out.push('\n');
            for (_, line) in part {
                out.push_str(line);
                out.push('\n');
            }
            std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(Split {
            train: write("train.csv", &rows[..n_train])?,
            val: write("val.csv", &rows[n_train..])?,
            train_rows: n_train,
            val_rows: rows.len() - n_train,
        })
    }
}

/// One advisor's searches.
struct AdvisorRuns {
    kind: AdvisorKind,
    /// Per seed, every trial in order.
    searches: Vec<Vec<Observation>>,
    /// Seconds spent training, over every trial.
    train_s: f64,
    /// Trials whose training failed (they score NaN, which advisors ignore).
    failed: usize,
}

struct Quality {
    runs: Vec<AdvisorRuns>,
    wall: Duration,
}

fn advisor_quality(
    args: &AdvisorArgs,
    template: &TemplateInfo,
    space: &KnobConfig,
    split: &Split,
) -> anyhow::Result<Quality> {
    let kinds = [AdvisorKind::Random, AdvisorKind::Tpe];
    let total = (kinds.len() * args.seeds * args.trials) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} trials  {elapsed_precise} (eta {eta})  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut runs: Vec<AdvisorRuns> =
        kinds.iter().map(|&kind| AdvisorRuns { kind, searches: Vec::new(), train_s: 0.0, failed: 0 }).collect();
    let started = Instant::now();
    for s in 0..args.seeds {
        let seed = trial_seed(SEARCH_SEED, s as u64);
        for run in runs.iter_mut() {
            let kind = run.kind;
            let mut trial = 0u64;
            let mut best = f64::NEG_INFINITY;
            let mut objective = |knobs: &Knobs| -> f64 {
                let spec = TrialSpec {
                    template: template.name.clone(),
                    task: template.task,
                    knobs: knobs.clone(),
                    train_csv: split.train.clone(),
                    val_csv: split.val.clone(),
                    target_column: args.target.clone(),
                    seed: trial_seed(seed, trial),
                };
                trial += 1;
                let t0 = Instant::now();
                let result = train(&spec, &mut |_| {});
                let took = t0.elapsed().as_secs_f64();
                run.train_s += took;
                let (score, outcome) = match result {
                    Ok(out) => (out.score, format!("{} {:.4} ({} epochs)", out.metric, out.score, out.epochs_run)),
                    Err(e) => {
                        run.failed += 1;
                        (f64::NAN, format!("failed: {e}"))
                    }
                };
                if score.is_finite() {
                    best = best.max(score);
                }
                let best_so_far = if best.is_finite() { format!("{best:.4}") } else { "-".to_string() };
                let line = format!(
                    "{:<6} seed {}/{} trial {:>2}/{}  {outcome}  best {best_so_far}  {took:.1} s  {}",
                    kind.as_str(),
                    s + 1,
                    args.seeds,
                    trial,
                    args.trials,
                    show_knobs(knobs),
                );
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
                bar.set_message(format!("{kind} seed {}", s + 1));
                bar.inc(1);
                score
            };
            let search = run_search(kind, space, args.trials, seed, &mut objective);
            run.searches.push(search);
        }
    }
    bar.finish_and_clear();
    Ok(Quality { runs, wall: started.elapsed() })
}

/// The searched knobs of a trial, short.
fn show_knobs(knobs: &Knobs) -> String {
    knobs
        .iter()
        .map(|(k, v)| match v {
            KnobValue::Float(f) => format!("{k}={f:.2e}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The trials to reach a target, per seed, and their median as the
/// synthetic comparison counts it: the lower middle of the sorted counts, a
/// search that never gets there counting as more than the budget.
fn reach_median(reach: &[Option<usize>], budget: usize) -> Option<usize> {
    let mut counts: Vec<usize> = reach.iter().map(|r| r.unwrap_or(budget + 1)).collect();
    counts.sort_unstable();
    counts.get(counts.len().saturating_sub(1) / 2).copied().filter(|&t| t <= budget)
}

fn show_reach(r: Option<usize>) -> String {
    r.map_or_else(|| "not reached".to_string(), |t| t.to_string())
}

impl Quality {
    fn print(&self, args: &AdvisorArgs, task: Task) {
        let metric = task.metric();
        let bests = |run: &AdvisorRuns| -> Vec<f64> {
            run.searches.iter().map(|o| SearchSummary::of(o).best.unwrap_or(f64::NEG_INFINITY)).collect()
        };
        let target = self.runs.iter().find(|r| r.kind == AdvisorKind::Random).map_or(f64::NAN, |r| median(&bests(r)));
        println!();
        println!(
            "advisor quality: {} trials x {} seeds per advisor, validation {metric}, medians over seeds",
            args.trials, args.seeds
        );
        println!(
            "{:<8} {:>12} {:>10} {:>10}  {:<40} trials to reach random's median best {target:.4} (per seed)",
            "advisor", "median best", "train s", "failed", "best per seed"
        );
        let mut reached = Vec::new();
        for run in &self.runs {
            let b = bests(run);
            let reach: Vec<Option<usize>> = run.searches.iter().map(|o| trials_to_reach(o, target)).collect();
            let mid = reach_median(&reach, args.trials);
            reached.push((run.kind, median(&b), mid));
            let per_seed: Vec<String> = b.iter().map(|v| format!("{v:.4}")).collect();
            let per_seed_reach: Vec<String> = reach.iter().map(|r| r.map_or("-".into(), |t| t.to_string())).collect();
            println!(
                "{:<8} {:>12.4} {:>10.0} {:>10}  {:<40} {} ({})",
                run.kind.as_str(),
                median(&b),
                run.train_s,
                run.failed,
                per_seed.join(" "),
                show_reach(mid),
                per_seed_reach.join(" "),
            );
        }
        let get = |k: AdvisorKind| reached.iter().find(|(kind, _, _)| *kind == k);
        if let (Some((_, rb, rr)), Some((_, tb, tr))) = (get(AdvisorKind::Random), get(AdvisorKind::Tpe)) {
            println!("tpe/random median best: {:.4}", tb / rb);
            match (rr, tr) {
                (Some(r), Some(t)) => {
                    println!(
                        "trials to reach {target:.4}: random {r}, tpe {t} (random/tpe {:.2})",
                        *r as f64 / *t as f64
                    )
                }
                _ => println!("trials to reach {target:.4}: random {}, tpe {}", show_reach(*rr), show_reach(*tr)),
            }
        }
        println!("advisor searches took {:.0} s of wall time", self.wall.as_secs_f64());
    }
}

/// Runs one job with one worker and one with two on a fresh cluster.
async fn job_wall_times(args: &AdvisorArgs, template: &TemplateInfo, split: &Split) -> anyhow::Result<()> {
    let mut bench = BenchCluster::start(&args.cluster).await?;
    let leader = bench.cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let url = bench.cluster.http(leader);
    let http = HttpClient::new()?;
    let token = bench.developer(&http, &url, "bench@example.org", PASSWORD).await?;
    for (name, path) in [("bench_train", &split.train), ("bench_val", &split.val)] {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let upload = format!("/api/datasets/{name}?task={}", template.task);
        let r = http.send_raw(Method::POST, &url, &upload, "text/csv", bytes, Some(&token)).await?;
        if r.status != 201 {
            bail!("uploading {name}: {} {}", r.status, r.text);
        }
    }

    let mut fixed = serde_json::Map::new();
    if let Some(cap) = args.epochs_cap {
        fixed.insert("epochs".into(), json!(cap));
    }
    let mut overrides = serde_json::Map::new();
    overrides.insert(template.name.clone(), Value::Object(fixed));
    let mut rows = Vec::new();
    for workers in [1u32, 2] {
        let body = json!({
            "app": format!("bench-w{workers}"),
            "task": template.task,
            "train_dataset": "bench_train",
            "validation_dataset": "bench_val",
            "templates": [template.name],
            "budget": {"trials": args.job_trials, "workers": workers, "minutes": 120},
            "advisor": "tpe",
            "runtime": args.runtime,
            "knobs": overrides,
            "seed": JOB_SEED,
        });
        let t0 = Instant::now();
        let r = http.send_json(Method::POST, &url, "/api/jobs", Some(&body), Some(&token)).await?;
        if r.status != 201 {
            bail!("creating the {workers}-worker job: {} {}", r.status, r.text);
        }
        let id = r.body["id"].as_u64().context("a job id")?;
        let job = wait_for_job(&http, &url, id, &token, workers).await?;
        let wall = t0.elapsed().as_secs_f64();
        let r = http.send_json(Method::GET, &url, &format!("/api/jobs/{id}/trials"), None, Some(&token)).await?;
        let trial_s: f64 =
            r.body["trials"].as_array().map_or(0.0, |ts| ts.iter().filter_map(|t| t["duration_s"].as_f64()).sum());
        rows.push((workers, wall, trial_s, job));
    }
    bench.cluster.shutdown(Duration::from_secs(5)).await;

    println!();
    println!(
        "job wall time: {} trials of {} per job, tpe, runtime {}, {}-node cluster, jobs run one after the other",
        args.job_trials, template.name, args.runtime, args.cluster.nodes
    );
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "workers", "wall s", "job elapsed s", "sum trials s", "status", "completed", "errored", "best"
    );
    for (workers, wall, trial_s, job) in &rows {
        println!(
            "{:>8} {:>10.1} {:>14.1} {:>14.1} {:>10} {:>10} {:>10} {:>10}",
            workers,
            wall,
            job["elapsed_s"].as_f64().unwrap_or(f64::NAN),
            trial_s,
            job["status"].as_str().unwrap_or("?"),
            job["trials_completed"].as_u64().unwrap_or(0),
            job["trials_errored"].as_u64().unwrap_or(0),
            job["best"]["score"].as_f64().map_or("-".into(), |s| format!("{s:.4}")),
        );
        if job["status"] != "completed" {
            println!("{:>8} reason: {}", "", job["reason"].as_str().unwrap_or("none given"));
        }
    }
    if let [(_, one, _, _), (_, two, _, _), ..] = rows.as_slice() {
        println!("1 worker / 2 workers wall time: {:.2}", one / two);
    }
    Ok(())
}

/// Polls the job until it has ended and no trial runs, printing a line
/// whenever the count of finished trials changes.
async fn wait_for_job(http: &HttpClient, url: &str, id: u64, token: &str, workers: u32) -> anyhow::Result<Value> {
    let path = format!("/api/jobs/{id}");
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);
    let mut done = u64::MAX;
    loop {
        let r = http.send_json(Method::GET, url, &path, None, Some(token)).await?;
        if r.status != 200 {
            bail!("reading job {id}: {} {}", r.status, r.text);
        }
        let job = r.body;
        let now_done = job["trials_done"].as_u64().unwrap_or(0);
        if now_done != done {
            done = now_done;
            eprintln!(
                "job {id} ({workers} worker{}): {done}/{} trials done, best {}, {:.1} s",
                if workers == 1 { "" } else { "s" },
                job["budget"]["trials"],
                job["best"]["score"].as_f64().map_or("-".into(), |s| format!("{s:.4}")),
                job["elapsed_s"].as_f64().unwrap_or(0.0),
            );
        }
        if job["status"] != "running" && job["trials_running"].as_u64() == Some(0) {
            return Ok(job);
        }
        if Instant::now() > deadline {
            bail!("job {id} still runs after 3 hours: {job}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_median_counts_misses_as_beyond_the_budget() {
        assert_eq!(reach_median(&[Some(3), Some(9), Some(5)], 20), Some(5));
        assert_eq!(reach_median(&[Some(3), None, None], 20), None);
        assert_eq!(reach_median(&[Some(3), Some(4), None, None], 20), Some(4));
    }

    #[test]
    fn the_split_is_fixed_and_keeps_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("data.csv");
        let body: String = (0..50).map(|i| format!("{i},{}\n", i % 3)).collect();
        std::fs::write(&csv, format!("x,target\n{body}\n")).unwrap();
        let split_into = |name: &str| {
            let out = dir.path().join(name);
            std::fs::create_dir_all(&out).unwrap();
            Split::write(&csv, &out, 0.8).unwrap()
        };
        let (a, b) = (split_into("a"), split_into("b"));
        assert_eq!((a.train_rows, a.val_rows), (40, 10));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&a.train), read(&b.train));
        assert_eq!(read(&a.val), read(&b.val));
        let mut rows: Vec<String> =
            read(&a.train).lines().skip(1).chain(read(&a.val).lines().skip(1)).map(str::to_string).collect();
        assert!(read(&a.train).starts_with("x,target\n") && read(&a.val).starts_with("x,target\n"));
        rows.sort_by_key(|r| r.split(',').next().unwrap().parse::<u32>().unwrap());
        assert_eq!(rows, body.lines().collect::<Vec<_>>());
    }

    #[test]
    fn epochs_cap_fixes_the_knob_inside_its_range() {
        let t = builtin_template("mlp_classifier").unwrap();
        let space = knob_space(&t, Some(30)).unwrap();
        assert!(!space.knobs["epochs"].is_searched());
        assert_eq!(knob_space(&t, None).unwrap(), t.knob_config);
        assert!(knob_space(&t, Some(5)).is_err());
    }
}
