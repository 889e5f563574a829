//! Apps: ensembles of model versions served under their own name.
//!
//! An app's name is also a model name for the serving APIs: `POST
//! /apps/{app}/predict`, `/predict` with `"model": app`, and the Open
//! Inference Protocol (HTTP and gRPC) all reach it through the one
//! prediction service, which submits the request as an app request.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use boat_raft::{App, AppMember, Command, CommandResult, ServingCommand, ServingResult};
use boat_serving::EnsembleRule;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::inference::now_ms;
use crate::models::check_name;
use crate::server::AppState;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    pub model: String,
    /// The version to pin; the model's default version when absent.
    #[serde(default)]
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    pub name: String,
    pub members: Vec<MemberSpec>,
    /// `mean_probabilities`, `majority_vote`, `mean` or `first` (default).
    #[serde(default)]
    pub rule: Option<String>,
    /// Predictions need a bearer token (any role); default false.
    #[serde(default)]
    pub requires_token: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMembersRequest {
    pub members: Vec<MemberSpec>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub model: String,
    pub version: u64,
}

/// Requests this node answered for an app, and their latency.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AppStats {
    /// The node that measured these figures.
    pub node_id: u64,
    pub requests: u64,
    pub errors: u64,
    /// Over the most recent requests (up to 2048) this node answered.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Seconds per point of `series`.
    pub bucket_s: u64,
    /// The last ten minutes, oldest first, one point per `bucket_s` seconds
    /// (empty buckets included); empty when this node never answered the app,
    /// and in the list of apps.
    pub series: Vec<StatsPoint>,
}

/// Requests answered in one time bucket, and their latency.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StatsPoint {
    /// The bucket's start, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppView {
    pub name: String,
    pub owner: u64,
    pub members: Vec<MemberView>,
    pub rule: String,
    /// `running` or `stopped`.
    pub status: String,
    pub requires_token: bool,
    /// Grows by one with every change of members.
    pub revision: u64,
    pub created_at_ms: u64,
    pub index: u64,
    /// Measured on the node that answers this call.
    pub stats: AppStats,
}

/// Request counts and recent latencies per app, node-local.
#[derive(Default)]
pub struct LatencyBook {
    inner: Mutex<HashMap<String, Samples>>,
}

#[derive(Default)]
struct Samples {
    requests: u64,
    errors: u64,
    recent_ms: VecDeque<f64>,
    /// Newest last; none older than [`BUCKETS`] buckets.
    buckets: VecDeque<Bucket>,
}

struct Bucket {
    start_s: u64,
    requests: u64,
    errors: u64,
    /// A uniform sample (reservoir) of at most [`BUCKET_SAMPLES`] latencies.
    ms: Vec<f64>,
}

const RECENT: usize = 2048;
/// Seconds per time bucket of the series.
pub const BUCKET_S: u64 = 10;
/// Buckets kept: ten minutes.
const BUCKETS: u64 = 60;
/// Latencies kept per bucket for its percentiles.
const BUCKET_SAMPLES: usize = 512;

/// The `q` quantile of `v`, which gets sorted.
fn quantiles(v: &mut [f64], qs: [f64; 2]) -> [Option<f64>; 2] {
    v.sort_by(f64::total_cmp);
    qs.map(|q| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied())
}

impl LatencyBook {
    pub fn record(&self, name: &str, elapsed: Duration, ok: bool) {
        self.record_at(name, elapsed, ok, now_ms() / 1000);
    }

    fn record_at(&self, name: &str, elapsed: Duration, ok: bool, now_s: u64) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let s = book.entry(name.to_string()).or_default();
        s.requests += 1;
        if !ok {
            s.errors += 1;
        }
        if s.recent_ms.len() == RECENT {
            s.recent_ms.pop_front();
        }
        s.recent_ms.push_back(ms);

        let start_s = now_s - now_s % BUCKET_S;
        if s.buckets.back().is_none_or(|b| b.start_s < start_s) {
            s.buckets.push_back(Bucket { start_s, requests: 0, errors: 0, ms: Vec::new() });
        }
        while s.buckets.front().is_some_and(|b| b.start_s + BUCKETS * BUCKET_S <= start_s) {
            s.buckets.pop_front();
        }
        // A clock that stepped back lands in the newest bucket.
        let Some(b) = s.buckets.back_mut() else { return };
        b.requests += 1;
        if !ok {
            b.errors += 1;
        }
        if b.ms.len() < BUCKET_SAMPLES {
            b.ms.push(ms);
        } else {
            let j = rand::random::<u64>() % b.requests;
            if let Some(slot) = b.ms.get_mut(j as usize) {
                *slot = ms;
            }
        }
    }

    pub fn stats(&self, node_id: u64, name: &str) -> AppStats {
        self.stats_at(node_id, name, now_ms() / 1000)
    }

    fn stats_at(&self, node_id: u64, name: &str, now_s: u64) -> AppStats {
        // Copy under the lock, sort after: predictions record into it.
        let (requests, errors, mut recent, buckets) = {
            let book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(s) = book.get(name) else {
                return AppStats { node_id, bucket_s: BUCKET_S, ..AppStats::default() };
            };
            let buckets: Vec<(u64, u64, u64, Vec<f64>)> =
                s.buckets.iter().map(|b| (b.start_s, b.requests, b.errors, b.ms.clone())).collect();
            (s.requests, s.errors, s.recent_ms.iter().copied().collect::<Vec<f64>>(), buckets)
        };
        let [p50_ms, p99_ms] = quantiles(&mut recent, [0.5, 0.99]);
        let newest = now_s - now_s % BUCKET_S;
        let mut buckets = buckets.into_iter().peekable();
        let series = (0..BUCKETS)
            .rev()
            .map(|back| {
                let start_s = newest.saturating_sub(back * BUCKET_S);
                while buckets.peek().is_some_and(|b| b.0 < start_s) {
                    buckets.next();
                }
                match buckets.next_if(|b| b.0 == start_s) {
                    Some((_, requests, errors, mut ms)) => {
                        let [p50_ms, p99_ms] = quantiles(&mut ms, [0.5, 0.99]);
                        StatsPoint { t_ms: start_s * 1000, requests, errors, p50_ms, p99_ms }
                    }
                    None => StatsPoint { t_ms: start_s * 1000, ..StatsPoint::default() },
                }
            })
            .collect();
        AppStats { node_id, requests, errors, p50_ms, p99_ms, bucket_s: BUCKET_S, series }
    }

    /// Forgets an app's figures (it was deleted; a new app of the same name
    /// starts from nothing).
    pub fn forget(&self, name: &str) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}

pub fn parse_rule(rule: Option<&str>) -> Result<EnsembleRule, ApiError> {
    match rule {
        None | Some("") => Ok(EnsembleRule::First),
        Some(r) => EnsembleRule::parse(r).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "unknown rule {r:?}; use one of {}",
                EnsembleRule::ALL.map(EnsembleRule::as_str).join(", ")
            ))
        }),
    }
}

fn app_result(r: CommandResult) -> Result<App, ApiError> {
    match r {
        CommandResult::Serving(ServingResult::AppChanged(a)) => Ok(a),
        other => Err(ApiError::internal(format!("unexpected result {other:?}"))),
    }
}

impl AppState {
    pub fn app_view(&self, app: &App) -> AppView {
        AppView {
            name: app.name.clone(),
            owner: app.owner,
            members: app.members.iter().map(|m| MemberView { model: m.model.clone(), version: m.version }).collect(),
            rule: app.rule.as_str().into(),
            status: if app.running { "running" } else { "stopped" }.into(),
            requires_token: app.requires_token,
            revision: app.revision,
            created_at_ms: app.created_at_ms,
            index: app.index,
            stats: self.latency.stats(self.node.id(), &app.name),
        }
    }

    /// Pins each member's version (the default when none is given).
    fn resolve_members(&self, specs: Vec<MemberSpec>) -> Result<Vec<AppMember>, ApiError> {
        let state = self.node.state().read();
        specs
            .into_iter()
            .map(|m| {
                let version = state
                    .serving
                    .catalog
                    .resolve(&m.model, m.version)
                    .map_err(|e| ApiError::not_found(e).with("model", m.model.clone()))?;
                Ok(AppMember { model: m.model, version })
            })
            .collect()
    }

    pub async fn create_app(&self, who: &Principal, req: CreateAppRequest) -> Result<AppView, ApiError> {
        check_name(&req.name)?;
        let rule = parse_rule(req.rule.as_deref())?;
        self.require_leader()?;
        let members = self.resolve_members(req.members)?;
        let app = App {
            name: req.name,
            owner: who.user_id,
            members,
            rule,
            running: true,
            requires_token: req.requires_token,
            revision: 0,
            created_at_ms: now_ms(),
            index: 0,
        };
        let app = app_result(self.append(Command::Serving(ServingCommand::CreateApp(app)), "GET /api/apps").await?)?;
        tracing::info!(app = %app.name, rule = app.rule.as_str(), by = %who.email, "app created");
        Ok(self.app_view(&app))
    }

    pub fn list_apps(&self, who: &Principal) -> Vec<AppView> {
        let apps: Vec<App> = {
            let state = self.node.state().read();
            state.serving.apps.apps.values().filter(|a| who.sees(a.owner)).cloned().collect()
        };
        // The list carries totals; an app's own view has the time series.
        apps.iter()
            .map(|a| {
                let mut view = self.app_view(a);
                view.stats.series.clear();
                view
            })
            .collect()
    }

    pub fn find_app(&self, who: &Principal, name: &str) -> Result<App, ApiError> {
        let state = self.node.state().read();
        state
            .serving
            .apps
            .apps
            .get(name)
            .filter(|a| who.sees(a.owner))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no app {name:?}")))
    }

    pub async fn set_app_members(
        &self,
        who: &Principal,
        name: &str,
        specs: Vec<MemberSpec>,
    ) -> Result<AppView, ApiError> {
        self.find_app(who, name)?;
        self.require_leader()?;
        let members = self.resolve_members(specs)?;
        let cmd = ServingCommand::SetAppMembers { name: name.to_string(), members };
        let app = app_result(self.append(Command::Serving(cmd), "GET /api/apps").await?)?;
        tracing::info!(app = %app.name, revision = app.revision, by = %who.email, "app members replaced");
        Ok(self.app_view(&app))
    }

    pub async fn set_app_running(&self, who: &Principal, name: &str, running: bool) -> Result<AppView, ApiError> {
        self.find_app(who, name)?;
        let cmd = ServingCommand::SetAppRunning { name: name.to_string(), running };
        let app = app_result(self.append(Command::Serving(cmd), "GET /api/apps").await?)?;
        Ok(self.app_view(&app))
    }

    pub async fn delete_app(&self, who: &Principal, name: &str) -> Result<AppView, ApiError> {
        self.find_app(who, name)?;
        let cmd = ServingCommand::DeleteApp { name: name.to_string() };
        let app = app_result(self.append(Command::Serving(cmd), "GET /api/apps").await?)?;
        tracing::info!(app = %app.name, by = %who.email, "app deleted");
        let view = self.app_view(&app);
        self.latency.forget(&app.name);
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_buckets_requests_and_forgets_after_ten_minutes() {
        let book = LatencyBook::default();
        let t0 = 1_000_000; // a bucket boundary
        for ms in [1, 2, 3, 4] {
            book.record_at("a", Duration::from_millis(ms), true, t0 + 3);
        }
        book.record_at("a", Duration::from_millis(50), false, t0 + BUCKET_S + 1);
        let st = book.stats_at(7, "a", t0 + BUCKET_S + 2);
        assert_eq!((st.node_id, st.requests, st.errors, st.series.len()), (7, 5, 1, BUCKETS as usize));
        let last = &st.series[st.series.len() - 1];
        let before = &st.series[st.series.len() - 2];
        assert_eq!((last.t_ms, last.requests, last.errors, last.p50_ms), ((t0 + BUCKET_S) * 1000, 1, 1, Some(50.0)));
        assert_eq!((before.t_ms, before.requests, before.p50_ms, before.p99_ms), (t0 * 1000, 4, Some(3.0), Some(4.0)));
        assert!(st.series[..st.series.len() - 2].iter().all(|p| p.requests == 0 && p.p50_ms.is_none()));

        // Ten minutes on, both buckets are gone from the series; the totals stay.
        book.record_at("a", Duration::from_millis(9), true, t0 + BUCKETS * BUCKET_S + 15);
        let st = book.stats_at(7, "a", t0 + BUCKETS * BUCKET_S + 15);
        assert_eq!(st.requests, 6);
        assert_eq!(st.series.iter().map(|p| p.requests).sum::<u64>(), 1);
        assert!(book.stats_at(7, "unknown", t0).series.is_empty());
    }

    #[test]
    fn a_full_bucket_keeps_a_bounded_sample() {
        let book = LatencyBook::default();
        for i in 0..(BUCKET_SAMPLES as u64 * 3) {
            book.record_at("a", Duration::from_micros(i), true, 500);
        }
        let inner = book.inner.lock().unwrap();
        let b = inner["a"].buckets.back().unwrap();
        assert_eq!((b.requests, b.ms.len()), (BUCKET_SAMPLES as u64 * 3, BUCKET_SAMPLES));
    }
}
