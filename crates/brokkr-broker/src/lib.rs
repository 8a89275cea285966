//! The Brokkr broker: an actix-web server whose CORS, log filter and reload timers follow its ConfigMap live.

pub mod admin;
pub mod admin_token;
pub mod admission;
pub mod check;
pub mod cli;
pub mod cors;
pub mod error;
pub mod hold;
pub mod http;
pub mod listeners;
pub mod logging;
pub use brokkr_reload::mounted_file;
pub mod plugin;
pub mod plugin_staged;
pub mod probe;
pub mod report;
pub mod review;
pub mod serve;
pub mod settings_docs;
pub mod shutdown;
pub mod staging;
pub mod tls;
pub mod token_file;
pub mod traffic;
pub mod traffic_gate;
pub mod webhook;
