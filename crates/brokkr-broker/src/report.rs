//! An error as one line of text: the error and each of its causes, for logs and answers.

/// The most bytes of a chain shown (before the cut marker): room for every error of a document at once and its
/// context; an API server's message, which kube repeats in its `Debug` form, is cut here.
pub const CHAIN_LIMIT: usize = 2048;

/// An error and its causes, joined with `: `, escaped and cut to [`CHAIN_LIMIT`] (`brokkr_config::text::clip`): it
/// goes to logs, answers and terminals, and may hold an API server's or a document's text.
#[must_use]
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    brokkr_config::text::clip(&text, CHAIN_LIMIT).into_owned()
}
