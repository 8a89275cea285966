//! The admin API's bearer token: `admin.token`, or `admin.token_file` checked once a second and read again when it
//! changes, with the tokens it replaced still accepted for `admin.token_overlap` so that a rotation locks no one out.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use brokkr_config::{ReloadableConfig, Secret, SecretsElsewhere, settings::AdminSettings};
use brokkr_reload::reload_log::AUDIT_TARGET;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::{
    mounted_file::{Stamp, stamp},
    token_file::{TokenFileError, read_token},
};

/// How often `admin.token_file` is checked: one `stat` a second while nothing changes (and a read every
/// [`REREAD_EVERY`]). Polled, not watched with
/// inotify (the `notify` crate): the kubelet updates a Secret volume by renaming a new `..data` symlink over the
/// old one, which a watch on the file never sees (vector issue 10877); a watch on the directory would need its own
/// thread and re-arming after each swap, to answer within the same second.
pub const TOKEN_FILE_POLL: Duration = Duration::from_secs(1);

/// How often `admin.token_file` is read although its stamp did not change: a rewrite in place of the same length
/// within the filesystem's timestamp granularity (a jiffy) leaves the stamp as it was.
pub const REREAD_EVERY: Duration = Duration::from_secs(60);

/// `brokkr_admin_token_file_valid` and `brokkr_admin_token_rotations_total`.
#[derive(Debug, Clone, Default)]
pub struct TokenMetrics {
    file_valid: Gauge,
    rotations: Counter,
}

impl TokenMetrics {
    /// Registers both metrics; the gauge says 1 until a file fails to load.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        metrics.file_valid.set(1);
        registry.register(
            "brokkr_admin_token_file_valid",
            "0 while admin.token_file is set but missing, empty or invalid (the token in force stays), else 1",
            metrics.file_valid.clone(),
        );
        registry.register(
            "brokkr_admin_token_rotations",
            "Times a token read from admin.token_file replaced the one in force (the first read is not counted)",
            metrics.rotations.clone(),
        );
        metrics
    }
}

/// How many replaced tokens are still accepted at once: a rotation inside the overlap of the one before keeps both.
pub const MAX_RETIRED: usize = 4;

/// A token and its SHA-256, compared in constant time.
struct Token {
    secret: Secret,
    digest: [u8; 32],
}

impl Token {
    fn new(secret: Secret) -> Option<Self> {
        (!secret.is_empty()).then(|| Self { digest: Sha256::digest(secret.expose().as_bytes()).into(), secret })
    }
}

/// A token that was replaced, and its overlap: fixed when it was replaced. `admin.token_overlap` is itself fixed at
/// start (file or environment, never the ConfigMap); taking the shorter of the two is a second guard.
struct Retired {
    token: Token,
    at: Instant,
    overlap: Duration,
}

impl Retired {
    fn accepted(&self, overlap_now: Duration) -> bool {
        self.at.elapsed() < self.overlap.min(overlap_now)
    }
}

#[derive(Default)]
struct State {
    current: Option<Token>,
    /// Replaced tokens whose overlap has not ended, oldest first, at most [`MAX_RETIRED`].
    retired: Vec<Retired>,
    /// The file's stamp when it was last read, and when that was.
    stamp: Option<Stamp>,
    read_at: Option<Instant>,
    /// Why the file's content is not in force, until a read succeeds.
    error: Option<String>,
    /// When the last rotation happened, for the status.
    rotated_at: Option<SystemTime>,
}

impl State {
    /// Drops the replaced tokens whose overlap is over; how many.
    fn expire(&mut self, overlap: Duration) -> usize {
        let before = self.retired.len();
        self.retired.retain(|r| r.accepted(overlap));
        before - self.retired.len()
    }
}

/// What one read of the file did, logged once the lock is released.
enum Outcome {
    Unchanged,
    Recovered,
    First,
    Rotated,
    Failed(String),
    StillFailing,
}

/// The admin token in force, shared by the HTTP workers and the task that follows `admin.token_file`.
#[derive(Clone)]
pub struct AdminToken {
    file: Option<PathBuf>,
    state: Arc<Mutex<State>>,
    elsewhere: SecretsElsewhere,
    metrics: TokenMetrics,
}

/// Shows where the token comes from, never a token.
impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken").field("file", &self.file).finish_non_exhaustive()
    }
}

impl AdminToken {
    /// The token of `admin`: `admin.token`, or the content of `admin.token_file`, read now (logged by the caller
    /// through [`AdminToken::describe_start`], since logging may not be set up yet). A token read from the file is
    /// put into `elsewhere`, so that no document may show it.
    #[must_use]
    pub fn new(admin: &AdminSettings, elsewhere: SecretsElsewhere, metrics: TokenMetrics) -> Self {
        let file = Some(admin.token_file.clone()).filter(|f| !f.as_os_str().is_empty());
        let current = if file.is_some() { None } else { Token::new(admin.token.clone()) };
        let state = Arc::new(Mutex::new(State { current, ..State::default() }));
        let token = Self { file, state, elsewhere, metrics };
        token.refresh(admin.token_overlap);
        token
    }

    /// Whether `presented` is the token in force, or one it replaced whose overlap (the shorter of `overlap` and
    /// the one in force when it was replaced) has not ended. Every token is compared as a SHA-256 digest in
    /// constant time, against [`MAX_RETIRED`] slots whether they are used or not, so the time taken reveals
    /// neither a token, nor its length, nor whether an overlap is running.
    #[must_use]
    pub fn accepts(&self, presented: &str, overlap: Duration) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut state = self.lock();
        // Dropped here too, not only at the next poll: an ended overlap never comes back.
        state.expire(overlap);
        let matches = |token: Option<&Token>| {
            let (digest, used) = token.map_or(([0; 32], 0), |t| (t.digest, 1));
            digest.ct_eq(&presented) & Choice::from(used)
        };
        let mut accepted = matches(state.current.as_ref());
        for slot in 0..MAX_RETIRED {
            accepted |= matches(state.retired.get(slot).map(|r| &r.token));
        }
        accepted.into()
    }

    /// Whether any token is in force (else the admin API answers 401 to everyone).
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.lock().current.is_some()
    }

    /// Logs where the token in force came from at start, without it.
    pub fn describe_start(&self) {
        let (set, error) = {
            let state = self.lock();
            (state.current.is_some(), state.error.clone())
        };
        match (&self.file, error) {
            (Some(file), Some(error)) => {
                warn!(file = %file.display(), %error, "admin.token_file cannot be used yet: the admin API answers 401 until it can");
            }
            (Some(file), None) => info!(file = %file.display(), "admin token read from admin.token_file"),
            (None, _) if !set => {
                warn!("admin.token and admin.token_file are not set: the admin API is locked and answers 401");
            }
            (None, _) => {}
        }
    }

    /// Checks `admin.token_file` every [`TOKEN_FILE_POLL`] until the broker stops; returns at once without one.
    /// The `stat` and the read (at most 4 KiB, of a regular file only, opened non-blocking) run on this task's
    /// thread: a mounted Secret is a local tmpfs. A token file on a network filesystem that stalls would stall
    /// this thread with it.
    pub async fn follow(self, config: ReloadableConfig) {
        if self.file.is_none() {
            return;
        }
        let mut ticks = tokio::time::interval(TOKEN_FILE_POLL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.refresh(config.current().settings.admin.token_overlap);
        }
    }

    /// One check: ends the overlaps that are over, and reads the file again if it changed, did not load, or was
    /// last read [`REREAD_EVERY`] ago. The file is read and the log written without holding the lock that every
    /// admin request takes.
    pub fn refresh(&self, overlap: Duration) {
        let Some(file) = &self.file else {
            return;
        };
        let stamp = stamp(file);
        let (expired, read) = {
            let mut state = self.lock();
            let expired = state.expire(overlap);
            let due = state.read_at.is_none_or(|at| at.elapsed() >= REREAD_EVERY);
            let read = stamp.is_none() || state.stamp != stamp || state.error.is_some() || due;
            if read {
                (state.stamp, state.read_at) = (stamp, Some(Instant::now()));
            }
            (expired, read)
        };
        let outcome = read.then(|| {
            let read = read_token(file);
            self.apply(&mut self.lock(), read, overlap)
        });
        // Every second, not only on a change: `accepts` may have dropped a replaced token meanwhile.
        {
            let state = self.lock();
            let held = state.current.iter().chain(state.retired.iter().map(|r| &r.token));
            self.elsewhere.set(held.map(|t| t.secret.clone()).collect());
        }
        if expired > 0 {
            info!(target: AUDIT_TARGET, tokens = expired, "a replaced admin token is no longer accepted (its admin.token_overlap is over)");
        }
        let file = file.display();
        match outcome.unwrap_or(Outcome::Unchanged) {
            Outcome::Unchanged | Outcome::StillFailing => {}
            Outcome::Recovered => info!(target: AUDIT_TARGET, %file, "admin.token_file can be used again"),
            Outcome::First => info!(target: AUDIT_TARGET, %file, "admin token read from admin.token_file"),
            Outcome::Rotated => {
                let overlap = humantime::format_duration(overlap).to_string();
                info!(target: AUDIT_TARGET, %file, %overlap, "admin token rotated; the replaced one is accepted for admin.token_overlap");
            }
            Outcome::Failed(error) => {
                warn!(target: AUDIT_TARGET, %error, "admin.token_file cannot be used; the token in force stays");
            }
        }
    }

    /// Puts what was read into `state`.
    fn apply(&self, state: &mut State, read: Result<Secret, TokenFileError>, overlap: Duration) -> Outcome {
        let secret = match read {
            Ok(secret) => secret,
            Err(error) => {
                self.metrics.file_valid.set(0);
                let error = crate::report::chain(&error);
                let repeated = state.error.as_ref() == Some(&error);
                state.error = Some(error.clone());
                return if repeated { Outcome::StillFailing } else { Outcome::Failed(error) };
            }
        };
        self.metrics.file_valid.set(1);
        let recovered = state.error.take().is_some() && state.current.is_some();
        let Some(next) = Token::new(secret).filter(|t| state.current.as_ref().is_none_or(|c| c.digest != t.digest))
        else {
            return if recovered { Outcome::Recovered } else { Outcome::Unchanged };
        };
        let Some(replaced) = state.current.replace(next) else {
            return Outcome::First;
        };
        // A token rotated back to is in force again, not also retired.
        let current = state.current.as_ref().map(|c| c.digest);
        state.retired.retain(|r| Some(r.token.digest) != current);
        state.retired.push(Retired { token: replaced, at: Instant::now(), overlap });
        if state.retired.len() > MAX_RETIRED {
            state.retired.remove(0);
        }
        state.rotated_at = Some(SystemTime::now());
        self.metrics.rotations.inc();
        Outcome::Rotated
    }

    /// The token's part of the admin status: where it comes from, whether the file loads, the last rotation.
    #[must_use]
    pub fn status(&self, overlap: Duration) -> Value {
        let state = self.lock();
        let source = match (&self.file, &state.current) {
            (Some(_), _) => "admin.token_file",
            (None, Some(_)) => "admin.token",
            (None, None) => "none",
        };
        let until = state
            .retired
            .iter()
            .filter_map(|r| r.overlap.min(overlap).checked_sub(r.at.elapsed()).filter(|left| !left.is_zero()))
            .max()
            .map(|left| humantime::format_rfc3339_seconds(SystemTime::now() + left).to_string());
        json!({
            "source": source,
            "file": self.file.as_ref().map(|f| f.display().to_string()),
            "in_force": state.current.is_some(),
            "file_error": state.error,
            "rotated_at": state.rotated_at.map(|at| humantime::format_rfc3339_seconds(at).to_string()),
            "previous_accepted_until": until,
            "previous_accepted": state.retired.iter().filter(|r| r.accepted(overlap)).count(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
