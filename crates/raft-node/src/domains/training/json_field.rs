//! Serde glue for fields whose types only JSON can carry.
//!
//! Knob values and knob spaces read naturally as JSON (`{"lr": 0.01}`,
//! `{"kind": "float", ...}`) through untagged and internally tagged enums,
//! which bincode, the log and snapshot encoding, cannot decode. In binary
//! encodings such a field travels as its canonical JSON text (maps are
//! ordered, so the text and the digest are the same on every replica); in
//! human-readable ones (API views) it stays plain JSON.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        value.serialize(s)
    } else {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        text.serialize(s)
    }
}

pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    if d.is_human_readable() {
        T::deserialize(d)
    } else {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}
