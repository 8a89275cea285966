//! A replica's staged-rollout verdict as it writes it on its own Pod (`config.brokkr.io/verdict`), and how the
//! coordinator reads one (docs/ARCHITECTURE.md, "The verdict a replica writes"): bound to one rollout and one text,
//! and healthy only up to the time it names.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The annotation that carries a replica's verdict.
pub const VERDICT: &str = "config.brokkr.io/verdict";

/// The longest verdict written or read, in bytes: the Pod guard admits owned values up to 1 KiB.
pub const MAX_VERDICT_BYTES: usize = 1024;

/// The most bytes of a verdict's reason.
pub const MAX_REASON_BYTES: usize = 256;

/// What the replica's gate says of the text it was admitted to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateState {
    /// Applied; the gate has not judged it for long enough yet.
    Applied,
    /// Healthy, up to `through`.
    Healthy,
    /// The gate failed: the replica has rolled back.
    Failed,
    /// This replica's own judgement refuses the text (its file or environment differs).
    Rejected,
}

/// One verdict: which rollout and text it is about, what the gate says, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// The rollout's id, as the status names it.
    pub rollout: String,
    /// SHA-256 of the text, in hex.
    pub hash: String,
    /// What the gate says.
    pub state: GateState,
    /// Up to when the gate has found the replica healthy (RFC 3339).
    pub through: String,
    /// Why, for `failed` and `rejected`; empty otherwise.
    #[serde(default)]
    pub reason: String,
    /// The gate that judged (`traffic`, `readiness`), for the Event that names it.
    #[serde(default)]
    pub gate: String,
}

/// Why an annotation is not a verdict; what it quotes of the annotation is cut and escaped (another principal may
/// have written it, until the chart's policy is in place).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// Longer than [`MAX_VERDICT_BYTES`].
    #[error("the verdict is {0} bytes long; at most {MAX_VERDICT_BYTES} are read")]
    TooLong(usize),
    /// Not the JSON form of a [`Verdict`].
    #[error("the verdict is not readable: {0}")]
    Unreadable(String),
    /// A field is out of its form: a rollout id of `[a-z0-9-]` up to 64, a hash of 64 hex digits, an RFC 3339 time.
    #[error("the verdict's {0} is malformed")]
    Malformed(&'static str),
}

/// What a verdict means for the wave the coordinator is deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Healthy for the current rollout and text, through the end of the bake.
    Passes,
    /// Failed or rejected, for the current rollout and text.
    Fails(String),
    /// Not yet: about another rollout or text, or not healthy for long enough.
    Pending,
}

impl Verdict {
    /// The annotation's value; the reason is cut so that the whole stays within [`MAX_VERDICT_BYTES`].
    #[must_use]
    pub fn to_annotation(&self) -> String {
        let mut verdict = self.clone();
        verdict.reason = brokkr_config::text::clip(&verdict.reason, MAX_REASON_BYTES).into_owned();
        serde_json::to_string(&verdict).unwrap_or_default()
    }

    /// Reads an annotation's value, checking every field's form.
    ///
    /// # Errors
    /// Too long, not the JSON form, or a field out of its form.
    pub fn parse(text: &str) -> Result<Self, VerdictError> {
        if text.len() > MAX_VERDICT_BYTES {
            return Err(VerdictError::TooLong(text.len()));
        }
        // serde_json's message may quote a value (an unknown state): cut and escaped, as all text from outside.
        let unreadable = |e: serde_json::Error| {
            VerdictError::Unreadable(brokkr_config::text::clip(&e.to_string(), MAX_REASON_BYTES).into_owned())
        };
        let verdict: Self = serde_json::from_str(text).map_err(unreadable)?;
        let id_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if verdict.rollout.is_empty() || verdict.rollout.len() > 64 || !verdict.rollout.chars().all(id_char) {
            return Err(VerdictError::Malformed("rollout id"));
        }
        if verdict.hash.len() != 64 || !verdict.hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(VerdictError::Malformed("hash"));
        }
        if verdict.gate.len() > 32 || !verdict.gate.chars().all(id_char) {
            return Err(VerdictError::Malformed("gate"));
        }
        if humantime::parse_rfc3339(&verdict.through).is_err() {
            return Err(VerdictError::Malformed("time"));
        }
        Ok(verdict)
    }

    /// What this verdict means for rollout `rollout` of the text `hash`, whose wave's bake ends at `bake_end`. A
    /// verdict about another rollout or text is [`Standing::Pending`]: it neither passes nor fails the wave.
    #[must_use]
    pub fn standing(&self, rollout: &str, hash: &str, bake_end: SystemTime) -> Standing {
        if self.rollout != rollout || !self.hash.eq_ignore_ascii_case(hash) {
            return Standing::Pending;
        }
        let reason = || brokkr_config::text::clip(&self.reason, MAX_REASON_BYTES).into_owned();
        match self.state {
            GateState::Failed | GateState::Rejected => Standing::Fails(reason()),
            GateState::Healthy => match humantime::parse_rfc3339(&self.through) {
                Ok(through) if through >= bake_end => Standing::Passes,
                _ => Standing::Pending,
            },
            GateState::Applied => Standing::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HASH: &str = "3f9a1c0e2b7d3f9a1c0e2b7d3f9a1c0e2b7d3f9a1c0e2b7d3f9a1c0e2b7d0000";

    fn verdict(state: GateState, through: SystemTime) -> Verdict {
        Verdict {
            rollout: "r-1".into(),
            hash: HASH.into(),
            state,
            through: humantime::format_rfc3339_seconds(through).to_string(),
            reason: String::new(),
            gate: "traffic".into(),
        }
    }

    #[test]
    fn a_verdict_counts_only_for_its_own_rollout_and_text_and_through_the_bake() {
        let bake_end = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let healthy = verdict(GateState::Healthy, bake_end + Duration::from_secs(1));
        assert_eq!(healthy.standing("r-1", HASH, bake_end), Standing::Passes);
        assert_eq!(healthy.standing("r-2", HASH, bake_end), Standing::Pending, "another rollout's verdict");
        assert_eq!(healthy.standing("r-1", &HASH.replace('0', "1"), bake_end), Standing::Pending, "another text");
        let early = verdict(GateState::Healthy, bake_end - Duration::from_secs(1));
        assert_eq!(early.standing("r-1", HASH, bake_end), Standing::Pending, "healthy, but not through the bake");
        let applied = verdict(GateState::Applied, bake_end + Duration::from_secs(60));
        assert_eq!(applied.standing("r-1", HASH, bake_end), Standing::Pending);
        let mut failed = verdict(GateState::Failed, bake_end);
        failed.reason = "error ratio 0.31 over 5 min (max 0.05)".into();
        assert_eq!(failed.standing("r-1", HASH, bake_end), Standing::Fails(failed.reason.clone()));
        assert_eq!(failed.standing("r-0", HASH, bake_end), Standing::Pending, "a failure of an earlier rollout");
        let rejected = verdict(GateState::Rejected, bake_end);
        assert!(matches!(rejected.standing("r-1", HASH, bake_end), Standing::Fails(_)));
    }

    #[test]
    fn an_annotation_round_trips_and_stays_within_the_guards_limit() {
        let mut long = verdict(GateState::Failed, SystemTime::UNIX_EPOCH);
        long.reason = "é".repeat(4096);
        let text = long.to_annotation();
        assert!(text.len() <= MAX_VERDICT_BYTES, "{} bytes", text.len());
        let read = Verdict::parse(&text).expect("reads back");
        assert_eq!((read.state, read.hash.as_str()), (GateState::Failed, HASH));
        assert!(read.reason.len() <= MAX_REASON_BYTES + brokkr_config::text::CUT.len());
    }

    #[test]
    fn anything_else_in_the_annotation_is_an_error_never_a_panic_or_a_pass() {
        let good = verdict(GateState::Healthy, SystemTime::UNIX_EPOCH).to_annotation();
        let bad = [
            String::new(),
            "{".into(),
            "null".into(),
            "[]".into(),
            good.replace("\"healthy\"", "\"passed\""),
            good.replace("\"r-1\"", "\"R 1\""),
            good.replace("\"traffic\"", "\"Traffic Gate\""),
            good.replace(HASH, "abc"),
            good.replace("1970-01-01T00:00:00Z", "yesterday"),
            good.replace("}", ",\"extra\":1}"),
            format!("{}{}", good, " ".repeat(MAX_VERDICT_BYTES)),
            "\u{0}\u{202e}".repeat(100),
            good.replace("\"healthy\"", &format!("\"\u{202e}{}\"", "x".repeat(900))),
        ];
        for text in bad {
            let error = Verdict::parse(&text).expect_err(&text).to_string();
            assert!(!error.contains('\u{202e}') && error.len() < 400, "{error}");
        }
    }
}
