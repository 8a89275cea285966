//! Every structural syntax error of a TOML document, from toml_parser's recovering parser: toml stops at the first,
//! so a document with a mistake on three lines would take three rounds. Descriptions are the parser's own fixed
//! texts; nothing of the document is quoted.

use toml_parser::{ParseError, Source};

/// The most syntax errors reported for one document.
pub(crate) const MAX_SYNTAX_ERRORS: usize = 8;

/// `(description, byte offset)` of each syntax error the parser recovers past, in order, at most
/// [`MAX_SYNTAX_ERRORS`]. Errors inside a value's own text (an escape, a number) are found by the full parse only.
pub(crate) fn errors(text: &str) -> Vec<(String, usize)> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut errors: Vec<ParseError> = Vec::new();
    toml_parser::parser::parse_document(&tokens, &mut (), &mut errors);
    errors
        .iter()
        .take(MAX_SYNTAX_ERRORS)
        .map(|e| {
            let at = e.unexpected().or(e.context()).map_or(0, |span| span.start());
            (e.description().to_owned(), at)
        })
        .collect()
}
