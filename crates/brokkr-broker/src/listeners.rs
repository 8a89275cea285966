//! The sockets the broker serves on, bound before anything serves. When the ConfigMap turned the webhook on and its
//! port cannot be bound, the broker starts without it, says why, and serves and hot-reloads as usual.

use std::net::TcpListener;

use brokkr_config::Settings;
use serde::Serialize;

use crate::{error::BrokerError, webhook};

/// The bound sockets.
#[derive(Debug)]
pub struct Listeners {
    /// `server.listen`.
    pub http: TcpListener,
    /// `webhook.listen`, when the webhook is on.
    pub webhook: Option<TcpListener>,
}

/// What the start-up left out of the ConfigMap, and why; shown in the admin status as `startup_fallback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartupFallback {
    /// The restart-only keys whose ConfigMap value is not in force.
    pub keys: Vec<&'static str>,
    /// Why the start-up with them failed.
    pub error: String,
}

/// Binds with `settings`. If the webhook's listener cannot bind and it is on only because the ConfigMap turned it
/// on (`boot`, the defaults, file and environment, has it off), starts without it: the one restart-only value a
/// ConfigMap can set that can fail at start-up. Any other failure is the file's or the environment's, and is
/// returned.
pub fn bind_or_fall_back(
    mut settings: Settings,
    boot: &Settings,
) -> Result<(Settings, Listeners, Option<StartupFallback>), BrokerError> {
    let addr = settings.server.listen;
    let http = TcpListener::bind(addr).map_err(|source| BrokerError::Server { addr, source })?;
    if !settings.webhook.enabled {
        return Ok((settings, Listeners { http, webhook: None }, None));
    }
    match webhook::bind(&settings.webhook) {
        Ok(webhook) => Ok((settings, Listeners { http, webhook: Some(webhook) }, None)),
        Err(error) if !boot.webhook.enabled => {
            settings.webhook.enabled = false;
            let fallback = StartupFallback { keys: vec!["webhook.enabled"], error: crate::report::chain(&error) };
            Ok((settings, Listeners { http, webhook: None }, Some(fallback)))
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_webhook_port_from_the_configmap_falls_back_to_the_files_settings() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut boot = Settings::default();
        boot.server.listen = "127.0.0.1:0".parse().expect("addr");
        boot.webhook.listen = taken.local_addr().expect("addr");
        let mut from_configmap = boot.clone();
        from_configmap.webhook.enabled = true;
        from_configmap.log.level = "debug".into();
        let (settings, listeners, fallback) = bind_or_fall_back(from_configmap, &boot).expect("falls back");
        let fallback = fallback.expect("a fallback is reported");
        assert_eq!(fallback.keys, vec!["webhook.enabled"]);
        assert!(fallback.error.contains("Address already in use") || fallback.error.contains("in use"), "{fallback:?}");
        assert!(!settings.webhook.enabled && listeners.webhook.is_none());
        assert_eq!(settings.log.level, "debug", "live values from the ConfigMap stay");
    }

    #[test]
    fn a_taken_port_of_the_files_own_settings_still_fails() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut boot = Settings::default();
        boot.server.listen = taken.local_addr().expect("addr");
        assert!(matches!(bind_or_fall_back(boot.clone(), &boot), Err(BrokerError::Server { .. })));
    }

    #[test]
    fn a_taken_webhook_port_the_file_asks_for_still_fails() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut boot = Settings::default();
        boot.server.listen = "127.0.0.1:0".parse().expect("addr");
        boot.webhook.enabled = true;
        boot.webhook.listen = taken.local_addr().expect("addr");
        assert!(matches!(bind_or_fall_back(boot.clone(), &boot), Err(BrokerError::Webhook(_))));
    }
}
