//! The one admission point of a staged rollout (docs/ARCHITECTURE.md, "Staged rollout"): `ConfigActor` asks an
//! [`Admission`] before it applies any valid document, on every path (watch, resync, on demand). The default,
//! [`AdmitAll`], is today's behaviour: every replica applies every valid version at once.

use std::fmt;

use sha2::{Digest, Sha256};

/// A version's identity: the SHA-256 of its document text, in lowercase hex. A label or annotation edit changes
/// the resourceVersion, not this; any change to the text, whitespace included, does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentHash(String);

impl DocumentHash {
    /// The hash of `text`.
    #[must_use]
    pub fn of(text: &str) -> Self {
        Self(format!("{:x}", Sha256::digest(text.as_bytes())))
    }

    /// The hex form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocumentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The newest document a replica judged: its hash, and why this replica's layers refuse it, if they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The text's hash.
    pub hash: DocumentHash,
    /// The judgement's error, redacted and capped as every judgement's is; `None` when valid.
    pub refusal: Option<String>,
}

/// Whether this replica may apply a version now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Apply it.
    Yes,
    /// Not now: keep what is in force. The version is held, not lost: when the answer changes, the rollout sends
    /// [`crate::messages::Readmit`] and it is judged again.
    Hold {
        /// Why, for the history and the status: `"waiting for wave 2 of 3"`.
        reason: String,
    },
}

/// Decides whether this replica applies a valid version.
pub trait Admission: Send + Sync + 'static {
    /// The answer for the version whose document hashes to `hash`. Called on the actor's thread: answer from state
    /// at hand, never block.
    fn admit(&self, hash: &DocumentHash) -> Admit;
}

/// Admits every version: every replica applies every valid edit at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &DocumentHash) -> Admit {
        Admit::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_texts_sha256_and_any_byte_changes_it() {
        assert_eq!(DocumentHash::of("").as_str(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(DocumentHash::of("[log]\nlevel = \"info\""), DocumentHash::of("[log]\nlevel = \"info\"\n"));
    }
}
