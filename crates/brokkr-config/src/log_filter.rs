//! `log.level` as a tracing filter, parsed the one safe way: field values are literal text, never regexes.

use tracing_subscriber::{EnvFilter, filter::ParseError};

/// Parses `level` (`EnvFilter` syntax) with regex matching of field values turned off.
///
/// `log.level` comes from the ConfigMap, so it is untrusted input: with regexes on, a crafted
/// `[{field=<pattern>}]` directive compiles an automaton of unbounded size on the reload path, at every reload
/// and resync (tracing-subscriber's documentation warns against regexes for untrusted filters). With them off, a
/// field value is compared as plain text.
pub fn parse_log_filter(level: &str) -> Result<EnvFilter, ParseError> {
    EnvFilter::builder().with_regex(false).parse(level)
}
