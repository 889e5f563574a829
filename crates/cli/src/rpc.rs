//! The CLI's connection to a cluster: the gRPC admin service of any node,
//! following the leader for writes, with the caller's token.
//!
//! A call goes to the first reachable node. When a follower refuses a write
//! it names the leader in the `x-boat-leader` metadata entry and the call
//! is sent there; with no leader (an election) or an unreachable node the
//! call moves on and retries, for a bounded time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use boat_admin::admin_grpc::pb::admin_client::AdminClient;
use boat_admin::admin_grpc::pb::training_client::TrainingClient;
use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// Largest message a client sends or accepts (model and dataset uploads).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Where the cluster is and who is calling; shared by the client commands.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// A node's address (host:port or URL); repeat for several. Defaults to
    /// the nodes `boat deploy` starts (127.0.0.1:8080 to 8082).
    #[arg(long = "node", global = true, env = "BOAT_NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Bearer token (otherwise --token-file, then the token `boat login` saved,
    /// then ./.boat/admin-token).
    #[arg(long, env = "BOAT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding a bearer token.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Print replies as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many seconds without an answer (elections, a
    /// node down).
    #[arg(long, global = true, default_value_t = 15)]
    pub timeout_s: u64,
}

/// The file `boat login` keeps the token in.
pub fn saved_token_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("boat").join("token"))
}

/// Writes a token readable by its owner only (mode 0600).
pub fn save_token(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode only applies to a new file; make an older one private too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(token.as_bytes())?;
    Ok(())
}

impl Conn {
    pub fn urls(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            (0..3).map(|i| format!("http://127.0.0.1:{}", 8080 + i)).collect()
        } else {
            self.nodes.iter().map(|n| if n.contains("://") { n.clone() } else { format!("http://{n}") }).collect()
        }
    }

    /// The token to send, if any.
    pub fn resolve_token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_string()));
        }
        if let Some(f) = &self.token_file {
            let t = std::fs::read_to_string(f).with_context(|| format!("reading the token from {}", f.display()))?;
            return Ok(Some(t.trim().to_string()));
        }
        for path in saved_token_path().into_iter().chain([PathBuf::from(".boat/admin-token")]) {
            if let Ok(t) = std::fs::read_to_string(&path) {
                return Ok(Some(t.trim().to_string()));
            }
        }
        Ok(None)
    }

    /// Calls the admin service, following the leader and retrying through
    /// elections. `call` builds and sends the request on a client.
    pub async fn call<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnMut(AdminClient<Channel>, Request<()>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = |ch: Channel| {
            AdminClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
        };
        self.call_on(client, call).await
    }

    /// Calls the training service, as [`Self::call`] does the admin one.
    pub async fn train<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnMut(TrainingClient<Channel>, Request<()>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = |ch: Channel| {
            TrainingClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
        };
        self.call_on(client, call).await
    }

    /// Calls a service of the node's gRPC port on the client `make` builds.
    async fn call_on<C, T, F, Fut>(&self, make: impl Fn(Channel) -> C, mut call: F) -> anyhow::Result<T>
    where
        F: FnMut(C, Request<()>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let token = self.resolve_token()?;
        let deadline = Instant::now() + Duration::from_secs(self.timeout_s);
        let urls = self.urls();
        let mut next = 0usize;
        // The leader a follower named, tried before the next node in turn.
        let mut preferred: Option<String> = None;
        let mut last: Option<anyhow::Error> = None;
        while Instant::now() < deadline {
            let url = match preferred.take() {
                Some(u) => u,
                None => {
                    next += 1;
                    urls[(next - 1) % urls.len()].clone()
                }
            };
            let channel = match Endpoint::from_shared(url.clone()) {
                Ok(endpoint) => endpoint.connect().await.map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            };
            let client = match channel {
                Ok(ch) => make(ch),
                Err(e) => {
                    last = Some(anyhow::anyhow!("{url} is unreachable: {e}"));
                    pause(next, urls.len()).await;
                    continue;
                }
            };
            let mut req = Request::new(());
            if let Some(t) = &token {
                let value: MetadataValue<_> =
                    format!("Bearer {t}").parse().context("the token holds characters a header cannot")?;
                req.metadata_mut().insert("authorization", value);
            }
            match call(client, req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => {
                    if let Some(leader) = status.metadata().get("x-boat-leader").and_then(|v| v.to_str().ok()) {
                        let leader = format!("http://{leader}");
                        if leader == url {
                            // A node that calls itself the leader yet refuses:
                            // leadership is changing.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        preferred = Some(leader);
                        last = Some(anyhow::anyhow!("{}", status.message()));
                        continue;
                    }
                    if status.code() == Code::Unavailable {
                        last = Some(anyhow::anyhow!("{url}: {}", status.message()));
                        pause(next, urls.len()).await;
                        continue;
                    }
                    return Err(RpcError(status).into());
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow::anyhow!("no node answered"))
            .context(format!("no answer within {} s", self.timeout_s)))
    }
}

/// After a full round of nodes without an answer, waits a little.
async fn pause(attempt: usize, nodes: usize) {
    if attempt.is_multiple_of(nodes.max(1)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A refusal from the cluster (as opposed to a failure to reach it).
#[derive(Debug)]
pub struct RpcError(pub Status);

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.0.message(), self.0.code())
    }
}

impl std::error::Error for RpcError {}

/// Builds a request with `body` and the metadata of `template`.
pub fn with_body<T>(template: Request<()>, body: T) -> Request<T> {
    let (metadata, extensions, ()) = template.into_parts();
    Request::from_parts(metadata, extensions, body)
}
