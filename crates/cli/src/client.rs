//! HTTP client for a Boat cluster, shared by the CLI commands, the deploy
//! supervisor, the benchmarks and the integration tests.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boat_raft::NodeStatus;
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
pub use reqwest::Method;
use reqwest::StatusCode;
use serde_json::Value;

/// An HTTP answer with its body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Does not follow redirects, so callers see the cluster's 307s.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self { http })
    }

    async fn finish(resp: reqwest::Response) -> anyhow::Result<Reply> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, headers, body, text })
    }

    pub async fn get(&self, base: &str, path: &str) -> anyhow::Result<Reply> {
        Self::finish(self.http.get(format!("{base}{path}")).send().await?).await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(&self, base: &str, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        let resp =
            self.http.post(format!("{base}{path}")).header("content-type", content_type).body(body).send().await?;
        Self::finish(resp).await
    }

    pub async fn post_json(&self, base: &str, path: &str, body: &Value) -> anyhow::Result<Reply> {
        Self::finish(self.http.post(format!("{base}{path}")).json(body).send().await?).await
    }

    pub async fn status(&self, base: &str) -> anyhow::Result<NodeStatus> {
        let r = self.get(base, "/status").await?;
        if !r.status.is_success() {
            bail!("{base}/status answered {}: {}", r.status, r.text);
        }
        serde_json::from_value(r.body).with_context(|| format!("decoding {base}/status"))
    }

    /// One `/predict` call to `base`, with an optional idempotency key.
    pub async fn predict(&self, base: &str, body: &Value, key: Option<&str>) -> anyhow::Result<Reply> {
        let mut req = self.http.post(format!("{base}/predict")).json(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        Self::finish(req.send().await?).await
    }

    /// Uploads an ONNX file as a new model version (admin token required).
    pub async fn upload_model(
        &self,
        base: &str,
        name: &str,
        bytes: Vec<u8>,
        token: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req = self
            .http
            .post(format!("{base}/api/models/{name}"))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::finish(req.send().await?).await
    }

    /// A JSON request with an optional bearer token.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::finish(req.send().await?).await
    }

    /// A request with a raw body of `content_type` and an optional bearer token.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req =
            self.http.request(method, format!("{base}{path}")).header("content-type", content_type).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::finish(req.send().await?).await
    }

    pub async fn control(&self, base: &str, cmd: &Value) -> anyhow::Result<Reply> {
        self.post_json(base, "/control", cmd).await
    }

    /// Sends a prediction to whichever node leads, following redirects and
    /// retrying through elections and dead nodes until `deadline`. Returns
    /// the first answer that is neither a redirect nor a 503.
    pub async fn predict_anywhere(
        &self,
        nodes: &[String],
        body: &Value,
        key: Option<&str>,
        deadline: Instant,
    ) -> anyhow::Result<Reply> {
        let mut target = 0usize;
        loop {
            let base = nodes[target % nodes.len()].clone();
            match self.predict(&base, body, key).await {
                Ok(r) if r.status == StatusCode::TEMPORARY_REDIRECT => {
                    if let Some(http) = r.body.get("leader_http").and_then(|v| v.as_str()) {
                        let leader = format!("http://{http}");
                        target = nodes.iter().position(|n| *n == leader).unwrap_or(target + 1);
                        continue;
                    }
                    target += 1;
                }
                Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => target += 1,
                Ok(r) => return Ok(r),
                Err(_) => target += 1,
            }
            if Instant::now() > deadline {
                bail!("no node accepted the prediction before the deadline");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
