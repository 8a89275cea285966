//! Serde support for durations written the humantime way (`5s`, `1m 30s`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| D::Error::custom(format!("invalid duration {text:?} ({e}); write it like \"5s\" or \"1m 30s\"")))
}
