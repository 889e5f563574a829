//! Appending a command to the log on behalf of an admin operation, with
//! the one mapping from write failures and refusals to answers.

use boat_raft::{Command, CommandResult, RefusalKind, ServingCommand, UploadChunk, UPLOAD_CHUNK_BYTES};

use crate::error::ApiError;
use crate::inference::{now_ms, write_error};
use crate::server::AppState;

impl AppState {
    /// Fails with the leader's address unless this node leads, so that an
    /// operation that does work before writing (hashing a password,
    /// validating a file) does it only where the write can happen.
    pub fn require_leader(&self) -> Result<(), ApiError> {
        if self.node.is_leader() {
            Ok(())
        } else {
            let s = self.node.status();
            Err(ApiError::not_leader(s.leader_id, s.leader_http))
        }
    }

    /// Appends `cmd` and waits for its result; a refusal becomes 404 or 409.
    /// `check` names what to look at when the outcome is unknown.
    pub async fn append(&self, cmd: Command, check: &str) -> Result<CommandResult, ApiError> {
        let timeout = self.config.write_timeout;
        let written = tokio::select! {
            biased;
            w = tokio::time::timeout(timeout, self.node.write(cmd)) => w,
            _ = self.node.quorum_lost() => {
                return Err(ApiError::unavailable(format!("this leader lost contact with a majority; check {check} and retry"), 1))
            }
        };
        match written {
            Err(_) => Err(ApiError::unavailable(format!("not committed within {timeout:?}; check {check}"), 1)),
            Ok(Err(e)) => Err(write_error(e, None)),
            Ok(Ok(CommandResult::Refused(r))) => Err(match r.kind {
                RefusalKind::NotFound => ApiError::not_found(r.message),
                RefusalKind::Conflict => ApiError::conflict(r.message),
            }),
            Ok(Ok(result)) => Ok(result),
        }
    }

    /// Sends `bytes` through the log as 1 MiB `UploadChunk` entries, so that
    /// no single append is large, and returns (upload id, chunk count) for
    /// the entry that completes the upload (a model or a dataset).
    pub async fn stage_upload(&self, bytes: &[u8], check: &str) -> Result<(u64, u32), ApiError> {
        let upload_id = rand::random::<u64>();
        let mut chunks = 0u32;
        for piece in bytes.chunks(UPLOAD_CHUNK_BYTES) {
            let chunk = UploadChunk { upload_id, seq: chunks, at_ms: now_ms(), bytes: piece.to_vec() };
            self.append(Command::Serving(ServingCommand::UploadChunk(chunk)), check).await?;
            chunks += 1;
        }
        Ok((upload_id, chunks))
    }
}
