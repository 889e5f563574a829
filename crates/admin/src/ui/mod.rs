//! The web admin, served by every node under `/ui/`.
//!
//! Pages are HTML shells rendered here ([`pages`]) around one script each;
//! the scripts and the style sheet are files under `ui/assets/` compiled
//! into the binary ([`assets`]), so nothing is fetched from the internet and
//! nothing needs building beyond `cargo build`. The scripts read and write
//! through `/ui/api/...` ([`forward`]): the node's own REST API, with a
//! follower's redirects to the leader followed on the server, so that a
//! follower's page works as well as the leader's.

mod assets;
mod forward;
mod pages;

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::Router;

use crate::server::AppState;

/// The `/ui` routes. `api` is the node's documented router with its error
/// middleware, which `/ui/api/...` calls.
pub fn router(state: AppState, api: Router) -> Router {
    let forwarder = forward::Forwarder::new(state, api);
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { pages::render(pages::Page::Cluster, None) }))
        .route("/ui/login", get(|| async { pages::render(pages::Page::Login, None) }))
        .route("/ui/models", get(|| async { pages::render(pages::Page::Models, None) }))
        .route("/ui/apps", get(|| async { pages::render(pages::Page::Apps, None) }))
        .route(
            "/ui/apps/{name}",
            get(|Path(name): Path<String>| async move {
                match crate::models::check_name(&name) {
                    Ok(()) => pages::render(pages::Page::App, Some(&name)),
                    Err(_) => not_found(),
                }
            }),
        )
        .route("/ui/datasets", get(|| async { pages::render(pages::Page::Datasets, None) }))
        .route("/ui/jobs", get(|| async { pages::render(pages::Page::Jobs, None) }))
        // A job id is a number: anything else is no page, and never reaches
        // the script's API paths.
        .route(
            "/ui/jobs/{id}",
            get(|id: Result<Path<u64>, axum::extract::rejection::PathRejection>| async move {
                match id {
                    Ok(Path(id)) => pages::render(pages::Page::Job, Some(&id.to_string())),
                    Err(_) => not_found(),
                }
            }),
        )
        .route("/ui/users", get(|| async { pages::render(pages::Page::Users, None) }))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/api/{*path}", any(move |req| forwarder.clone().handle(req)))
        // Any other page under /ui: an HTML "not found", not the API's JSON.
        .route("/ui/{*rest}", get(|| async { not_found() }))
}

fn not_found() -> Response {
    (axum::http::StatusCode::NOT_FOUND, pages::render(pages::Page::NotFound, None)).into_response()
}
