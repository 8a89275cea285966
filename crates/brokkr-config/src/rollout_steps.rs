//! `rollout.steps`: the steps of a staged rollout's waves, such as `["1", "25%", "100%"]`, read and checked here so
//! that a file with steps no rollout can use is refused at start-up, naming the step.

use std::fmt;

/// One step of `rollout.steps`: a number of replicas, or a share of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// So many replicas in all, such as `1`.
    Count(usize),
    /// So many percent of the replicas in all, rounded up, such as `25%`.
    Percent(u8),
}

/// Why a list of steps cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepsError {
    /// There are no steps.
    #[error("no steps: give at least \"100%\"")]
    Empty,
    /// A step is neither a positive count nor a percentage from 1% to 100%.
    #[error("step {index} ({shown}) is neither a count such as 1 nor a percentage from 1% to 100%")]
    Unreadable {
        /// Its place in the list, from 1.
        index: usize,
        /// The step, cut to 32 bytes.
        shown: String,
    },
    /// The steps do not grow: each must cover more replicas than the one before it, or the same share.
    #[error("step {index} covers fewer replicas than the step before it")]
    Shrinking {
        /// Its place in the list, from 1.
        index: usize,
    },
    /// The last step is not `100%`: a rollout must end on every replica.
    #[error("the last step must be \"100%\", so that a rollout reaches every replica")]
    NotAll,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Reads steps such as `["1", "25%", "100%"]`.
///
/// # Errors
/// The first step that is not a positive count or a percentage from 1 to 100, steps that shrink (a count after a
/// larger count, a share after a larger share), and a last step other than `100%`.
pub fn parse_steps<S: AsRef<str>>(steps: &[S]) -> Result<Vec<Step>, StepsError> {
    let mut parsed = Vec::with_capacity(steps.len());
    for (i, text) in steps.iter().map(AsRef::as_ref).enumerate() {
        let unreadable = || StepsError::Unreadable { index: i + 1, shown: crate::text::clip(text, 32).into() };
        let step = match text.trim().strip_suffix('%') {
            Some(share) => {
                Step::Percent(share.trim().parse().ok().filter(|p| (1..=100).contains(p)).ok_or_else(unreadable)?)
            }
            None => Step::Count(text.trim().parse().ok().filter(|n| *n > 0).ok_or_else(unreadable)?),
        };
        let shrinks = match (parsed.last(), step) {
            (Some(Step::Count(before)), Step::Count(now)) => now < *before,
            (Some(Step::Percent(before)), Step::Percent(now)) => now < *before,
            _ => false,
        };
        if shrinks {
            return Err(StepsError::Shrinking { index: i + 1 });
        }
        parsed.push(step);
    }
    match parsed.last() {
        None => Err(StepsError::Empty),
        Some(Step::Percent(100)) => Ok(parsed),
        Some(_) => Err(StepsError::NotAll),
    }
}

/// Every problem of the rollout policy, each naming its key: steps no rollout can use, a bake out of 1 s to 24 h, a
/// deadline shorter than the bake or over 24 h.
pub(crate) fn check_policy(policy: &crate::settings::RolloutSettings) -> Vec<crate::ConfigError> {
    use std::time::Duration;

    use crate::checks::{invalid, within};
    let mut errors = Vec::new();
    if let Err(error) = parse_steps(&policy.steps) {
        errors.push(invalid("rollout.steps", error.to_string()));
    }
    let day = Duration::from_secs(86_400);
    errors.extend(within("rollout.bake", policy.bake, Duration::from_secs(1), day).err());
    errors.extend(within("rollout.progress_deadline", policy.progress_deadline, policy.bake, day).err());
    errors
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::RolloutSettings;

    fn keys(policy: &RolloutSettings) -> Vec<String> {
        check_policy(policy).iter().map(|e| e.key().unwrap_or_default().to_owned()).collect()
    }

    #[test]
    fn a_policy_no_rollout_can_follow_is_refused_naming_each_key() {
        assert!(keys(&RolloutSettings::default()).is_empty());
        let bad = RolloutSettings {
            steps: vec!["1".into(), "50%".into()],
            bake: Duration::ZERO,
            progress_deadline: Duration::from_secs(86_401),
            ..RolloutSettings::default()
        };
        assert_eq!(keys(&bad), ["rollout.steps", "rollout.bake", "rollout.progress_deadline"]);
        let short = RolloutSettings { progress_deadline: Duration::from_secs(60), ..RolloutSettings::default() };
        assert_eq!(keys(&short), ["rollout.progress_deadline"], "shorter than the bake");
        let message = check_policy(&bad)[0].to_string();
        assert!(message.contains("100%"), "{message}");
    }
}
