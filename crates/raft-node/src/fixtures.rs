//! Committed bytes of the current formats (`fixtures/format-N/`): log
//! entries as the sled log stores them and a thin snapshot file. The test
//! decodes them, so a change that would make today's data unreadable fails
//! here. When a format version is bumped, the old directory stays (its
//! bytes must still decode) and a new one is written with
//! `BOAT_WRITE_FIXTURES=1 cargo test -p boat-raft fixtures`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use boat_serving::{Output, Tensor, TensorData};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

use crate::blobs::BlobStore;
use crate::domains::integrity::IntegrityCommand;
use crate::domains::platform::{ColumnKind, Dataset, DatasetColumn, DatasetTask, PlatformCommand, Role};
use crate::domains::serving::{
    App, AppMember, AppPredictBatch, Executor, PredictBatch, PredictOutcome, PredictRequest, PredictResult,
    RecordStore, Retention, ServingCommand, UploadChunk, UploadModel,
};
use crate::domains::training::{
    Budget, ContainerTemplate, DeployBest, JobSpec, JobStatus, ModelRef, TrainingCommand, TrialOutcome, WorkerRuntime,
};
use crate::domains::{AppliedState, ApplyEnv, Command, Domains};
use crate::format::{LOG_FORMAT, SNAPSHOT_FORMAT};
use crate::payload::LogPayload;
use crate::store::snapshot;
use crate::types::{BoatNode, Entry, LogId, SnapshotMeta, StoredMembership};
use boat_training::advisor::AdvisorKind;
use boat_training::knobs::{KnobConfig, KnobOverride, KnobSpec, KnobValue, Knobs};

fn dir(format: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/format-{format}"))
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn members() -> BTreeMap<u64, BoatNode> {
    (0..3)
        .map(|i| (i, BoatNode { raft_addr: format!("10.0.0.{i}:9080"), http_addr: format!("10.0.0.{i}:8080") }))
        .collect()
}

fn tensor() -> Tensor {
    // A valid shape and data: construction cannot fail.
    Tensor::new("input", vec![1, 4], TensorData::Fp32(vec![5.1, 3.5, 1.4, 0.2])).expect("valid tensor")
}

/// One entry of every kind the log holds today.
fn entries() -> Vec<(&'static str, Entry)> {
    let membership = Membership::new(vec![BTreeSet::from([0, 1, 2])], members());
    let normal = |index: u64, tag: u64, command: Command| Entry {
        log_id: log_id(2, index),
        payload: EntryPayload::Normal(LogPayload::tagged(tag, command)),
    };
    let serving = |c| Command::Serving(c);
    vec![
        ("membership", Entry { log_id: log_id(0, 0), payload: EntryPayload::Membership(membership) }),
        ("blank", Entry { log_id: log_id(2, 1), payload: EntryPayload::Blank }),
        (
            "predict_batch",
            normal(
                2,
                77,
                serving(ServingCommand::PredictBatch(PredictBatch {
                    model: "iris".into(),
                    version: Some(3),
                    proposed_at_ms: 1_700_000_000_000,
                    requests: vec![PredictRequest {
                        id: "key-1".into(),
                        inputs: vec![tensor()],
                        outputs: Some(vec!["label".into()]),
                    }],
                })),
            ),
        ),
        (
            "upload_chunk",
            normal(
                3,
                0,
                serving(ServingCommand::UploadChunk(UploadChunk {
                    upload_id: 9,
                    seq: 0,
                    at_ms: 1_700_000_000_001,
                    bytes: b"onnx bytes".to_vec(),
                })),
            ),
        ),
        (
            "upload_model",
            normal(
                4,
                0,
                serving(ServingCommand::UploadModel(UploadModel {
                    name: "iris".into(),
                    upload_id: 9,
                    chunks: 1,
                    sha256: crate::domains::serving::command::sha256_hex(b"onnx bytes"),
                    uploaded_at_ms: 1_700_000_000_002,
                })),
            ),
        ),
        ("set_default", normal(5, 0, serving(ServingCommand::SetDefault { name: "iris".into(), version: 1 }))),
        ("delete_version", normal(6, 0, serving(ServingCommand::DeleteVersion { name: "iris".into(), version: 2 }))),
        (
            "checkpoint",
            normal(7, 0, Command::Integrity(IntegrityCommand::Checkpoint { upto: 6, digest: "ab".repeat(32) })),
        ),
    ]
}

/// The entry kinds format 2 added.
fn entries_v2() -> Vec<(&'static str, Entry)> {
    let normal = |index: u64, command: Command| Entry {
        log_id: log_id(3, index),
        payload: EntryPayload::Normal(LogPayload::tagged(0, command)),
    };
    let platform = Command::Platform;
    let member = AppMember { model: "iris".into(), version: 1 };
    let app = App {
        name: "iris-app".into(),
        owner: 2,
        members: vec![member.clone()],
        rule: boat_serving::EnsembleRule::MeanProbabilities,
        running: true,
        requires_token: false,
        revision: 0,
        created_at_ms: 1_700_000_000_010,
        index: 0,
    };
    vec![
        (
            "create_user",
            normal(
                8,
                platform(PlatformCommand::CreateUser {
                    email: "dev@example.org".into(),
                    role: Role::AppDeveloper,
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                    at_ms: 1_700_000_000_005,
                }),
            ),
        ),
        ("set_banned", normal(9, platform(PlatformCommand::SetBanned { user_id: 2, banned: true }))),
        ("delete_user", normal(10, platform(PlatformCommand::DeleteUser { user_id: 3 }))),
        (
            "issue_token",
            normal(
                11,
                platform(PlatformCommand::IssueToken {
                    token_sha256: "ef".repeat(32),
                    user_id: 2,
                    issued_at_ms: 1_700_000_000_006,
                    expires_at_ms: 1_700_086_400_006,
                }),
            ),
        ),
        ("revoke_token", normal(12, platform(PlatformCommand::RevokeToken { token_sha256: "ef".repeat(32) }))),
        (
            "create_dataset",
            normal(13, platform(PlatformCommand::CreateDataset { dataset: dataset(), upload_id: 12, chunks: 1 })),
        ),
        ("delete_dataset", normal(14, platform(PlatformCommand::DeleteDataset { name: "iris".into() }))),
        ("create_app", normal(15, Command::Serving(ServingCommand::CreateApp(app)))),
        (
            "set_app_members",
            normal(
                16,
                Command::Serving(ServingCommand::SetAppMembers { name: "iris-app".into(), members: vec![member] }),
            ),
        ),
        (
            "set_app_running",
            normal(17, Command::Serving(ServingCommand::SetAppRunning { name: "iris-app".into(), running: false })),
        ),
        ("delete_app", normal(18, Command::Serving(ServingCommand::DeleteApp { name: "iris-app".into() }))),
        (
            "app_predict",
            normal(
                19,
                Command::Serving(ServingCommand::AppPredict(AppPredictBatch {
                    app: "iris-app".into(),
                    proposed_at_ms: 1_700_000_000_011,
                    requests: vec![PredictRequest { id: "key-2".into(), inputs: vec![tensor()], outputs: None }],
                })),
            ),
        ),
    ]
}

/// A train job as format 3 records it.
fn job_spec() -> JobSpec {
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "mlp_classifier".to_string(),
        BTreeMap::from([("hidden_units".to_string(), KnobOverride::Value(KnobValue::Int(32)))]),
    );
    JobSpec {
        app: "flowers".into(),
        task: DatasetTask::Classification,
        train_dataset: "iris".into(),
        validation_dataset: None,
        templates: vec!["mlp_classifier".into()],
        budget: Budget { trials: 4, minutes: 5.0, workers: 2, cpus: 1.0, memory_mb: 512 },
        advisor: AdvisorKind::Tpe,
        runtime: WorkerRuntime::Local,
        knob_overrides: overrides,
        deploy_best: Some(DeployBest { app: "flowers".into(), members: 2, rule: "mean_probabilities".into() }),
    }
}

fn knobs() -> Knobs {
    BTreeMap::from([
        ("hidden_units".to_string(), KnobValue::Int(32)),
        ("learning_rate".to_string(), KnobValue::Float(0.01)),
        ("activation".to_string(), KnobValue::Str("relu".into())),
    ])
}

/// Format 3's new entries: the training domain's commands.
fn entries_v3() -> Vec<(&'static str, Entry)> {
    let normal = |index: u64, command: TrainingCommand| Entry {
        log_id: log_id(4, index),
        payload: EntryPayload::Normal(LogPayload::tagged(0, Command::Training(command))),
    };
    let template = ContainerTemplate {
        name: "sk-tree".into(),
        task: DatasetTask::Classification,
        image: "example/sk-tree:1".into(),
        knob_config: KnobConfig {
            knobs: BTreeMap::from([("depth".to_string(), KnobSpec::Integer { min: 1, max: 8, log: false })]),
            early_stopping: None,
        },
        description: "a decision tree".into(),
        owner: 3,
        created_at_ms: 1_700_000_000_020,
    };
    let model = ModelRef { name: "flowers-job1".into(), version: 1 };
    vec![
        ("register_template", normal(20, TrainingCommand::RegisterTemplate(template))),
        ("delete_template", normal(21, TrainingCommand::DeleteTemplate { name: "sk-tree".into() })),
        (
            "create_job",
            normal(22, TrainingCommand::CreateJob { spec: job_spec(), owner: 1, seed: 42, at_ms: 1_700_000_000_022 }),
        ),
        (
            "propose_trial",
            normal(
                23,
                TrainingCommand::ProposeTrial {
                    job: 1,
                    template: "mlp_classifier".into(),
                    knobs: knobs(),
                    at_ms: 1_700_000_000_023,
                },
            ),
        ),
        (
            "start_trial",
            normal(
                24,
                TrainingCommand::StartTrial {
                    job: 1,
                    no: 1,
                    worker: "local:4242".into(),
                    node: 0,
                    at_ms: 1_700_000_000_024,
                },
            ),
        ),
        ("requeue_trial", normal(25, TrainingCommand::RequeueTrial { job: 1, no: 1, reason: "worker lost".into() })),
        (
            "finish_trial",
            normal(
                26,
                TrainingCommand::FinishTrial {
                    job: 1,
                    no: 1,
                    outcome: TrialOutcome::Completed { score: 0.96, metric: "accuracy".into(), epochs: 12, model },
                    at_ms: 1_700_000_000_026,
                },
            ),
        ),
        (
            "end_job",
            normal(
                27,
                TrainingCommand::EndJob {
                    job: 1,
                    status: JobStatus::Completed,
                    reason: Some("trial budget spent".into()),
                    deployed_to: Some("flowers".into()),
                    at_ms: 1_700_000_000_027,
                },
            ),
        ),
    ]
}

/// The format-2 state plus a train job with one completed trial.
fn state_v3(records: &RecordStore) -> AppliedState {
    let mut s = state_v2(records);
    for (_, entry) in entries_v3() {
        if let EntryPayload::Normal(LogPayload { command: Command::Training(cmd), .. }) = entry.payload {
            let s = &mut s;
            crate::domains::training::apply(&mut s.training, &s.platform, entry.log_id.index, cmd);
        }
    }
    s.seal(log_id(4, 27));
    s
}

fn dataset() -> Dataset {
    Dataset {
        name: "iris".into(),
        owner: 2,
        task: DatasetTask::Classification,
        columns: vec![
            DatasetColumn { name: "petal_length".into(), kind: ColumnKind::Numeric },
            DatasetColumn { name: "target".into(), kind: ColumnKind::Categorical },
        ],
        target: "target".into(),
        rows: 3,
        size_bytes: 40,
        sha256: crate::domains::serving::command::sha256_hex(b"csv bytes"),
        class_counts: BTreeMap::from([("0".into(), 2), ("1".into(), 1)]),
        uploaded_at_ms: 1_700_000_000_007,
        index: 13,
    }
}

/// Format 2's state adds a user, a token, a dataset and an app to format 1's.
fn state_v2(records: &RecordStore) -> AppliedState {
    let mut s = state(records);
    let user = PlatformCommand::CreateUser {
        email: "dev@example.org".into(),
        role: Role::AppDeveloper,
        password_hash: "hash".into(),
        at_ms: 1_700_000_000_005,
    };
    crate::domains::platform::apply(&mut s.platform, 8, user);
    let token = PlatformCommand::IssueToken {
        token_sha256: "ef".repeat(32),
        user_id: 1,
        issued_at_ms: 1_700_000_000_006,
        expires_at_ms: 1_700_086_400_006,
    };
    crate::domains::platform::apply(&mut s.platform, 9, token);
    s.platform.datasets.insert("iris".into(), dataset());
    let app = App {
        name: "iris-app".into(),
        owner: 1,
        members: vec![AppMember { model: "iris".into(), version: 1 }],
        rule: boat_serving::EnsembleRule::MajorityVote,
        running: true,
        requires_token: true,
        revision: 0,
        created_at_ms: 1_700_000_000_010,
        index: 0,
    };
    let catalog = s.serving.catalog.clone();
    s.serving.apps.create(&catalog, app, 15).expect("members exist");
    s.seal(log_id(3, 15));
    s
}

/// A state with a model version, a staged chunk and a prediction record
/// (written into `records`).
fn state(records: &RecordStore) -> AppliedState {
    let mut s = AppliedState::default();
    let catalog = &mut s.serving.catalog;
    catalog.upload("iris", crate::domains::serving::command::sha256_hex(b"onnx bytes"), 10, 1_700_000_000_002, 4);
    catalog.stage_chunk(11, 0, "cd".repeat(32), 1_700_000_000_003).expect("first chunk");
    let outcome = PredictOutcome {
        id: "key-1".into(),
        model: "iris".into(),
        version: 1,
        index: 5,
        term: 2,
        result: PredictResult::Output(vec![Output::Tensor(tensor())]),
        duplicate: false,
    };
    s.serving.record(records, "fingerprint".into(), outcome, 1_700_000_000_004, Retention::default());
    s.membership =
        StoredMembership::new(Some(log_id(0, 0)), Membership::new(vec![BTreeSet::from([0, 1, 2])], members()));
    s.seal(log_id(2, 7));
    s
}

fn snapshot_meta(s: &AppliedState) -> SnapshotMeta {
    SnapshotMeta { last_log_id: s.last_applied, last_membership: s.membership.clone(), snapshot_id: "2-7-0".into() }
}

/// A blob store and a record store in a temporary directory.
fn stores() -> (tempfile::TempDir, BlobStore, ApplyEnv) {
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = BlobStore::open(dir.path().join("blobs")).expect("blob store");
    let db = sled::Config::new().path(dir.path().join("db")).open().expect("sled");
    let records = RecordStore::open(&db).expect("record store");
    let executor = Executor::new(boat_serving::ModelRegistry::new(Default::default()));
    let env = ApplyEnv::new(Domains { executor, retention: Retention::default() }, blobs.clone(), records);
    (dir, blobs, env)
}

/// Writes the current format's fixtures (only when asked to).
fn write_current() {
    let d = dir(LOG_FORMAT.max(SNAPSHOT_FORMAT));
    std::fs::create_dir_all(&d).expect("fixture directory");
    for (name, entry) in entries().into_iter().chain(entries_v2()).chain(entries_v3()) {
        std::fs::write(d.join(format!("entry-{name}.bin")), bincode::serialize(&entry).expect("encode"))
            .expect("write");
    }
    let (_dir, blobs, env) = stores();
    blobs.put(b"onnx bytes").expect("blob");
    blobs.put(b"csv bytes").expect("blob");
    let s = state_v3(&env.records);
    // The staged chunk's blob is absent on purpose: only the model file is carried.
    let refs: BTreeSet<String> = s.blob_refs().into_iter().filter(|r| blobs.contains(r)).collect();
    let encoded = snapshot::encode_state(&s).expect("encode state");
    let meta = snapshot_meta(&s);
    snapshot::write(&d.join("snapshot-thin.snap"), &meta, &encoded, &refs, &blobs, None).expect("write");
    let mut rows = env.export_rows(&s).map(|r| r.map_err(|e| snapshot::SnapshotError::Io(std::io::Error::other(e))));
    snapshot::write(&d.join("snapshot-full.snap"), &meta, &encoded, &refs, &blobs, Some(&mut rows)).expect("write");
}

#[test]
fn format_1_fixtures_decode_to_what_they_were_written_from() {
    if std::env::var_os("BOAT_WRITE_FIXTURES").is_some() {
        write_current();
    }
    let d = dir(1);
    for (name, expected) in entries() {
        let bytes = std::fs::read(d.join(format!("entry-{name}.bin"))).expect("fixture present");
        let decoded: Entry = bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("entry {name}: {e}"));
        assert_eq!(format!("{decoded:?}"), format!("{expected:?}"), "entry {name}");
    }

    let file = std::fs::File::open(d.join("snapshot-thin.snap")).expect("fixture present");
    let head = snapshot::read(file, None).expect("snapshot head");
    assert_eq!(head.format, 1);
    assert!(!head.full);
    assert_eq!(head.meta.snapshot_id, "2-7-0");
    let decoded = snapshot::decode_state(head.format, &head.state).expect("state");
    let (_reference_dir, _, reference) = stores();
    let expected = state(&reference.records);
    assert_eq!(decoded.last_applied, expected.last_applied);
    assert_eq!(decoded.digest(), expected.digest());
    assert!(!decoded.digest().is_empty());
    assert_eq!(decoded.serving.catalog.resolve("iris", None), Ok(1));
    assert_eq!(decoded.serving.catalog.staged[&11].chunks, vec!["cd".repeat(32)]);
    assert_eq!(decoded.serving.records, expected.serving.records);
    assert_eq!(head.blobs.len(), 1, "the model file, by hash and size");
    assert_eq!(head.blobs[0].1, 10);

    // The full snapshot carries the model file and the prediction record.
    let (_dir, blobs, env) = stores();
    let mut import =
        |row: Vec<u8>| env.import_row(&row).map_err(|e| snapshot::SnapshotError::Io(std::io::Error::other(e)));
    let file = std::fs::File::open(d.join("snapshot-full.snap")).expect("fixture present");
    let full = snapshot::read(file, Some(snapshot::Sinks { blobs: &blobs, rows: &mut import })).expect("full snapshot");
    assert!(full.full);
    assert_eq!(full.state, head.state);
    assert_eq!(blobs.read(&head.blobs[0].0).expect("blob carried"), b"onnx bytes");
    let record = env.records.outcome(&decoded.serving.records, "key-1").expect("record carried");
    assert_eq!(record.result, PredictResult::Output(vec![Output::Tensor(tensor())]));
    assert_eq!(record.index, 5);
    assert!(decoded.serving.apps.apps.is_empty() && decoded.platform.users.is_empty(), "format 1 had neither");
}

#[test]
fn format_2_fixtures_decode_and_are_todays_encoding() {
    let d = dir(2);
    for (name, expected) in entries().into_iter().chain(entries_v2()) {
        let bytes = std::fs::read(d.join(format!("entry-{name}.bin"))).expect("fixture present");
        let decoded: Entry = bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("entry {name}: {e}"));
        assert_eq!(format!("{decoded:?}"), format!("{expected:?}"), "entry {name}");
        if LOG_FORMAT == 2 {
            assert_eq!(bincode::serialize(&expected).expect("encode"), bytes, "entry {name}: today's is format 2");
        }
    }
    let file = std::fs::File::open(d.join("snapshot-thin.snap")).expect("fixture present");
    let head = snapshot::read(file, None).expect("snapshot head");
    assert_eq!(head.format, 2);
    let decoded = snapshot::decode_state(head.format, &head.state).expect("state");
    let (_reference_dir, _, reference) = stores();
    let expected = state_v2(&reference.records);
    assert_eq!(decoded.digest(), expected.digest());
    assert_eq!(decoded.platform.user_by_email("dev@example.org").map(|u| u.role), Some(Role::AppDeveloper));
    assert_eq!(decoded.platform.datasets["iris"], dataset());
    assert_eq!(decoded.serving.apps, expected.serving.apps);
    assert_eq!(head.blobs.len(), 2, "the model file and the dataset");
    if SNAPSHOT_FORMAT == 2 {
        assert_eq!(snapshot::encode_state(&expected).expect("encode"), head.state, "today's state is format 2");
    }
}

#[test]
fn format_3_fixtures_decode_and_are_todays_encoding() {
    let d = dir(3);
    for (name, expected) in entries().into_iter().chain(entries_v2()).chain(entries_v3()) {
        let bytes = std::fs::read(d.join(format!("entry-{name}.bin"))).expect("fixture present");
        let decoded: Entry = bincode::deserialize(&bytes).unwrap_or_else(|e| panic!("entry {name}: {e}"));
        assert_eq!(format!("{decoded:?}"), format!("{expected:?}"), "entry {name}");
        if LOG_FORMAT == 3 {
            assert_eq!(bincode::serialize(&expected).expect("encode"), bytes, "entry {name}: today's is format 3");
        }
    }
    let file = std::fs::File::open(d.join("snapshot-thin.snap")).expect("fixture present");
    let head = snapshot::read(file, None).expect("snapshot head");
    assert_eq!(head.format, 3);
    let decoded = snapshot::decode_state(head.format, &head.state).expect("state");
    let (_reference_dir, _, reference) = stores();
    let expected = state_v3(&reference.records);
    assert_eq!(decoded.digest(), expected.digest());
    let job = &decoded.training.jobs[&1];
    assert_eq!(job.spec, job_spec());
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.trials[0].knobs, knobs());
    assert_eq!((job.trials[0].attempt, job.trials[0].score), (2, Some(0.96)));
    assert!(decoded.training.templates.is_empty(), "registered, then deleted");
    assert_eq!(decoded.platform.datasets["iris"], dataset());
    if SNAPSHOT_FORMAT == 3 {
        assert_eq!(snapshot::encode_state(&expected).expect("encode"), head.state, "today's state is format 3");
    }
}
