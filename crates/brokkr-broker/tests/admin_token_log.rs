//! What the admin token's file logs, in a test binary of its own: a thread-local log subscriber misses events when
//! tests on other threads register the same callsites first.

use std::time::Duration;

use brokkr_broker::admin_token::{AdminToken, TokenMetrics};
use brokkr_config::{SecretsElsewhere, Settings};
use brokkr_testenv::{CapturedLog, SecretVolume};

const OLD: &str = "old-t0ken-AAAA-1111";
const NEW: &str = "new-t0ken-BBBB-2222";

#[test]
fn a_rotation_and_every_file_that_cannot_be_used_are_logged_without_any_token_whatever_the_log_level() {
    let log = CapturedLog::default();
    // Issue 23: as `log.level = "off"` sets the filter (a ConfigMap editor's choice): the token's lifecycle is on
    // the audit target, which no level hides.
    let filter = format!("off,{}=info", brokkr_reload::reload_log::AUDIT_TARGET);
    let _logging = tracing::subscriber::set_default(log.subscriber(&filter));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut volume = SecretVolume::create(dir.path(), "token", OLD.as_bytes()).expect("volume");
    let mut settings = Settings::default();
    settings.admin.token_file = volume.file();
    let token = AdminToken::new(&settings.admin, SecretsElsewhere::default(), TokenMetrics::default());
    let overlap = Duration::from_secs(60);
    let cases: [(&[u8], &str); 4] = [
        (b"sh0rt-s3cr3t", "shorter than 16 bytes"),
        (b"two w0rds-s3cr3t-in-it", "visible ASCII"),
        (b"", "is empty"),
        (NEW.as_bytes(), "admin token rotated"),
    ];
    for (content, logged) in cases {
        volume.publish(content).expect("publish");
        token.refresh(overlap);
        assert!(log.text().contains(logged), "{logged}: {}", log.text());
    }
    assert!(token.accepts(OLD, overlap) && token.accepts(NEW, overlap));
    let text = log.text();
    for secret in ["s3cr3t", "w0rds", OLD, NEW] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
