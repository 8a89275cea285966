//! The webhook's serving certificate, read from files and read again when they change, without a restart.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, Instant},
};

use prometheus_client::{metrics::gauge::Gauge, registry::Registry};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tracing::{debug, info, warn};

use crate::mounted_file::{self, Stamp, stamp};

/// Why the certificate files could not be used. The previous certificate, if any, stays in use.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{key} {path} cannot be read")]
    Read {
        /// `webhook.cert_file` or `webhook.key_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not PEM of the expected kind.
    #[error("{path} holds no usable PEM {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
        /// The parse error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key is of a kind rustls cannot sign with, or does not belong to the certificate.
    #[error("the key in {key} cannot serve the certificate in {cert}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The certificate is expired, not yet valid, or not X.509 at all: serving it would fail every handshake.
    #[error("the certificate in {path} {reason}")]
    Validity {
        /// The certificate file.
        path: PathBuf,
        /// `expired at …`, `is not valid before …`, or the parse error.
        reason: String,
    },
    /// The TLS configuration could not be built (no protocol version in common with the crypto provider).
    #[error("cannot set up TLS")]
    Config(#[source] rustls::Error),
}

/// The largest certificate or key file read: a wrong path (a log, an image) must not stall the handshake.
const MAX_FILE: u64 = 1024 * 1024;

/// How far in the future a certificate's NotBefore may lie: Helm's `genSignedCert` stamps it with the clock of
/// the machine that ran `helm`, which may be ahead of the node's.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How often files that did not load are tried again although they did not change (a certificate that becomes
/// valid): at a handshake at most this often, and by a timer every [`RETRY_TIMER`].
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The period of the timer that retries files that did not load while no handshake comes.
const RETRY_TIMER: Duration = Duration::from_secs(10);

/// `brokkr_webhook_certificate_loaded`: 1 while a serving certificate is loaded and unexpired, 0 while handshakes
/// fail (none loads) or the one served has expired (a renewal that never came).
#[derive(Debug, Clone, Default)]
pub struct CertificateGauge(Gauge);

impl CertificateGauge {
    /// Registers the gauge, 0 until a certificate loads.
    pub fn register(registry: &mut Registry) -> Self {
        let gauge = Self::default();
        registry.register(
            "brokkr_webhook_certificate_loaded",
            "1 while the admission webhook has a serving certificate loaded, 0 while its TLS handshakes fail",
            gauge.0.clone(),
        );
        gauge
    }

    /// The value now.
    #[must_use]
    pub fn value(&self) -> i64 {
        self.0.get()
    }
}

fn read_capped(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    mounted_file::read_capped(path, MAX_FILE).map_err(|source| TlsError::Read { key, path: path.to_owned(), source })
}

/// Refuses a leaf certificate outside its validity window now; returns its NotAfter (Unix seconds).
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let invalid = |reason: String| TlsError::Validity { path: path.to_owned(), reason };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| invalid(format!("does not parse: {e}")))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    if now.timestamp().saturating_add(skew) < validity.not_before.timestamp() {
        return Err(invalid(format!(
            "is not valid before {} (more than {} ahead of this clock; tried again until it is)",
            validity.not_before,
            humantime::format_duration(CLOCK_SKEW)
        )));
    }
    if now > validity.not_after {
        return Err(invalid(format!("expired at {}", validity.not_after)));
    }
    Ok(validity.not_after.timestamp())
}

/// Serves the certificate in `cert_file`/`key_file`, checking at every TLS handshake whether the files changed
/// (two `stat` calls) and loading them again if so. A pair that does not load (half-written, mismatched, not yet
/// valid) is reported once, the previous certificate keeps serving, like a rejected ConfigMap, and the files are
/// tried again every [`RETRY_AFTER`] at most, so a certificate that becomes valid is served without a change.
///
/// Written here because rustls ships only static resolvers, and a handshake-driven check needs no timer task
/// and picks a renewal up at the first connection after it.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    gauge: CertificateGauge,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stamps: Option<(Option<Stamp>, Option<Stamp>)>,
    current: Option<Arc<CertifiedKey>>,
    /// NotAfter of `current` (Unix seconds): past it, the gauge says 0 although the certificate is still served.
    not_after: i64,
    /// When the files of `stamps` last failed to load; `None` once they loaded.
    failed_at: Option<Instant>,
}

impl ReloadingCert {
    /// A resolver for the two files; loads them now and logs whether that worked (the broker starts either way).
    #[must_use]
    pub fn new(cert_file: &Path, key_file: &Path, provider: Arc<CryptoProvider>, gauge: CertificateGauge) -> Arc<Self> {
        let resolver = Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            gauge,
            state: Mutex::new(State::default()),
        });
        resolver.refresh();
        resolver
    }

    fn refresh(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = state.stamps.as_ref() != Some(&stamps);
        let retry = state.failed_at.is_some_and(|at| at.elapsed() >= RETRY_AFTER);
        if changed || retry {
            state.stamps = Some(stamps);
            let failed_before = state.failed_at.is_some() && !changed;
            state.failed_at = Some(Instant::now());
            match self.load() {
                Ok((key, not_after)) => {
                    info!(cert_file = %self.cert_file.display(), "webhook serving certificate loaded");
                    state.current = Some(Arc::new(key));
                    state.not_after = not_after;
                    state.failed_at = None;
                }
                // Tried again with the same files: already reported.
                Err(error) if failed_before => {
                    debug!(error = %crate::report::chain(&error), "webhook serving certificate still does not load");
                }
                Err(error) if state.current.is_some() => warn!(
                    error = %crate::report::chain(&error),
                    "webhook serving certificate files changed but do not load; still serving the previous one"
                ),
                Err(error) => warn!(
                    error = %crate::report::chain(&error),
                    "webhook serving certificate does not load; TLS handshakes fail until it does"
                ),
            }
        }
        let unexpired = x509_parser::time::ASN1Time::now().timestamp() <= state.not_after;
        let loaded = i64::from(state.current.is_some() && unexpired);
        if state.current.is_some() && !unexpired && self.gauge.0.get() == 1 {
            warn!(cert_file = %self.cert_file.display(), "webhook serving certificate expired and no renewal loads");
        }
        self.gauge.0.set(loaded);
        state.current.clone()
    }

    fn load(&self) -> Result<(CertifiedKey, i64), TlsError> {
        let pem = |path: &Path, what, source| TlsError::Pem { path: path.to_owned(), what, source };
        let cert_pem = read_capped("webhook.cert_file", &self.cert_file)?;
        let key_pem = read_capped("webhook.key_file", &self.key_file)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(&self.cert_file, "certificate", e))?;
        if chain.is_empty() {
            return Err(pem(&self.cert_file, "certificate", rustls::pki_types::pem::Error::NoItemsFound));
        }
        let not_after = check_validity(&self.cert_file, &chain[0])?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem(&self.key_file, "private key", e))?;
        let key_error = |source| TlsError::Key { cert: self.cert_file.clone(), key: self.key_file.clone(), source };
        let certified = CertifiedKey::from_der(chain, key, &self.provider).map_err(key_error)?;
        Ok((certified, not_after))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh()
    }
}

/// Tries files that did not load again every [`RETRY_TIMER`] while the resolver lives, so a certificate that
/// becomes valid is loaded (and the gauge says so) before the next handshake asks for it.
pub async fn retry_until_dropped(resolver: Weak<ReloadingCert>) {
    let mut timer = tokio::time::interval(RETRY_TIMER);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        match resolver.upgrade() {
            Some(resolver) => drop(resolver.refresh()),
            None => return,
        }
    }
}

/// A rustls server configuration (ring, safe defaults, HTTP/1.1) that serves `resolver`'s certificate.
pub fn server_config(resolver: Arc<ReloadingCert>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(resolver.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The crypto provider the rest of the process uses too (kube's client is built on ring).
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
