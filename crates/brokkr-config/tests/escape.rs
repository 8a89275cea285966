//! The one escaper of text that leaves the process: nothing a terminal obeys gets through, printable text is kept,
//! the escaping can be undone, and the cap never cuts an escape.

use brokkr_config::text::{CUT, clip, escape, hidden};
use proptest::prelude::*;

/// Every Cc, Cf, Zl and Zp of Unicode 16.0 (UnicodeData.txt), and the whole tag block: an oracle independent of
/// core's table.
const HOSTILE: &[(u32, u32)] = &[
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),
];

fn hostile(c: char) -> bool {
    HOSTILE.iter().any(|&(a, b)| (a..=b).contains(&u32::from(c)))
}

/// The inverse of `escape` for text without a `\` of its own; panics on a cut escape.
fn unescape(text: &str) -> String {
    let (mut out, mut rest) = (String::new(), text);
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (c, len) = match rest.as_bytes().first() {
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'0') => ('\0', 1),
            Some(b'u') => {
                let end = rest.find('}').expect("a closed escape");
                let code = u32::from_str_radix(&rest[2..end], 16).expect("hex");
                (char::from_u32(code).expect("a char"), end + 1)
            }
            other => panic!("unknown escape {other:?}"),
        };
        out.push(c);
        rest = &rest[len..];
    }
    out + rest
}

/// Any text, with controls, format characters and separators mixed in.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        "[\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]{1,4}",
        "[\u{E0000}-\u{E007F}\u{2060}-\u{206F}\u{AD}\u{202A}-\u{202E}]{1,4}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

#[test]
fn every_control_format_and_separator_character_is_escaped() {
    for &(a, b) in HOSTILE {
        for c in (a..=b).filter_map(char::from_u32) {
            assert!(hidden(c), "U+{:04X}", u32::from(c));
        }
    }
}

proptest! {
    #[test]
    fn nothing_hostile_comes_out_and_escaping_is_undone(s in text()) {
        let escaped = escape(&s);
        prop_assert!(!escaped.chars().any(|c| hostile(c) || hidden(c)), "{escaped:?}");
        prop_assert_eq!(escape(&escaped), escaped.clone(), "idempotent");
        if !s.contains('\\') {
            prop_assert_eq!(unescape(&escaped), s.clone(), "reversible without a backslash");
        }
    }

    #[test]
    fn the_cap_bounds_and_never_cuts_an_escape(s in text(), max in 0usize..64) {
        let cut = clip(&s, max);
        prop_assert!(cut.len() <= max + CUT.len() && !cut.chars().any(hostile));
        match cut.strip_suffix(CUT) {
            Some(kept) if !s.contains('\\') => prop_assert!(s.starts_with(&unescape(kept))),
            Some(_) => {}
            None => prop_assert_eq!(cut, escape(&s)),
        }
    }

    #[test]
    fn printable_text_is_kept(s in "[ -~\u{A1}-\u{AC}\u{AE}-\u{24F}\u{300}-\u{36F}\u{400}-\u{52F}\u{4E00}-\u{9FFF}]{0,64}") {
        prop_assert!(matches!(escape(&s), std::borrow::Cow::Borrowed(_)));
        prop_assert_eq!(clip(&s, s.len()), s.clone());
    }
}
