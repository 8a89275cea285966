//! No `log.level`, not even `off`, hides the reload's audit lines, and the rest is still filtered. Alone in its
//! test binary: tracing caches per-callsite interest process-wide, so parallel captures could miss lines.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use brokkr_broker::logging::filter_for;
use brokkr_reload::reload_log::AUDIT_TARGET;
use tracing::info;
use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn no_log_level_hides_the_reload_audit_lines() {
    for level in ["off", "error", "brokkr_reload=off", "brokkr_reload::audit=off", "off,", ""] {
        let captured = Captured::default();
        let filter = filter_for(level).expect("valid filter");
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            info!(target: AUDIT_TARGET, key = "log.level", "configuration changed");
            tracing::debug!("an ordinary debug line");
        });
        let logged = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
        assert!(logged.contains("configuration changed"), "{level:?}: {logged}");
        assert!(!logged.contains("an ordinary debug line"), "{level:?} still filters the rest: {logged}");
    }
}
