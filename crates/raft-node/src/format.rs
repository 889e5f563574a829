//! Format versions of everything a node writes to disk or sends to a peer
//! that outlives one binary: log entry payloads, snapshots and the store
//! itself.
//!
//! Each encoded item starts with its format version. A reader decodes every
//! version it knows (older ones through frozen copies of their types, see
//! ARCHITECTURE.md, "Changing the replicated data") and refuses a newer one
//! with an error that names both versions, never with a panic or a guess.

/// Version of the log entry payload encoding (`LogPayload`). Format 2 added
/// the platform domain and the serving domain's app commands; its encoding
/// is a superset of format 1's, so format-1 bodies decode unchanged. Format
/// 3 added the training domain's commands, again as a superset.
pub const LOG_FORMAT: u32 = 3;
/// Version of the snapshot file layout and of the applied state inside it.
/// Format 2 added apps and the platform domain to the state, format 3 the
/// training domain.
pub const SNAPSHOT_FORMAT: u32 = 3;
/// Version of the node's on-disk layout (sled trees, log segments, blob and
/// snapshot directories), recorded in the store when it is created. Format
/// 2 moved the log's entries, vote and purge point out of sled into segment
/// files; a format-1 store is converted when it is opened.
pub const STORE_FORMAT: u32 = 2;

/// Data this binary cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{what} has format version {found}, newer than this binary reads (up to {known}); upgrade this node")]
    Newer { what: &'static str, found: u32, known: u32 },
    #[error("{what} has format version {found}, which this binary does not know (it reads 1 to {known})")]
    Unknown { what: &'static str, found: u32, known: u32 },
    #[error("{what} was written before format versions existed; this binary reads versions 1 to {known}: wipe the node (reset.sh) and let it catch up from the cluster")]
    Unversioned { what: &'static str, known: u32 },
    #[error("{what} is damaged: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// Checks a version read from data against the newest one this binary knows.
pub fn check(what: &'static str, found: u32, known: u32) -> Result<(), FormatError> {
    if found > known {
        Err(FormatError::Newer { what, found, known })
    } else if found == 0 {
        Err(FormatError::Unknown { what, found, known })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_version_is_refused_naming_both() {
        let e = check("log entry", 7, 1).unwrap_err();
        let text = e.to_string();
        assert!(text.contains('7') && text.contains("up to 1"), "{text}");
        assert!(check("log entry", 1, 1).is_ok());
        assert!(matches!(check("log entry", 0, 1), Err(FormatError::Unknown { .. })));
    }
}
