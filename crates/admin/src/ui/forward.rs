//! `/ui/api/<path>`: the node's own API for the web admin's scripts.
//!
//! The request runs through the node's router as `/<path>`, so roles,
//! validation and errors are the API's own. When the answer is a redirect
//! to the leader (a write on a follower), the request is sent there from
//! this node: a browser cannot follow a cross-origin redirect with an
//! `Authorization` header. Only redirects to a current member's HTTP
//! address are followed, at most [`HOPS`] times (a leader that has just
//! lost its office redirects once more), and only the API's own paths are
//! reachable (`/control` is not, nor any path with dot segments).
//!
//! On the leader the body streams straight into the handler. A follower
//! must keep the body to send it on, so it buffers it, up to the API's own
//! limit for that route, and only for a caller with a valid token when the
//! body is larger than an ordinary JSON request.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use crate::error::{ApiError, ErrorKind};
use crate::server::AppState;

/// Path prefixes reachable through `/ui/api`.
const ALLOWED: &[&str] = &["api/", "apps/", "v2/", "predictions/"];
/// Redirects followed per request.
const HOPS: usize = 2;
/// Request headers passed on to the leader.
const PASSED: &[HeaderName] = &[header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];
const PASSED_CUSTOM: &[&str] = &["idempotency-key", "x-boat-consistency"];
/// Response headers passed back from the leader.
const RETURNED: &[HeaderName] = &[header::CONTENT_TYPE, header::RETRY_AFTER];

#[derive(Clone)]
pub struct Forwarder {
    state: AppState,
    api: Router,
    /// Absent when no HTTP client could be built; forwarding then answers 503.
    http: Option<reqwest::Client>,
}

/// The leadership moved while the request was under way.
fn moved() -> ApiError {
    ApiError::unavailable("the leadership is moving; retry in a moment", 1)
}

impl Forwarder {
    pub fn new(state: AppState, api: Router) -> Self {
        // No proxy: the leader is a member on our own network. No redirects
        // followed by the client: each hop is checked here.
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build();
        let http = http.map_err(|e| tracing::warn!(error = %e, "the web admin cannot forward writes")).ok();
        Forwarder { state, api, http }
    }

    pub async fn handle(self, req: Request) -> Response {
        match self.run(req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    async fn run(self, req: Request) -> Result<Response, ApiError> {
        let (parts, body) = req.into_parts();
        let rest = parts.uri.path().strip_prefix("/ui/api/").unwrap_or("");
        let dotted = rest.split('/').any(|seg| seg == "." || seg == ".." || seg.contains('%'));
        if dotted || !ALLOWED.iter().any(|p| rest.starts_with(p)) {
            return Err(ApiError::not_found(format!("/ui/api/{rest} is not part of the API the web admin uses")));
        }
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("/{rest}?{q}"),
            None => format!("/{rest}"),
        };
        let uri: Uri = path_and_query.parse().map_err(|_| ApiError::bad_request("unparsable path"))?;
        let inner = |body: Body| {
            let mut inner = Request::builder().method(parts.method.clone()).uri(uri.clone());
            for (name, value) in &parts.headers {
                inner = inner.header(name, value);
            }
            inner.body(body).map_err(|e| ApiError::internal(e.to_string()))
        };

        if self.state.node.is_leader() {
            let response = self.call(inner(body)?).await;
            if self.leader_location(&response).is_some() {
                return Err(moved());
            }
            return Ok(response);
        }

        let config = &self.state.config;
        let upload =
            parts.method == Method::POST && (rest.starts_with("api/models/") || rest.starts_with("api/datasets/"));
        let limit = if upload { config.max_model_bytes } else { config.max_body_bytes };
        if upload {
            // Megabytes are held for a caller the cluster knows, only. A token
            // the leader issued a moment ago may not be applied here yet: an
            // unknown token is looked up again after the read barrier.
            if self.state.authorize_http(&parts.headers, crate::auth::ANYONE).is_err() {
                self.state.read_barrier(crate::consistency::Consistency::Linearizable).await?;
                self.state.authorize_http(&parts.headers, crate::auth::ANYONE)?;
            }
        }
        let body = axum::body::to_bytes(body, limit + 1)
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if body.len() > limit {
            return Err(ApiError::new(ErrorKind::PayloadTooLarge, format!("the request body is over {limit} bytes")));
        }
        let mut response = self.call(inner(Body::from(body.clone()))?).await;
        for _ in 0..HOPS {
            let Some(location) = self.leader_location(&response) else { return Ok(response) };
            response = self.send(&parts.method, &location, &parts.headers, body.clone()).await?;
        }
        if self.leader_location(&response).is_some() {
            return Err(moved());
        }
        Ok(response)
    }

    async fn call(&self, request: Request) -> Response {
        match self.api.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// The redirect's target, when `response` is a redirect to a member,
    /// at the address this node reaches that member at: the redirect names
    /// the one clients use, which from inside a container may be another.
    fn leader_location(&self, response: &Response) -> Option<String> {
        if !matches!(response.status(), StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT) {
            return None;
        }
        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
        let rest = location.strip_prefix("http://")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let members = self.state.members_view();
        let member = members.nodes.iter().find(|n| n.http_addr == authority || n.client_http == authority)?;
        Some(format!("http://{}{path}", member.http_addr))
    }

    async fn send(&self, method: &Method, url: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
        let http =
            self.http.as_ref().ok_or_else(|| ApiError::unavailable("this node cannot forward to the leader", 1))?;
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
            .map_err(|_| ApiError::bad_request(format!("method {method} cannot be forwarded")))?;
        // Uploads of large models may take a while; a write waits for commit.
        let timeout = self.state.config.write_timeout * 2 + Duration::from_secs(60);
        let mut request = http.request(method, url).timeout(timeout).body(body);
        for name in PASSED {
            if let Some(v) = headers.get(name) {
                request = request.header(name.as_str(), v.as_bytes());
            }
        }
        for name in PASSED_CUSTOM {
            if let Some(v) = headers.get(*name) {
                request = request.header(*name, v.as_bytes());
            }
        }
        let answer = request.send().await.map_err(|e| {
            let leader = url.split('/').nth(2).unwrap_or(url);
            ApiError::unavailable(format!("the leader at {leader} did not answer: {e}"), 1)
        })?;
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HeaderMap::new();
        for name in RETURNED {
            if let Some(v) =
                answer.headers().get(name.as_str()).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            {
                out.insert(name.clone(), v);
            }
        }
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| ApiError::unavailable(format!("the leader's answer was cut short: {e}"), 1))?;
        Ok((status, out, bytes).into_response())
    }
}
