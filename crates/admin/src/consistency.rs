//! Read consistency: every read of replicated state is linearizable by
//! default, on every node.
//!
//! Before answering, the node obtains the leader's read index and waits
//! until it has applied it (`RaftNode::read_barrier`), so a read that starts
//! after a write was acknowledged anywhere in the cluster sees that write.
//! A caller may opt out with the query parameter `consistency=stale` (or the
//! header / gRPC metadata entry `x-boat-consistency: stale`) for a local,
//! possibly stale read that needs no leader. With no leader reachable a
//! linearizable read answers 503 with `Retry-After`, never stale data.
//!
//! `/status`, `/metrics` and the health probes are always local.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::server::AppState;

/// Header (and gRPC metadata key) choosing the read consistency.
pub const CONSISTENCY_HEADER: &str = "x-boat-consistency";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Linearizable,
    Stale,
}

impl Consistency {
    fn parse(value: &str) -> Result<Self, ApiError> {
        match value {
            "linearizable" | "" => Ok(Self::Linearizable),
            "stale" => Ok(Self::Stale),
            other => Err(ApiError::bad_request(format!("consistency must be linearizable or stale, not {other:?}"))),
        }
    }

    /// From the query's `consistency` parameter or the header; the query wins.
    pub fn from_request(query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let in_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == "consistency").then_some(v)
        });
        if let Some(v) = in_query {
            return Self::parse(v);
        }
        match headers.get(CONSISTENCY_HEADER) {
            None => Ok(Self::Linearizable),
            Some(v) => Self::parse(v.to_str().map_err(|_| ApiError::bad_request("x-boat-consistency must be ASCII"))?),
        }
    }
}

impl AppState {
    /// Makes the following read of local state linearizable (or does nothing
    /// for a stale read).
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), ApiError> {
        if consistency == Consistency::Stale {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let result = self.node.read_barrier(self.config.read_timeout).await;
        metrics::histogram!("boat_read_barrier_seconds").record(started.elapsed().as_secs_f64());
        result.map(|_| ()).map_err(|e| {
            ApiError::unavailable(format!("{e}; retry, or ask for a possibly stale read with ?consistency=stale"), 1)
        })
    }
}

/// Extractor for read handlers: parses the requested consistency and, for
/// a linearizable read, waits at the read barrier before the handler runs.
pub struct Consistent(pub Consistency);

impl FromRequestParts<AppState> for Consistent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let c = Consistency::from_request(parts.uri.query(), &parts.headers)?;
        app.read_barrier(c).await?;
        Ok(Consistent(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_comes_from_the_query_or_the_header() {
        let none = HeaderMap::new();
        assert_eq!(Consistency::from_request(None, &none).unwrap(), Consistency::Linearizable);
        assert_eq!(Consistency::from_request(Some("a=1&consistency=stale"), &none).unwrap(), Consistency::Stale);
        let mut stale = HeaderMap::new();
        stale.insert(CONSISTENCY_HEADER, "stale".parse().unwrap());
        assert_eq!(Consistency::from_request(None, &stale).unwrap(), Consistency::Stale);
        assert_eq!(
            Consistency::from_request(Some("consistency=linearizable"), &stale).unwrap(),
            Consistency::Linearizable,
            "the query wins"
        );
        assert!(Consistency::from_request(Some("consistency=eventual"), &none).is_err());
    }
}
