//! Typed, layered, validated and hot-reloadable settings of the Brokkr broker.
//!
//! Sources, lowest to highest: built-in defaults < `--config FILE` < the ConfigMap's data key < environment
//! `BROKKR__SECTION__KEY`. [`ConfigLayers`] merges them into [`Settings`], [`diff`] compares two snapshots with
//! secrets redacted, and [`ReloadableConfig`] serves the snapshot in force to readers without locks. All of it is
//! generic over [`AppSettings`], so another application's settings type can use the same machinery.

mod app;
mod broker_checks;
mod checks;
mod count;
pub mod declaration;
mod depth;
mod duration;
pub mod error;
pub mod judge;
pub mod layers;
pub mod log_filter;
mod outcome;
pub mod ratio;
pub mod reloadable;
pub mod rollout_steps;
pub mod secret;
pub mod settings;
mod syntax;
pub mod text;

pub use app::{AppSettings, check_declarations, diff};
pub use error::{ConfigError, Result};
pub use judge::{Document, Verdict, judge};
pub use layers::{Candidate, ConfigLayers, Place};
pub use log_filter::parse_log_filter;
pub use outcome::Outcome;
pub use reloadable::{ConfigSnapshot, LastReload, ReloadOutcome, ReloadableConfig, SourceRef};
pub use secret::{Secret, SecretsElsewhere};
pub use settings::{Change, FieldInfo, LogFormat, ReloadSettings, Settings};
