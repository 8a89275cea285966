//! The webhook's serving certificate, read from files and read again when they change, without a restart.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tracing::{info, warn};

/// Why the certificate files could not be used. The previous certificate, if any, stays in use.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
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

/// What identifies one version of a file without reading it: kubelet replaces a mounted Secret's files by
/// swapping a symlink, and cert-manager or an operator may rewrite them in place; either changes one of these.
type Stamp = (Option<SystemTime>, u64, u64, u64);

/// The largest certificate or key file read: a wrong path (a log, an image) must not stall the handshake.
const MAX_FILE: u64 = 1024 * 1024;

fn read_capped(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let error = |source| TlsError::Read { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    fs::File::open(path).and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes)).map_err(error)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(error(std::io::Error::other(format!("larger than {MAX_FILE} bytes"))));
    }
    Ok(bytes)
}

/// Refuses a leaf certificate outside its validity window now.
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let invalid = |reason: String| TlsError::Validity { path: path.to_owned(), reason };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| invalid(format!("does not parse: {e}")))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(invalid(format!("is not valid before {}", validity.not_before)));
    }
    if now > validity.not_after {
        return Err(invalid(format!("expired at {}", validity.not_after)));
    }
    Ok(())
}

fn stamp(path: &Path) -> Option<Stamp> {
    fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len(), m.ino(), m.dev()))
}

/// Serves the certificate in `cert_file`/`key_file`, checking at every TLS handshake whether the files changed
/// (two `stat` calls) and loading them again if so. A pair that does not load (half-written, mismatched) is
/// reported once and the previous certificate keeps serving, like a rejected ConfigMap.
///
/// Written here because rustls ships only static resolvers, and a handshake-driven check needs no timer task
/// and picks a renewal up at the first connection after it.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stamps: Option<(Option<Stamp>, Option<Stamp>)>,
    current: Option<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// A resolver for the two files; loads them now and logs whether that worked (the broker starts either way).
    #[must_use]
    pub fn new(cert_file: &Path, key_file: &Path, provider: Arc<CryptoProvider>) -> Arc<Self> {
        let resolver = Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            state: Mutex::new(State::default()),
        });
        resolver.refresh();
        resolver
    }

    /// Whether a certificate is loaded and served.
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).current.is_some()
    }

    fn refresh(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stamps.as_ref() != Some(&stamps) {
            state.stamps = Some(stamps);
            match self.load() {
                Ok(key) => {
                    info!(cert_file = %self.cert_file.display(), "webhook serving certificate loaded");
                    state.current = Some(Arc::new(key));
                }
                Err(error) if state.current.is_some() => warn!(
                    error = %crate::error::chain(&error),
                    "webhook serving certificate files changed but do not load; still serving the previous one"
                ),
                Err(error) => warn!(
                    error = %crate::error::chain(&error),
                    "webhook serving certificate does not load; TLS handshakes fail until it does"
                ),
            }
        }
        state.current.clone()
    }

    fn load(&self) -> Result<CertifiedKey, TlsError> {
        let read = read_capped;
        let pem = |path: &Path, what, source| TlsError::Pem { path: path.to_owned(), what, source };
        let cert_pem = read(&self.cert_file)?;
        let key_pem = read(&self.key_file)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(&self.cert_file, "certificate", e))?;
        if chain.is_empty() {
            return Err(pem(&self.cert_file, "certificate", rustls::pki_types::pem::Error::NoItemsFound));
        }
        check_validity(&self.cert_file, &chain[0])?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem(&self.key_file, "private key", e))?;
        let key_error = |source| TlsError::Key { cert: self.cert_file.clone(), key: self.key_file.clone(), source };
        let certified = CertifiedKey::from_der(chain, key, &self.provider).map_err(key_error)?;
        Ok(certified)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh()
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
