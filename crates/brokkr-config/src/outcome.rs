//! What a reload (or the start-up read) did, as one typed value with one string form for metrics, history,
//! annotations, audit lines and the admin API.

use serde::{Serialize, Serializer};

/// The outcome of judging and applying one document. Its string form ([`Outcome::as_str`]) is the `outcome` label
/// of the metrics, the history's and the admin API's `outcome` field and the Pod annotation's value; every place
/// that acts on an outcome matches it exhaustively, so a new one cannot be left unhandled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum Outcome {
    /// New settings are in force.
    Applied,
    /// The document was valid and nothing that applies live changed.
    Unchanged,
    /// The document was invalid; the configuration in force did not change.
    Rejected,
    /// At start-up only: the document was absent or could not be read in time, so the broker runs on the file and
    /// the environment until the source delivers one.
    Unread,
    /// The document was valid, but a staged rollout has not admitted this replica yet: the configuration in force
    /// did not change, and the document is judged again when the rollout admits it.
    Held,
}

impl Outcome {
    /// The one string form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
            Self::Unread => "unread",
            Self::Held => "held",
        }
    }

    /// The outcome whose string form is `text` (an annotation read back from a Pod, say).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|o| o.as_str() == text)
    }

    /// Every outcome, in declaration order.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_one_distinct_string_form_that_parses_back() {
        let forms: Vec<&str> = Outcome::all().map(Outcome::as_str).collect();
        assert_eq!(
            forms,
            ["applied", "unchanged", "rejected", "unread", "held"],
            "the serialized forms must not change"
        );
        for outcome in Outcome::all() {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
            assert_eq!(serde_json::to_value(outcome).ok(), Some(serde_json::json!(outcome.as_str())));
        }
        assert_eq!(Outcome::parse("restart-required"), None);
    }
}
