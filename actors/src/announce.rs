//! Which outcomes are news: the WARN lines and Events that must appear once per change, not once per re-read.

use brokkr_config::ReloadOutcome;

/// What the `ConfigActor` announced last: restart-only keys waiting, keys overridden by the environment, and the
/// last rejection.
#[derive(Debug, Default)]
pub(crate) struct Announcements {
    restart: Vec<&'static str>,
    shadowed: Vec<String>,
    rejection: Option<String>,
}

impl Announcements {
    /// True when `outcome` changes the set of restart-only keys waiting for a restart to a non-empty one: only
    /// then do the WARN line and the `RestartRequired` Event carry news. A rejected document changes nothing.
    pub(crate) fn restart_is_news(&mut self, outcome: &ReloadOutcome) -> bool {
        if matches!(outcome, ReloadOutcome::Rejected { .. }) {
            return false;
        }
        let pending: Vec<&'static str> = outcome.restart_required().iter().map(|c| c.key).collect();
        let news = !pending.is_empty() && pending != self.restart;
        self.restart = pending;
        news
    }

    /// True for a rejection whose reason was not the last one announced; any accepted document resets it, so the
    /// same mistake made again later is news again.
    pub(crate) fn rejection_is_news(&mut self, outcome: &ReloadOutcome) -> bool {
        match outcome {
            ReloadOutcome::Rejected { reason } => {
                let news = self.rejection.as_deref() != Some(reason.as_str());
                self.rejection = Some(reason.clone());
                news
            }
            _ => {
                self.rejection = None;
                false
            }
        }
    }

    /// A re-created ConfigMap that repeats an old mistake is news again.
    pub(crate) fn forget_rejection(&mut self) {
        self.rejection = None;
    }

    /// The keys overridden by the environment when they differ from the ones announced last.
    pub(crate) fn shadowed_is_news(&mut self, shadowed: Vec<String>) -> Option<&[String]> {
        if shadowed == self.shadowed {
            return None;
        }
        self.shadowed = shadowed;
        Some(&self.shadowed).filter(|s| !s.is_empty()).map(Vec::as_slice)
    }
}
