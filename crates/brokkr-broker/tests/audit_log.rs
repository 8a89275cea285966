//! No `log.level`, not even `off`, hides the reload's audit lines, and the rest is still filtered. Alone in its
//! test binary: tracing caches per-callsite interest process-wide, so parallel captures could miss lines.

use brokkr_broker::logging::filter_for;
use brokkr_reload::reload_log::AUDIT_TARGET;
use brokkr_testenv::CapturedLog;
use tracing::info;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn no_log_level_hides_the_reload_audit_lines() {
    for level in ["off", "error", "brokkr_reload=off", "brokkr_reload::audit=off", "off,", ""] {
        let captured = CapturedLog::default();
        let filter = filter_for(level).expect("valid filter");
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            info!(target: AUDIT_TARGET, key = "log.level", "configuration changed");
            tracing::debug!("an ordinary debug line");
        });
        let logged = captured.text();
        assert!(logged.contains("configuration changed"), "{level:?}: {logged}");
        assert!(!logged.contains("an ordinary debug line"), "{level:?} still filters the rest: {logged}");
    }
}
