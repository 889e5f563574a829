//! The `docker` and `swarm` worker runtimes against the Docker engine of
//! this machine.
//!
//! The test builds two images with a tag of its own: Boat's worker image
//! from the `boat` binary (`cargo build -p boat` first; `BOAT_BIN` may name
//! another one) and the ONNX Runtime library (`ORT_DYLIB_PATH`), and a
//! probe image made the same way from this test binary, whose
//! [`probe_worker`] writes a file into the shared directory, prints to
//! stdout and stderr, sleeps and exits with the code it is told. Workers of
//! both images run through each runtime. The Swarm half initialises a
//! single-node Swarm when the engine is in none, and leaves it at the end.
//!
//! Everything the test makes (containers, services, images, a Swarm it
//! initialised) is removed when it ends, failed or not; it touches nothing
//! else. Without an engine, a `boat` binary or the ONNX Runtime library it
//! says why and passes without running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boat_admin::training::runtime::{
    build_boat_image, connect, image_exists, is_manager, DockerRuntime, LineSink, Runtime, SwarmRuntime, WorkerInfo,
    WorkerSpec, WorkerState,
};

/// Set in the probe worker's environment: the text it writes to its file.
const PROBE_MESSAGE: &str = "BOAT_RUNTIME_PROBE";
const PROBE_SLEEP_MS: &str = "BOAT_RUNTIME_PROBE_SLEEP_MS";
const PROBE_EXIT: &str = "BOAT_RUNTIME_PROBE_EXIT";
/// MiB the probe fills with data before it writes its file (0 by default).
const PROBE_ALLOC_MB: &str = "BOAT_RUNTIME_PROBE_ALLOC_MB";
/// Arguments that make this test binary run [`probe_worker`] alone.
const PROBE_ARGS: [&str; 3] = ["probe_worker", "--exact", "--nocapture"];

/// The probe worker, when this binary runs in the probe image; a test that
/// does nothing otherwise.
#[test]
fn probe_worker() {
    let Ok(message) = std::env::var(PROBE_MESSAGE) else { return };
    println!("probe started");
    eprintln!("probe on stderr");
    let alloc_mb: usize = std::env::var(PROBE_ALLOC_MB).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let filled = vec![1u8; alloc_mb << 20];
    println!("probe filled {} MiB", filled.len() >> 20);
    // The image's ONNX Runtime library loads, with what it links against.
    let ort = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH in the image");
    let path = std::ffi::CString::new(ort.clone()).expect("a path");
    // SAFETY: a plain dlopen of a library this binary never calls into.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        // SAFETY: dlerror answers a string owned by the loader, or null.
        let why = unsafe { libc::dlerror() };
        let why =
            if why.is_null() { "unknown".into() } else { unsafe { std::ffi::CStr::from_ptr(why) }.to_string_lossy() };
        println!("probe could not load {ort}: {why}");
    } else {
        println!("probe loaded {ort}");
    }
    let out = PathBuf::from(std::env::var("BOAT_OUTPUT_DIR").expect("BOAT_OUTPUT_DIR"));
    std::fs::create_dir_all(&out).expect("output directory");
    std::fs::write(out.join("probe.txt"), message).expect("probe file");
    let sleep_ms = std::env::var(PROBE_SLEEP_MS).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(sleep_ms));
    println!("probe done");
    std::process::exit(std::env::var(PROBE_EXIT).ok().and_then(|v| v.parse().ok()).unwrap_or(0));
}

/// Runs `docker` with these arguments and answers its standard output; a
/// failure is printed, not raised (cleanup must go on).
fn docker_cli(args: &[&str]) -> String {
    match Command::new("docker").args(args).output() {
        Ok(out) => {
            if !out.status.success() {
                eprintln!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Err(e) => {
            eprintln!("docker {}: {e}", args.join(" "));
            String::new()
        }
    }
}

fn ids(out: &str) -> Vec<&str> {
    out.split_whitespace().collect()
}

/// Removes, when dropped, everything the test made: the cluster's services
/// and containers, the images of its tags, and the Swarm if it made it.
/// Runs the `docker` CLI synchronously, so it works while unwinding too.
struct Cleanup {
    cluster: String,
    images: Mutex<Vec<String>>,
    /// Whether the test initialised the Swarm, and with it the network
    /// that links task containers to the host.
    made_swarm: Mutex<bool>,
    made_gwbridge: Mutex<bool>,
}

impl Cleanup {
    fn label(&self) -> String {
        format!("label=boat.cluster={}", self.cluster)
    }

    fn services(&self) -> Vec<String> {
        if !*self.made_swarm.lock().unwrap() && !swarm_active() {
            return vec![];
        }
        ids(&docker_cli(&["service", "ls", "-q", "--filter", &self.label()])).into_iter().map(String::from).collect()
    }

    fn containers(&self) -> Vec<String> {
        ids(&docker_cli(&["ps", "-aq", "--filter", &self.label()])).into_iter().map(String::from).collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let services = self.services();
        if !services.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(services.iter().map(String::as_str));
            docker_cli(&args);
        }
        // A removed service's containers go shortly after it.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !services.is_empty() && !self.containers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let containers = self.containers();
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            docker_cli(&args);
        }
        for image in self.images.lock().unwrap().iter() {
            if !docker_cli(&["images", "-q", image]).trim().is_empty() {
                docker_cli(&["rmi", "-f", image]);
            }
        }
        if *self.made_swarm.lock().unwrap() {
            docker_cli(&["swarm", "leave", "--force"]);
            if *self.made_gwbridge.lock().unwrap() {
                docker_cli(&["network", "rm", GWBRIDGE]);
            }
        }
    }
}

/// The bridge Docker makes for Swarm tasks and keeps after the Swarm.
const GWBRIDGE: &str = "docker_gwbridge";

fn swarm_active() -> bool {
    docker_cli(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim() == "active"
}

/// Collects a worker's output lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn sink(&self) -> LineSink {
        let lines = self.0.clone();
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_string()))
    }

    /// Whether every log stream feeding this collector has ended (dropped
    /// its sink) within `timeout`.
    async fn closed_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Arc::strong_count(&self.0) > 1 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line containing `text` arrives; answers how long that
    /// took from `since`.
    async fn wait_for(&self, text: &str, since: Instant, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            if self.all().iter().any(|l| l.contains(text)) {
                return since.elapsed();
            }
            assert!(Instant::now() < deadline, "no line with {text:?} within {timeout:?}; got {:?}", self.all());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The worker `id` as `list` sees it, if it does.
async fn listed(rt: &dyn Runtime, id: &str) -> Option<WorkerInfo> {
    rt.list().await.expect("list").into_iter().find(|w| w.id == id)
}

/// Polls `list` until worker `id` has ended; answers its state and how long
/// that took from `since`.
async fn wait_ended(rt: &dyn Runtime, id: &str, since: Instant, timeout: Duration) -> (WorkerState, Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let info = listed(rt, id).await.unwrap_or_else(|| panic!("worker {id} is not listed"));
        if info.state != WorkerState::Running {
            return (info.state, since.elapsed());
        }
        assert!(Instant::now() < deadline, "worker {id} still runs after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spec(trial: u32, image: Option<&str>, args: &[&str]) -> WorkerSpec {
    WorkerSpec {
        job: 1,
        trial,
        attempt: 1,
        image: image.map(String::from),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        paths: BTreeMap::new(),
        cpus: 0.5,
        memory_mb: 256,
    }
}

struct Setup {
    docker: bollard::Docker,
    cluster: String,
    shared: tempfile::TempDir,
    boat_image: String,
    probe_image: String,
}

/// Where the `boat` binary is: `BOAT_BIN`, else beside the target
/// directory this test binary was built in.
fn boat_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("BOAT_BIN") {
        return Some(PathBuf::from(bin));
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("debug"),
        // …/target/debug/deps/runtimes-<hash>
        None => std::env::current_exe().ok()?.parent()?.parent()?.to_path_buf(),
    };
    Some(target.join("boat")).filter(|p| p.is_file())
}

fn image_size_mib(tag: &str) -> f64 {
    docker_cli(&["image", "inspect", "--format", "{{.Size}}", tag]).trim().parse::<f64>().unwrap_or(0.0) / 1048576.0
}

/// Connects and builds the two images; `None` (with the reason printed)
/// when something the test needs is missing on this machine.
async fn setup(cleanup: &Cleanup) -> Option<Setup> {
    let docker = match connect().await {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let Some(boat_bin) = boat_binary() else {
        eprintln!("skipped: no boat binary (run `cargo build -p boat`, or set BOAT_BIN)");
        return None;
    };
    let Some(ort_lib) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).filter(|p| p.is_file()) else {
        eprintln!("skipped: ORT_DYLIB_PATH does not name the ONNX Runtime library (scripts/fetch-ort.sh)");
        return None;
    };
    let unique = cleanup.cluster.trim_start_matches("rt-");
    let boat_image = format!("boat-runtime-test:{unique}");
    let probe_image = format!("boat-runtime-probe:{unique}");
    cleanup.images.lock().unwrap().extend([boat_image.clone(), probe_image.clone()]);
    let probe_bin = std::env::current_exe().expect("this test binary");
    for (tag, bin) in [(&boat_image, boat_bin.as_path()), (&probe_image, probe_bin.as_path())] {
        let started = Instant::now();
        build_boat_image(&docker, tag, bin, &ort_lib).await.unwrap_or_else(|e| panic!("building {tag}: {e}"));
        assert!(image_exists(&docker, tag).await);
        eprintln!(
            "built {tag} from {} ({:.0} MiB binary): {:.0} MiB image in {:.1?}",
            bin.display(),
            std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
            image_size_mib(tag),
            started.elapsed()
        );
    }
    assert!(!image_exists(&docker, &format!("{boat_image}-absent")).await);
    let config =
        docker_cli(&["image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Env}}", &boat_image]);
    let ort_name = ort_lib.file_name().unwrap().to_string_lossy();
    assert!(config.contains(r#"["/boat"]"#), "{config}");
    assert!(config.contains(&format!("ORT_DYLIB_PATH=/opt/onnxruntime/{ort_name}")), "{config}");
    let shared = tempfile::tempdir().expect("shared directory");
    Some(Setup { docker, cluster: cleanup.cluster.clone(), shared, boat_image, probe_image })
}

/// What both runtimes must do alike. `kind` names the runtime in messages
/// and in the probe's output directory.
async fn exercise(rt: &dyn Runtime, setup: &Setup, kind: &str) {
    // Boat's own image: one worker that succeeds, one that fails.
    let ok_lines = Lines::default();
    let started = Instant::now();
    let ok = rt.launch(&spec(1, None, &["--version"]), ok_lines.sink()).await.expect("launch boat --version");
    let (state, took) = wait_ended(rt, &ok, started, Duration::from_secs(60)).await;
    assert_eq!(state, WorkerState::Exited { code: 0 }, "{kind}: boat --version");
    ok_lines.wait_for("boat 0.1.0", started, Duration::from_secs(10)).await;
    eprintln!("{kind}: boat --version seen exited {took:.1?} after launch");

    let bad_lines = Lines::default();
    let started = Instant::now();
    let bad = rt.launch(&spec(2, None, &["no-such-subcommand"]), bad_lines.sink()).await.expect("launch bad");
    let (state, took) = wait_ended(rt, &bad, started, Duration::from_secs(60)).await;
    assert!(matches!(state, WorkerState::Exited { code } if code != 0), "{kind}: a bad subcommand gave {state:?}");
    bad_lines.wait_for("no-such-subcommand", started, Duration::from_secs(10)).await;
    eprintln!("{kind}: a failing boat worker seen {state:?} {took:.1?} after launch");

    // The probe: environment, the shared mount, both output streams, a
    // worker seen running, then its exit code.
    let mut probe = spec(3, Some(&setup.probe_image), &PROBE_ARGS);
    let message = format!("hello from the {kind} runtime");
    probe.env = BTreeMap::from([
        (PROBE_MESSAGE.to_string(), message.clone()),
        (PROBE_SLEEP_MS.to_string(), "1500".to_string()),
        (PROBE_EXIT.to_string(), "3".to_string()),
    ]);
    probe.paths = BTreeMap::from([("BOAT_OUTPUT_DIR".to_string(), PathBuf::from(format!("jobs/1/{kind}")))]);
    let probe_lines = Lines::default();
    let started = Instant::now();
    let id = rt.launch(&probe, probe_lines.sink()).await.expect("launch probe");
    let info = listed(rt, &id).await.expect("the probe is listed");
    assert_eq!((info.job, info.trial, info.attempt, info.state), (1, 3, 1, WorkerState::Running));
    let first_line = probe_lines.wait_for("probe started", started, Duration::from_secs(60)).await;
    let (state, took) = wait_ended(rt, &id, started, Duration::from_secs(60)).await;
    assert_eq!(state, WorkerState::Exited { code: 3 }, "{kind}: the probe");
    probe_lines.wait_for("probe done", started, Duration::from_secs(10)).await;
    let lines = probe_lines.all();
    assert!(lines.iter().any(|l| l == "probe on stderr"), "{kind}: no stderr line in {lines:?}");
    let written = std::fs::read_to_string(setup.shared.path().join(format!("jobs/1/{kind}/probe.txt")));
    assert_eq!(written.expect("the probe's file in the shared directory"), message);
    assert!(lines.iter().any(|l| l.starts_with("probe loaded /opt/onnxruntime/")), "{kind}: {lines:?}");
    eprintln!("{kind}: probe's first line {first_line:.1?} after launch; seen exited {took:.1?} after launch (it sleeps 1.5 s)");

    // The output stream ends soon after the worker.
    let ended_at = Instant::now();
    assert!(probe_lines.closed_within(Duration::from_secs(5)).await, "{kind}: the output stream outlives the worker");
    eprintln!("{kind}: the probe's output stream ended {:.1?} after its exit was seen", ended_at.elapsed());

    // Another leader following the ended probe gets its output again.
    let again = Lines::default();
    rt.follow(&id, 0, again.sink()).await.expect("follow");
    again.wait_for("probe done", Instant::now(), Duration::from_secs(10)).await;
    assert!(rt.follow("no-such-worker", 0, again.sink()).await.is_err());

    // Launching the same attempt again replaces its leftover.
    let relaunched = rt.launch(&spec(1, None, &["--version"]), Lines::default().sink()).await.expect("relaunch");
    let same: Vec<_> = rt.list().await.expect("list").into_iter().filter(|w| w.trial == 1).collect();
    assert_eq!(same.len(), 1, "{kind}: {same:?}");
    assert_eq!(same[0].id, relaunched);

    for id in [&relaunched, &bad, &id] {
        rt.remove(id).await.expect("remove");
    }
    rt.remove(&id).await.expect("removing twice is fine");
    assert!(probe_lines.closed_within(Duration::from_secs(10)).await, "{kind}: an output stream outlives its worker");
    assert!(again.closed_within(Duration::from_secs(10)).await, "{kind}: a followed stream outlives its worker");
    assert_eq!(rt.list().await.expect("list"), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_docker_and_swarm() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let cleanup = Cleanup {
        cluster: format!("rt-{}-{nanos}", std::process::id()),
        images: Mutex::new(vec![]),
        made_swarm: Mutex::new(false),
        made_gwbridge: Mutex::new(false),
    };
    let Some(setup) = setup(&cleanup).await else { return };
    let (docker, shared_host) = (setup.docker.clone(), setup.shared.path().to_path_buf());
    let label = cleanup.label();

    let rt = DockerRuntime::new(docker.clone(), setup.cluster.clone(), shared_host.clone(), setup.boat_image.clone());
    // Limits and the mount, as the engine has them.
    let id = rt.launch(&spec(9, None, &["--version"]), Lines::default().sink()).await.expect("launch");
    let inspected = docker_cli(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}} {{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}",
        &id,
    ]);
    assert_eq!(inspected.trim(), format!("500000000 268435456 no {}:/shared", shared_host.display()));
    rt.remove(&id).await.expect("remove");
    // An image the engine lacks fails the launch, in a sentence.
    let err = rt.launch(&spec(8, Some("boat-runtime-test-absent:none"), &[]), Lines::default().sink()).await;
    assert!(err.is_err(), "{err:?}");
    eprintln!("docker: a missing image: {}", err.unwrap_err());
    // A worker over its memory limit is killed, and failed.
    let mut hog = spec(7, Some(&setup.probe_image), &PROBE_ARGS);
    hog.memory_mb = 64;
    hog.env = BTreeMap::from([
        (PROBE_MESSAGE.to_string(), "hog".to_string()),
        (PROBE_ALLOC_MB.to_string(), "512".to_string()),
    ]);
    hog.paths = BTreeMap::from([("BOAT_OUTPUT_DIR".to_string(), PathBuf::from("jobs/1/hog"))]);
    let started = Instant::now();
    let id = rt.launch(&hog, Lines::default().sink()).await.expect("launch");
    let (state, _) = wait_ended(&rt, &id, started, Duration::from_secs(60)).await;
    assert!(matches!(&state, WorkerState::Failed { reason } if reason.contains("memory limit")), "{state:?}");
    eprintln!("docker: a worker over its memory limit: {state:?}");
    rt.remove(&id).await.expect("remove");
    exercise(&rt, &setup, "docker").await;
    assert!(ids(&docker_cli(&["ps", "-aq", "--filter", &label])).is_empty(), "containers left behind");

    if !is_manager(&docker).await {
        if docker_cli(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim() != "inactive" {
            eprintln!("swarm half skipped: this engine is in a Swarm but not a manager of it");
            return;
        }
        let had_gwbridge =
            !docker_cli(&["network", "ls", "-q", "--filter", &format!("name=^{GWBRIDGE}$")]).trim().is_empty();
        *cleanup.made_gwbridge.lock().unwrap() = !had_gwbridge;
        *cleanup.made_swarm.lock().unwrap() = true;
        docker_cli(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(is_manager(&docker).await, "docker swarm init did not make this engine a manager");
    }
    let rt = SwarmRuntime::new(docker.clone(), setup.cluster.clone(), shared_host.clone(), setup.boat_image.clone());
    let id = rt.launch(&spec(9, None, &["--version"]), Lines::default().sink()).await.expect("launch");
    let inspected = docker_cli(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} {{.Spec.TaskTemplate.RestartPolicy.Condition}} {{.Spec.Mode.Replicated.Replicas}} {{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{.Source}}:{{.Target}}{{end}}",
        &id,
    ]);
    assert_eq!(inspected.trim(), format!("500000000 268435456 none 1 {}:/shared", shared_host.display()));
    rt.remove(&id).await.expect("remove");
    // An image no host has: the task is rejected, the worker failed.
    let started = Instant::now();
    let id =
        rt.launch(&spec(8, Some("boat-runtime-test-absent:none"), &[]), Lines::default().sink()).await.expect("launch");
    let (state, took) = wait_ended(&rt, &id, started, Duration::from_secs(60)).await;
    assert!(matches!(&state, WorkerState::Failed { reason } if reason.contains("No such image")), "{state:?}");
    eprintln!("swarm: a missing image: {state:?} after {took:.1?}");
    rt.remove(&id).await.expect("remove");
    exercise(&rt, &setup, "swarm").await;
    assert!(ids(&docker_cli(&["service", "ls", "-q", "--filter", &label])).is_empty(), "services left behind");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ids(&docker_cli(&["ps", "-aq", "--filter", &label])).is_empty() {
        assert!(Instant::now() < deadline, "task containers left behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(cleanup);
    assert!(docker_cli(&["images", "-q", &setup.boat_image]).trim().is_empty());
}
