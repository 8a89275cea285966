//! Byte caps for text built from outside input (errors, warnings, log lines, Event notes), cut on a character.

use std::borrow::Cow;

/// The most bytes of one configuration value that an error or a log line quotes.
pub const QUOTE_LIMIT: usize = 128;

/// The most bytes of one error's text field (a reason, a parser message).
pub const ERROR_LIMIT: usize = 512;

/// The largest character boundary of `text` at or below `max` (`str::floor_char_boundary` needs Rust 1.91; the
/// workspace supports 1.89).
#[must_use]
pub fn floor_boundary(text: &str, max: usize) -> usize {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// `text` cut to at most `max` bytes on a character boundary, with `… (cut)` appended when anything was cut (the
/// result is then at most `max` + 10 bytes). No count of the bytes left out: errors are cut after secrets are
/// redacted from them, so the count would tell a document's author whether, and how long, a guessed secret was.
#[must_use]
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let end = floor_boundary(text, max);
    Cow::Owned(format!("{}… (cut)", &text[..end]))
}

/// `value` as an error quotes it: Debug-quoted, at most [`QUOTE_LIMIT`] bytes of it and its size.
#[must_use]
pub fn quote(value: &str) -> String {
    if value.len() <= QUOTE_LIMIT {
        return format!("{value:?}");
    }
    format!("{:?}… ({} bytes in all)", &value[..floor_boundary(value, QUOTE_LIMIT)], value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character() {
        assert_eq!(clip("abc", 3), "abc");
        let cut = clip("ééé", 3);
        assert_eq!(cut, "é… (cut)");
        let long = "ü".repeat(100_000);
        assert!(clip(&long, ERROR_LIMIT).len() <= ERROR_LIMIT + 24);
    }

    #[test]
    fn a_quote_shows_a_bounded_prefix_and_the_size() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let huge = "x".repeat(900 * 1024);
        let quoted = quote(&huge);
        assert!(quoted.len() < QUOTE_LIMIT + 40, "{}", quoted.len());
        assert!(quoted.ends_with(&format!("({} bytes in all)", huge.len())), "{quoted}");
    }
}
