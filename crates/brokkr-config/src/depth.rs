//! How deep a TOML document nests, measured on toml_parser's events before any tree is built: toml's own guard
//! counts only braces and brackets, so dotted keys (`a.b.c = { d.e.f = … }`) nest thousands of tables in a few
//! kilobytes, and building them recurses until the stack overflows (the process aborts; no error to catch).

use toml_parser::{ErrorSink, Source, Span, decoder::Encoding, parser::EventReceiver};

/// The deepest nesting a document may have, as counted here (a dotted part, a header part, or an inline table or
/// array under its key, one each): a settings file needs 3 (`[section]`, a key, a list).
pub const MAX_DEPTH: usize = 16;

/// Where a document first nests deeper than [`MAX_DEPTH`] (a byte offset), if it does. Syntax errors are left to
/// the parser that follows; this only looks at the structure.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut depth = Depth::default();
    toml_parser::parser::parse_document(&tokens, &mut depth, &mut ());
    depth.too_deep
}

/// Follows the nesting: a `[table.header]` sets the base, each dotted part of a key adds a table, each inline table
/// or array adds one more under the key it is the value of.
#[derive(Default)]
struct Depth {
    /// Tables the current header opened.
    base: usize,
    /// Whether the events are inside a `[header]`.
    in_header: bool,
    /// The nesting each open inline table or array added.
    frames: Vec<usize>,
    /// Their sum.
    open: usize,
    /// Parts of the key being read.
    key: usize,
    /// The first offset past the limit.
    too_deep: Option<usize>,
}

impl Depth {
    fn at(&mut self, depth: usize, span: Span) {
        if depth > MAX_DEPTH && self.too_deep.is_none() {
            self.too_deep = Some(span.start());
        }
    }

    fn open(&mut self, span: Span) {
        let added = self.key + 1;
        self.key = 0;
        self.frames.push(added);
        self.open += added;
        self.at(self.base + self.open, span);
    }

    fn close(&mut self) {
        self.key = 0;
        self.open -= self.frames.pop().unwrap_or(0);
    }

    fn header(&mut self, array: bool) {
        (self.in_header, self.base, self.key, self.open) = (true, usize::from(array), 0, 0);
        self.frames.clear();
    }
}

impl EventReceiver for Depth {
    fn std_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.header(false);
    }
    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.in_header = false;
    }
    fn array_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.header(true);
    }
    fn array_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.in_header = false;
    }
    // `false` once past the limit: toml_parser then skips the rest of the value instead of descending into it
    // (it recurses once per open bracket or brace, so going on would overflow the stack in here).
    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.open(span);
        self.too_deep.is_none()
    }
    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.close();
    }
    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.open(span);
        self.too_deep.is_none()
    }
    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.close();
    }
    fn simple_key(&mut self, span: Span, _kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        if self.in_header {
            self.base += 1;
            self.at(self.base, span);
        } else {
            self.key += 1;
            self.at(self.base + self.open + self.key, span);
        }
    }
    fn scalar(&mut self, _span: Span, _kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        self.key = 0;
    }
    fn value_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.key = 0;
    }
    fn newline(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        // Inside an inline table or array a newline may sit between a key and its value: not the end of the key.
        if self.frames.is_empty() {
            self.key = 0;
            // A header left unclosed ends with its line: the parser reports it; the keys after it are not its parts.
            self.in_header = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundreds_of_thousands_of_brackets_are_measured_on_a_small_stack() {
        // Found by review: the check itself recursed once per bracket (toml_parser descends while the receiver
        // says so), so a 256 KiB document of `[` aborted the process in here.
        let judged = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let brackets = format!("a = {}", "[".repeat(250_000));
                let braces = format!("a = {}", "{a=".repeat(80_000));
                (too_deep(&brackets), too_deep(&braces))
            })
            .expect("a thread")
            .join()
            .expect("measured without overflowing the stack");
        assert!(judged.0.is_some() && judged.1.is_some(), "{judged:?}");
    }

    #[test]
    fn ordinary_documents_pass_and_each_kind_of_nesting_counts() {
        assert_eq!(too_deep("[log]\nlevel = \"info\"\n[cors]\nallowed_origins = [\"a\", \"b\"]"), None);
        let dotted = format!("{} = 1", vec!["k"; MAX_DEPTH].join("."));
        assert_eq!(too_deep(&dotted), None, "{MAX_DEPTH} parts");
        assert!(too_deep(&format!("x.{dotted}")).is_some(), "one more");
        let arrays = format!("a = {}1{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert_eq!(too_deep(&arrays), None);
        assert!(too_deep(&format!("a = {}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))).is_some());
        let header = format!("[{}]\nk = 1", vec!["t"; MAX_DEPTH].join("."));
        assert!(too_deep(&header).is_some(), "a header's parts and its key");
        assert!(too_deep("a = { b.c = { d.e = [1] } }\n[t]\nk = 1").is_none());
        // A newline between a dotted key and its value inside an inline table does not end the key.
        let split = format!("a = {{ {} \n= 1 }}", vec!["k"; MAX_DEPTH].join("."));
        assert!(too_deep(&split).is_some(), "{split}");
        // An unclosed header is the parser's error to report, not a deep nesting.
        let unclosed = format!("[server\n{}", (0..20).map(|i| format!("k{i} = 1\n")).collect::<String>());
        assert_eq!(too_deep(&unclosed), None);
        // Sibling values do not add up.
        let siblings = format!("a = [{}]", vec!["[1]"; 100].join(", "));
        assert_eq!(too_deep(&siblings), None);
    }
}
