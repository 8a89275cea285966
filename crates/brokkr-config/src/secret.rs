//! A secret setting's value: a type whose `Debug` and `Serialize` cannot show it, so no log line, admin answer,
//! error or diff prints it by accident.
//!
//! A small newtype rather than the `secrecy` crate: `secrecy`'s `SecretString` serializes only behind an opt-in
//! marker trait and never compares, while a secret setting here must deserialize from TOML and the environment,
//! compare with the value in force (a change is reported, without either value), and serialize to a redacted form
//! for the admin API.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// How a set secret is shown: in `Debug`, JSON, diffs and the admin status.
pub const REDACTED: &str = "<redacted>";

/// A secret value. Empty means unset, and is shown as empty.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it (comparing a presented token, validating its characters).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is unset.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `""` when unset, else [`REDACTED`].
    #[must_use]
    pub fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { REDACTED }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// Serializes as [`Secret::shown`]: the admin status and any other serialization carry no value.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_serialize_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).expect("serializes"), format!("\"{REDACTED}\""));
        assert_eq!(toml::Value::try_from(&secret).expect("serializes"), toml::Value::String(REDACTED.into()));
        assert_eq!(format!("{:?}", Secret::default()), "", "unset is shown as unset");
        assert_eq!(secret.expose(), "hunter2");
    }
}
