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
    pub requests: u64,
    pub errors: u64,
    /// Over the most recent requests (up to 2048) this node answered.
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
}

const RECENT: usize = 2048;

impl LatencyBook {
    pub fn record(&self, name: &str, elapsed: Duration, ok: bool) {
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let s = book.entry(name.to_string()).or_default();
        s.requests += 1;
        if !ok {
            s.errors += 1;
        }
        if s.recent_ms.len() == RECENT {
            s.recent_ms.pop_front();
        }
        s.recent_ms.push_back(elapsed.as_secs_f64() * 1000.0);
    }

    pub fn stats(&self, name: &str) -> AppStats {
        let book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = book.get(name) else { return AppStats::default() };
        let mut sorted: Vec<f64> = s.recent_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied();
        AppStats { requests: s.requests, errors: s.errors, p50_ms: pick(0.5), p99_ms: pick(0.99) }
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
            stats: self.latency.stats(&app.name),
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
        apps.iter().map(|a| self.app_view(a)).collect()
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
        Ok(self.app_view(&app))
    }
}
