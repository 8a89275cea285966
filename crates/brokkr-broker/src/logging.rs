//! Logging whose filter follows `log.level` live, through tracing-subscriber's `reload` layer.

use brokkr_config::{LogFormat, ReloadableConfig, parse_log_filter, settings::LogSettings};
use brokkr_reload::reload_log::AUDIT_TARGET;
use tracing::warn;
use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt};

use crate::error::BrokerError;

/// Handle that swaps the filter of the installed subscriber.
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The filter for `level`: field values matched as text (never regexes), and the reload's audit lines
/// (target [`AUDIT_TARGET`]) always enabled at INFO, so no `log.level` (not even `off`) hides the change that set it.
pub fn filter_for(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let level = level.trim().trim_end_matches(',');
    if level.is_empty() {
        return parse_log_filter(&format!("{AUDIT_TARGET}=info"));
    }
    parse_log_filter(&format!("{level},{AUDIT_TARGET}=info"))
}

/// Installs the global subscriber: `log.format` is fixed for the process, `log.level` stays swappable.
pub fn init(settings: &LogSettings) -> Result<FilterHandle, BrokerError> {
    let filter = filter_for(&settings.level).map_err(|e| BrokerError::Logging(e.to_string()))?;
    let (filter, handle) = reload::Layer::new(filter);
    let output = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(false).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| BrokerError::Logging(e.to_string()))?;
    Ok(handle)
}

/// Applies `log.level` from every snapshot put in force until the configuration is dropped.
///
/// Subscribes before returning, so no snapshot put in force after this call is missed, however late the
/// returned future first runs.
pub fn follow<S: 'static>(
    config: &ReloadableConfig,
    handle: reload::Handle<EnvFilter, S>,
) -> impl Future<Output = ()> + use<S> {
    let mut updates = config.subscribe();
    let mut applied = updates.borrow_and_update().settings.log.level.clone();
    async move {
        while updates.changed().await.is_ok() {
            let level = updates.borrow_and_update().settings.log.level.clone();
            if level == applied {
                continue;
            }
            // The level was validated with the same parser before it was put in force.
            match filter_for(&level) {
                Ok(filter) => match handle.reload(filter) {
                    Ok(()) => applied = level,
                    Err(error) => warn!(%error, "could not swap the log filter"),
                },
                Err(error) => warn!(%error, "log.level in force does not parse"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use brokkr_config::{ConfigLayers, layers::LayerText};
    use brokkr_testenv::CapturedLog;
    use tracing::{debug, info};

    use super::*;

    #[actix_rt::test]
    async fn a_new_log_level_changes_what_is_logged() {
        let captured = CapturedLog::default();
        let (filter, handle) = reload::Layer::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(captured.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        let layers = ConfigLayers::new();
        let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
        let follower = actix_rt::spawn(follow(&config, handle));

        debug!("hidden at info");
        info!("shown at info");
        let text = "[log]\nlevel = \"debug\"".to_owned();
        config.reload(layers.build(Some(&LayerText { origin: "test".into(), text })), None);
        tokio::task::yield_now().await;
        debug!("shown at debug");

        let logged = captured.text();
        assert!(!logged.contains("hidden at info"), "{logged}");
        assert!(logged.contains("shown at info"), "{logged}");
        assert!(logged.contains("shown at debug"), "{logged}");
        follower.abort();
    }
}
