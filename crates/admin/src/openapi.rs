//! The OpenAPI 3 document of the REST API, served at `/api/openapi.json`.
//!
//! Every HTTP route is registered here, through utoipa's `OpenApiRouter`,
//! so a route cannot be served without being documented, nor documented
//! without being served. Each operation names the roles it needs in its
//! description and in `x-required-roles`. The web admin's pages under
//! `/ui/` are HTML for browsers, not API, and stay outside the document;
//! its `/ui/api/...` reaches only the routes registered here.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::AppState;
use crate::{api, api_training, control, metrics, models, predict, predictions, status, v2};

#[derive(OpenApi)]
#[openapi(
    info(title = "Boat", description = "Raft-replicated ML prediction serving: the admin and serving REST API.",
         license(name = "Apache-2.0")),
    modifiers(&BearerScheme)
)]
struct BaseDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented routes and their document.
pub fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(BaseDoc::openapi())
        .routes(routes!(api::login))
        .routes(routes!(api::logout))
        .routes(routes!(api::me))
        .routes(routes!(api::list_users, api::create_user))
        .routes(routes!(api::ban_user))
        .routes(routes!(api::unban_user))
        .routes(routes!(api::delete_user))
        .routes(routes!(api::list_datasets))
        .routes(routes!(api::upload_dataset, api::show_dataset, api::delete_dataset))
        .routes(routes!(api::list_apps, api::create_app))
        .routes(routes!(api::show_app, api::delete_app))
        .routes(routes!(api::set_members))
        .routes(routes!(api::start_app))
        .routes(routes!(api::stop_app))
        .routes(routes!(api::app_predict))
        .routes(routes!(api::members))
        .routes(routes!(api::cluster_status))
        .routes(routes!(api::add_node))
        .routes(routes!(api::remove_node))
        .routes(routes!(api::transfer_leader))
        .routes(routes!(api_training::list_templates, api_training::register_template))
        .routes(routes!(api_training::delete_template))
        .routes(routes!(api_training::list_jobs, api_training::create_job))
        .routes(routes!(api_training::show_job))
        .routes(routes!(api_training::stop_job))
        .routes(routes!(api_training::job_trials))
        .routes(routes!(api_training::best_trials))
        .routes(routes!(api_training::trial_logs))
        .routes(routes!(api_training::node_logs))
        .routes(routes!(models::list))
        .routes(routes!(models::show, models::upload))
        .routes(routes!(models::set_default))
        .routes(routes!(models::delete_version))
        .routes(routes!(predict::predict))
        .routes(routes!(predictions::get))
        .routes(routes!(status::greeting))
        .routes(routes!(status::status))
        .routes(routes!(metrics::render))
        .routes(routes!(control::control))
        .routes(routes!(v2::server_metadata))
        .routes(routes!(v2::live))
        .routes(routes!(v2::ready))
        .routes(routes!(v2::model_metadata))
        .routes(routes!(v2::model_ready))
        .routes(routes!(v2::infer))
        .routes(routes!(v2::version_metadata))
        .routes(routes!(v2::version_ready))
        .routes(routes!(v2::version_infer))
        .split_for_parts();
    let served = doc.clone();
    let router = router.route("/api/openapi.json", get(move || async move { Json(served) }));
    (router, doc)
}

/// Number of (path, method) operations in a document.
pub fn operation_count(doc: &utoipa::openapi::OpenApi) -> usize {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    doc.paths
        .paths
        .values()
        .filter_map(|item| serde_json::to_value(item).ok())
        .map(|v| v.as_object().map_or(0, |o| o.keys().filter(|k| METHODS.contains(&k.as_str())).count()))
        .sum()
}
