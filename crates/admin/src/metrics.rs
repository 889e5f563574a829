//! `GET /metrics`: Prometheus text format. Every metric is described once
//! here, with its unit.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::server::AppState;

/// Latency buckets, in seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Batch size buckets, in requests.
const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process-wide Prometheus recorder, with real histograms
/// (buckets) rather than summaries, and describes every metric.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("boat_batch_size".into()), COUNT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("boat_entry_requests".into()), COUNT_BUCKETS)?
        .install_recorder()?;
    describe();
    // Histogram samples pile up in the recorder until upkeep drains them
    // into their buckets; a rendering does that too, but an unscraped
    // leader held about 35 bytes per request served (100 MB in ten
    // minutes at full load).
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_EVERY);
        upkeep.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are drained only when scraped");
    }
    Ok(handle)
}

/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Registers the descriptions of every `boat_` metric.
fn describe() {
    describe_counter!("boat_requests_total", Unit::Count, "Prediction requests by model and outcome");
    describe_histogram!("boat_queue_seconds", Unit::Seconds, "Time a request waited in the leader's batching queue");
    describe_histogram!("boat_commit_seconds", Unit::Seconds, "Time from proposing a batch entry to its commit");
    describe_histogram!("boat_inference_seconds", Unit::Seconds, "Time of one ONNX Runtime call for a batch, by model");
    describe_histogram!("boat_batch_size", Unit::Count, "Requests per ONNX Runtime call, by model");
    describe_histogram!("boat_entry_requests", Unit::Count, "Requests packed into one log entry by the leader");
    describe_gauge!("boat_raft_term", Unit::Count, "Current Raft term");
    describe_gauge!("boat_raft_commit_index", Unit::Count, "Highest committed log index known here");
    describe_gauge!("boat_raft_last_applied", Unit::Count, "Highest log index applied here");
    describe_gauge!("boat_raft_is_leader", Unit::Count, "1 when this node is the leader");
    describe_counter!("boat_raft_leader_changes_total", Unit::Count, "Times this node saw a new leader");
    describe_counter!(
        "boat_divergence_total",
        Unit::Count,
        "Checkpoints that showed this replica differs from the leader"
    );
}

#[utoipa::path(get, path = "/metrics", tag = "node", description = "Prometheus metrics. Required role: none.", responses((status = 200, description = "metrics", content_type = "text/plain")), extensions(("x-required-roles" = json!([]))))]
pub async fn render(State(app): State<AppState>) -> Response {
    match &app.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => crate::error::ApiError::not_found("metrics are not enabled on this node").into_response(),
    }
}
