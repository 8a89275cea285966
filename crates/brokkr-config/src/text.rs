//! Text built from outside input (errors, warnings, log lines, Event notes, annotations, the plugin's output) as it
//! leaves the process: escaped ([`escape`]) and capped ([`clip`]), never cut inside a character or an escape.

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

/// What [`clip`] appends when it cut something.
pub const CUT: &str = "… (cut)";

/// Whether `c` is escaped: what core's `{:?}` treats as not printable: controls (Cc, C1 included), format
/// characters (Cf: bidi overrides and isolates, zero-width and invisible operators, the soft hyphen, tag
/// characters), line and paragraph separators (Zl, Zp), spaces other than ' ' (Zs), private-use and unassigned
/// code points. The table is the toolchain's, so it follows its Unicode version. `str::escape_debug` escapes a
/// grapheme extender only at the start of a string, so an `a` in front asks about printability alone.
#[must_use]
pub fn hidden(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    let mut probe = [b'a'; 5];
    let len = 1 + c.encode_utf8(&mut probe[1..]).len();
    match std::str::from_utf8(&probe[..len]) {
        Ok(probe) => probe.escape_debug().nth(1) == Some('\\'),
        Err(_) => true,
    }
}

/// Appends `c`, escaped as `char::escape_debug` writes it when it is [`hidden`].
fn push_shown(out: &mut String, c: char) {
    if hidden(c) { out.extend(c.escape_debug()) } else { out.push(c) }
}

/// `text` with each [`hidden`] character written as `char::escape_debug` writes it (`\n`, `\r`, `\t`, `\0`,
/// `\u{1b}`, `\u{202e}`); everything else, `\` and quotes included, as it is. Idempotent, and borrowed when
/// nothing is hidden. The one escaper of text that reaches a terminal, a log or an Event.
#[must_use]
pub fn escape(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(hidden) else { return Cow::Borrowed(text) };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    text[first..].chars().for_each(|c| push_shown(&mut out, c));
    Cow::Owned(out)
}

/// `text` [escaped](escape) and cut to at most `max` bytes, never inside a character or an escape, with [`CUT`]
/// appended when anything was cut (the result is then at most `max` + 10 bytes). No count of the bytes left out:
/// errors are cut after secrets are redacted from them, so the count would tell a document's author whether, and
/// how long, a guessed secret was.
#[must_use]
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max && !text.contains(hidden) {
        return Cow::Borrowed(text);
    }
    // One pass that stops at the cap: the text may be megabytes (a review's name, an API server's message), and
    // escaping all of it first would cost up to 2.25 times that.
    let mut out = String::with_capacity(max.min(text.len() * 2) + CUT.len());
    let mut cut = false;
    for c in text.chars() {
        let len = if hidden(c) { c.escape_debug().len() } else { c.len_utf8() };
        if out.len() + len > max {
            cut = true;
            break;
        }
        push_shown(&mut out, c);
    }
    if cut {
        out.push_str(CUT);
    }
    Cow::Owned(out)
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
    fn a_cut_never_falls_inside_an_escape_and_plain_text_is_borrowed() {
        assert_eq!(clip("ab\u{202e}cd", 5), "ab… (cut)");
        assert!(matches!(escape("plain \"q\" \\x"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2J\r\u{ad}"), "a\\u{1b}[2J\\r\\u{ad}");
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
