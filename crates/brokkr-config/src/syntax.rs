//! Every structural syntax error of a TOML document, from toml_parser's recovering parser: toml stops at the first,
//! so a document with a mistake on three lines would take three rounds. Descriptions are the parser's own fixed
//! texts; nothing of the document is quoted.

use toml_parser::{ErrorSink, ParseError, Source};

/// The most syntax errors reported for one document.
pub(crate) const MAX_SYNTAX_ERRORS: usize = 8;

/// The most errors kept from the parser: a document with an error on each of its lines must not cost one
/// allocation per line.
const KEPT: usize = 64;

/// `(description, byte offset)` of the first syntax errors the parser recovers past that have a position, in
/// order, at most [`KEPT`]. Errors inside a value's own text (an escape, a number) are found by the full parse only.
pub(crate) fn errors(text: &str) -> Vec<(String, usize)> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut errors = Kept(Vec::new());
    toml_parser::parser::parse_document(&tokens, &mut (), &mut errors);
    errors.0
}

/// Keeps the first [`KEPT`] errors that have a position, dropping the rest as they come.
struct Kept(Vec<(String, usize)>);

impl ErrorSink for Kept {
    fn report_error(&mut self, error: ParseError) {
        if self.0.len() < KEPT
            && let Some(span) = error.unexpected().or(error.context())
        {
            self.0.push((error.description().to_owned(), span.start()));
        }
    }
}
