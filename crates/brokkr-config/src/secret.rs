//! A secret setting's value: a type whose `Debug` and `Serialize` cannot show it, so no log line, admin answer,
//! error or diff prints it by accident.
//!
//! A small newtype rather than the `secrecy` crate: `secrecy`'s `SecretString` serializes only behind an opt-in
//! marker trait and never compares, while a secret setting here must deserialize from TOML and the environment,
//! compare with the value in force (a change is reported, without either value), and serialize to a redacted form
//! for the admin API.

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

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

/// The shortest admin token accepted from any source (`admin.token` or `admin.token_file`), in bytes: a ConfigMap
/// editor can test guesses through the webhook's answers, and any pod can try tokens on the HTTP port;
/// `openssl rand -hex 24` gives 48.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Whether every byte of `token` is visible ASCII, as a bearer token sent in an HTTP header must be.
#[must_use]
pub fn is_visible_ascii(token: &str) -> bool {
    token.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// Secrets in force that no settings layer holds, such as the admin token read from `admin.token_file`: a document
/// may not copy them into a shown setting, and no error shows them. One handle is shared by whoever reads the file
/// (it calls [`SecretsElsewhere::set`]) and every [`crate::ConfigLayers`] clone that builds documents.
#[derive(Clone, Default)]
pub struct SecretsElsewhere(Arc<RwLock<Vec<Secret>>>);

impl SecretsElsewhere {
    /// Replaces the secrets in force (the current token and, during an overlap, the previous one).
    pub fn set(&self, secrets: Vec<Secret>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = secrets;
    }

    /// The values that are set, for the checks that must find them (never to show them).
    #[must_use]
    pub fn values(&self) -> Vec<String> {
        let secrets = self.0.read().unwrap_or_else(PoisonError::into_inner);
        secrets.iter().filter(|s| !s.is_empty()).map(|s| s.expose().to_owned()).collect()
    }
}

/// Shows how many secrets it holds, never them.
impl fmt::Debug for SecretsElsewhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsElsewhere(<{} held>)", self.values().len())
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
