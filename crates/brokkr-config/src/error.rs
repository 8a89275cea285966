//! Errors of building and validating settings; each names the key or source at fault.

use std::path::PathBuf;

use crate::text::{ERROR_LIMIT, clip};

/// Why a configuration could not be built; the last good configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("failed to read config file {path}")]
    ReadFile {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A source is not valid TOML.
    ///
    /// The parser's own error is deliberately not kept as the source: its display quotes the offending line,
    /// which may hold a secret, and error chains end up in logs.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// Where the text came from, such as `ConfigMap brokkr/brokkr-broker key broker.toml`.
        origin: String,
        /// The parser's message with line and column, without the text.
        message: String,
    },
    /// A key is unknown or its value has the wrong type.
    #[error("{key}: {message}")]
    Field {
        /// The dotted key path, such as `cors.max_age`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value has the right type but is outside what the broker accepts.
    #[error("{key}: {reason}")]
    Invalid {
        /// The dotted key path.
        key: String,
        /// What is wrong with the value (never the value of a secret).
        reason: String,
    },
    /// The ConfigMap sets a secret: anyone with the `view` role can read a ConfigMap, so it is refused whatever
    /// its value (which is never shown).
    #[error(
        "{key} is a secret, and anyone with the `view` role can read a ConfigMap, so the ConfigMap may not set it; \
         {instead}"
    )]
    SecretInConfigMap {
        /// The dotted key path.
        key: String,
        /// Where the secret belongs instead (`mount it from a Secret and set admin.token_file, …`).
        instead: String,
    },
    /// An environment variable named like a setting cannot be used.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A ConfigMap document is larger than the broker parses: parsing TOML takes up to about 85 bytes of memory
    /// per byte of input, and a reload, an admission review and the start-up may each parse one.
    #[error("{origin} is {bytes} bytes long; at most {limit} bytes are parsed")]
    TooLarge {
        /// Where the text came from.
        origin: String,
        /// Its length.
        bytes: usize,
        /// [`crate::layers::MAX_DOCUMENT_BYTES`].
        limit: usize,
    },
    /// Several values are invalid; each error names its key. Shown on one line, at most [`SEVERAL_SHOWN`] of them in
    /// [`SEVERAL_BYTES`], the rest counted.
    #[error("{}", several(.0))]
    Several(Vec<ConfigError>),
    /// The ConfigMap exists but lacks the data key the broker reads.
    #[error("ConfigMap {namespace}/{name} has no data key {key}")]
    MissingDataKey {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The data key that was expected.
        key: String,
    },
}

/// The most errors of [`ConfigError::Several`] its text lists; the rest are counted.
pub const SEVERAL_SHOWN: usize = 8;

/// The most bytes of the errors [`ConfigError::Several`] lists (the first is always listed): with the count of the
/// rest, the text fits an Event note (1 KiB) and a webhook denial whole.
pub const SEVERAL_BYTES: usize = 900;

fn several(errors: &[ConfigError]) -> String {
    let mut text = String::new();
    let mut listed = 0;
    for error in errors.iter().take(SEVERAL_SHOWN) {
        let error = error.to_string();
        if listed > 0 && text.len() + 2 + error.len() > SEVERAL_BYTES {
            break;
        }
        if listed > 0 {
            text.push_str("; ");
        }
        text.push_str(&error);
        listed += 1;
    }
    if errors.len() > listed {
        text.push_str(&format!("; and {} more", errors.len() - listed));
    }
    text
}

impl ConfigError {
    /// `errors` as one error: the only one, or [`ConfigError::Several`].
    #[must_use]
    pub fn all(mut errors: Vec<Self>) -> Self {
        if errors.len() == 1 { errors.remove(0) } else { Self::Several(errors) }
    }

    /// This error with every occurrence of `secret` in its text replaced by `<redacted>`: defence in depth for a
    /// secret pasted into a key whose value an error quotes (`log.format = "<token>"`). Empty secrets are ignored.
    #[must_use]
    pub fn redact(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        // Also the escaped forms an error uses when it quotes a value (`{:?}`, serde's "invalid type" messages).
        let escaped = [secret.escape_debug().to_string(), secret.escape_default().to_string()];
        let scrub = |text: String| {
            escaped
                .iter()
                .fold(text.replace(secret, "<redacted>"), |text, form| text.replace(form.as_str(), "<redacted>"))
        };
        match self {
            Self::Syntax { origin, message } => Self::Syntax { origin, message: scrub(message) },
            Self::Field { key, message } => Self::Field { key: scrub(key), message: scrub(message) },
            Self::Invalid { key, reason } => Self::Invalid { key, reason: scrub(reason) },
            Self::Env { var, reason } => Self::Env { var, reason: scrub(reason) },
            Self::Several(errors) => Self::Several(errors.into_iter().map(|e| e.redact(secret)).collect()),
            other => other,
        }
    }

    /// This error with each text field cut to [`ERROR_LIMIT`] bytes on a character boundary: an error quotes
    /// values from outside (a 900 KiB origin), and its text goes into admission denials, log lines, Events and the
    /// admin status.
    #[must_use]
    pub fn bounded(self) -> Self {
        let cap = |text: String| match clip(&text, ERROR_LIMIT) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(cut) => cut,
        };
        match self {
            Self::Syntax { origin, message } => Self::Syntax { origin: cap(origin), message: cap(message) },
            Self::Field { key, message } => Self::Field { key: cap(key), message: cap(message) },
            Self::Invalid { key, reason } => Self::Invalid { key: cap(key), reason: cap(reason) },
            Self::Env { var, reason } => Self::Env { var: cap(var), reason: cap(reason) },
            Self::Several(errors) => Self::Several(errors.into_iter().map(Self::bounded).collect()),
            Self::TooLarge { origin, bytes, limit } => Self::TooLarge { origin: cap(origin), bytes, limit },
            Self::MissingDataKey { namespace, name, key } => {
                Self::MissingDataKey { namespace: cap(namespace), name: cap(name), key: cap(key) }
            }
            other => other,
        }
    }

    /// The dotted key at fault, when the error is about one key.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Field { key, .. } | Self::Invalid { key, .. } | Self::SecretInConfigMap { key, .. } => Some(key),
            Self::Several(errors) => errors.first().and_then(Self::key),
            _ => None,
        }
    }
}

/// Result with [`ConfigError`] as its default error.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
