//! What an application log entry carries: a command of one of the domains,
//! plus the proposer's tag, behind a format version.
//!
//! The payload is encoded as `(format version, body bytes)`, both on disk (the
//! sled log) and on the wire (AppendEntries), so a node meeting a payload
//! from a newer binary refuses it with a clear error instead of decoding
//! garbage. The body (formats 1 and 2) is bincode of `(tag, Command)`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domains::Command;
use crate::format::{self, LOG_FORMAT};

/// One application entry: the command and the tag its proposer chose.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPayload {
    /// Node-local tag the proposer uses to learn when this entry commits
    /// (0 when nobody waits for the commit itself). Meaningless on other
    /// nodes, and never part of the replicated state.
    pub tag: u64,
    pub command: Command,
}

impl LogPayload {
    pub fn new(command: Command) -> Self {
        Self { tag: 0, command }
    }

    pub fn tagged(tag: u64, command: Command) -> Self {
        Self { tag, command }
    }
}

/// The payload body of format 1, borrowed for encoding.
#[derive(Serialize)]
struct BodyV1Ref<'a>(u64, &'a Command);

/// The payload body of format 1, owned for decoding.
#[derive(Deserialize)]
struct BodyV1(u64, Command);

impl Serialize for LogPayload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body = bincode::serialize(&BodyV1Ref(self.tag, &self.command)).map_err(serde::ser::Error::custom)?;
        (LOG_FORMAT, serde_bytes::Bytes::new(&body)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LogPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (version, body): (u32, serde_bytes::ByteBuf) = Deserialize::deserialize(d)?;
        decode_body(version, &body).map_err(D::Error::custom)
    }
}

/// Decodes a payload body of a known format version.
fn decode_body(version: u32, body: &[u8]) -> Result<LogPayload, format::FormatError> {
    format::check("log entry payload", version, LOG_FORMAT)?;
    // Format 2 only added commands (new variants at the ends of the enums),
    // so a format-1 body decodes as today's types. A later format that
    // changes a field decodes older bodies here, keyed on `version`, through
    // frozen copies of their types.
    let _ = version;
    let BodyV1(tag, command) = bincode::deserialize(body)
        .map_err(|e| format::FormatError::Corrupt { what: "log entry payload", detail: e.to_string() })?;
    Ok(LogPayload { tag, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::integrity::IntegrityCommand;

    #[test]
    fn payloads_round_trip_and_newer_formats_are_refused() {
        let p =
            LogPayload::tagged(9, Command::Integrity(IntegrityCommand::Checkpoint { upto: 3, digest: "ab".into() }));
        let bytes = bincode::serialize(&p).unwrap();
        assert_eq!(&bytes[..4], &LOG_FORMAT.to_le_bytes(), "the version comes first");
        assert_eq!(bincode::deserialize::<LogPayload>(&bytes).unwrap(), p);

        let mut newer = bytes.clone();
        newer[..4].copy_from_slice(&(LOG_FORMAT + 1).to_le_bytes());
        let e = bincode::deserialize::<LogPayload>(&newer).unwrap_err().to_string();
        assert!(e.contains(&format!("format version {}", LOG_FORMAT + 1)), "{e}");
        assert!(e.contains(&format!("up to {LOG_FORMAT}")), "{e}");
    }
}
