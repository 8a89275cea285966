//! The bad-input corpus: ConfigMap documents that every judge of a document (reload, webhook, `check-config`)
//! must refuse, naming what is wrong.

/// Every malformed, mistyped, out-of-range or forbidden ConfigMap document the suite knows, as
/// `(case, document, what the error must name)`: a key, or `line N` for syntax errors. `secret` is planted in some
/// of them (beside their error, or pasted into a value): it must never come back out.
#[must_use]
pub fn bad_documents(secret: &str) -> Vec<(&'static str, String, &'static str)> {
    let s = |x: &str| x.to_owned();
    let secret_line = format!("[admin]\ntoken = \"{secret}\"\n");
    let mut cases = vec![
        // Malformed TOML: the position is named, never the text.
        ("unclosed table header", s("[log\nlevel = \"info\""), "line 1"),
        ("unclosed string", s("[log]\nlevel = \"info"), "line 2"),
        ("missing value", s("[log]\nlevel ="), "line 2"),
        ("missing equals", s("[log]\nlevel \"info\""), "line 2"),
        ("bare word value", s("[log]\nlevel = info"), "line 2"),
        ("duplicate key", s("[log]\nlevel = \"info\"\nlevel = \"debug\""), "line 3"),
        ("duplicate table", s("[log]\nlevel = \"info\"\n[log]\nformat = \"json\""), "line 3"),
        ("unclosed array", s("[cors]\nallowed_origins = [\"https://a.example\""), "line 2"),
        ("unclosed inline table", s("log = { level = \"info\""), "line 1"),
        ("trailing garbage", s("[log]\nlevel = \"info\" junk"), "line 2"),
        ("invalid escape", s("[log]\nlevel = \"\\q\""), "line 2"),
        ("control character", s("[log]\nlevel = \"in\u{1}fo\""), "line 2"),
        ("NUL byte", s("[log]\nlevel = \"info\"\n\u{0}"), "line 3"),
        ("lone bracket", s("]"), "line 1"),
        ("array of tables over a table", s("[log]\nlevel = \"info\"\n[[log]]"), "line 3"),
        ("secret on the broken line", format!("[admin]\ntoken = \"{secret}"), "line 2"),
        ("secret before the broken line", format!("{secret_line}[log\n"), "line 3"),
        ("replacement characters", s("[log]\nlevel = \u{FFFD}\u{FFFD}"), "line 2"),
        ("byte order mark mid-document", s("[log]\n\u{FEFF}level = \"info\""), "line 2"),
        // Unknown keys and sections.
        ("unknown section", s("[logging]\nlevel = \"info\""), "logging"),
        ("unknown key", s("[log]\nlevle = \"info\""), "log.levle"),
        ("unknown cors key", s("[cors]\nmax_agee = \"1m\""), "cors.max_agee"),
        ("unknown reload key", s("[config_reload]\ndebounce_ms = 100"), "config_reload.debounce_ms"),
        ("top-level key", s("debounce = \"1s\""), "debounce"),
        ("a secret in the ConfigMap", secret_line.clone(), "admin.token is a secret"),
        ("a secret beside an unknown key", format!("{secret_line}[server]\nport = 80"), "admin.token is a secret"),
        ("unknown admin key", s("[admin]\npassword = \"x\""), "admin.password: invalid value (not shown"),
        // Wrong types.
        ("section as a string", s("log = \"info\""), "log"),
        ("level as a number", s("[log]\nlevel = 3"), "log.level"),
        ("level as an array", s("[log]\nlevel = [\"info\"]"), "log.level"),
        ("format unknown", s("[log]\nformat = \"xml\""), "log.format"),
        ("origins as a string", s("[cors]\nallowed_origins = \"https://a.example\""), "cors.allowed_origins"),
        ("origin as a number", s("[cors]\nallowed_origins = [1]"), "cors.allowed_origins"),
        ("duration as an integer", s("[config_reload]\ndebounce = 5"), "config_reload.debounce"),
        ("duration as a float", s("[cors]\nmax_age = 1.5"), "cors.max_age"),
        ("duration as a table", s("[cors]\nmax_age = { secs = 1 }"), "cors.max_age"),
        ("enabled as a string", s("[config_reload]\nenabled = \"yes\""), "config_reload.enabled"),
        ("listen not an address", s("[server]\nlisten = \"localhost\""), "server.listen"),
        ("listen port out of range", s("[server]\nlisten = \"0.0.0.0:70000\""), "server.listen"),
        ("token as a number", s("[admin]\ntoken = 123456"), "admin.token is a secret"),
        ("admin as a string holding the secret", format!("admin = \"{secret}\""), "admin: must be a table"),
        ("secret pasted into a quoted key", format!("[log]\nformat = \"{secret}\""), "log.format"),
        ("secret pasted into a duration", format!("[cors]\nmax_age = \"{secret}\""), "cors.max_age"),
        (
            "secret pasted into an origin",
            format!("[cors]\nallowed_origins = [\"{secret}\"]"),
            "cors.allowed_origins: contains the value of a secret",
        ),
        ("datetime for a duration", s("[cors]\nmax_age = 1979-05-27T07:32:00Z"), "cors.max_age"),
        // Durations that do not parse or are out of range.
        ("unparsable duration", s("[config_reload]\ndebounce = \"2 parsecs\""), "config_reload.debounce"),
        ("empty duration", s("[config_reload]\ndebounce = \"\""), "config_reload.debounce"),
        ("negative duration", s("[cors]\nmax_age = \"-1s\""), "cors.max_age"),
        ("overflowing duration", s("[cors]\nmax_age = \"99999999999999999999y\""), "cors.max_age"),
        ("debounce too short", s("[config_reload]\ndebounce = \"1ms\""), "config_reload.debounce"),
        ("debounce too long", s("[config_reload]\ndebounce = \"11m\"\nmax_wait = \"1h\""), "config_reload.debounce"),
        ("max_wait too long", s("[config_reload]\nmax_wait = \"2h\""), "config_reload.max_wait"),
        (
            "max_wait below debounce",
            s("[config_reload]\ndebounce = \"10s\"\nmax_wait = \"5s\""),
            "config_reload.max_wait",
        ),
        ("resync too short", s("[config_reload]\nresync_interval = \"1s\""), "config_reload.resync_interval"),
        ("resync too long", s("[config_reload]\nresync_interval = \"2d\""), "config_reload.resync_interval"),
        ("max_age too long", s("[cors]\nmax_age = \"2d\""), "cors.max_age"),
        // Values of the right type that the broker cannot use.
        ("filter syntax", s("[log]\nlevel = \"info,[[\""), "log.level"),
        // 50,000 directives took 3.9 s to build in a debug build, at every reload and review.
        ("filter of 65 directives", s(&format!("[log]\nlevel = \"{}\"", vec!["a"; 65].join(","))), "at most 64"),
        (
            "filter of 5,000 bytes",
            s(&format!("[log]\nlevel = \"info,{}=debug\"", "t".repeat(5000))),
            "at most 4096 bytes",
        ),
        ("webhook on the HTTP port", s("[webhook]\nenabled = true\nlisten = \"0.0.0.0:8080\""), "webhook.listen"),
        ("HTTP port moved by the ConfigMap", s("[server]\nlisten = \"0.0.0.0:9090\""), "BROKKR__SERVER__LISTEN"),
        ("certificate path set by the ConfigMap", s("[webhook]\ncert_file = \"/nowhere\""), "webhook.cert_file"),
        (
            "a 200 KiB origin",
            s(&format!("[cors]\nallowed_origins = [\"{}\"]", "o".repeat(200 * 1024))),
            "cors.allowed_origins[0]",
        ),
        ("filter level", s("[log]\nlevel = \"brokkr=loud\""), "log.level"),
        ("origin with a path", s("[cors]\nallowed_origins = [\"https://a.example/app\"]"), "cors.allowed_origins[0]"),
        (
            "origin with a trailing slash",
            s("[cors]\nallowed_origins = [\"https://a.example/\"]"),
            "cors.allowed_origins[0]",
        ),
        (
            "origin with a default port",
            s("[cors]\nallowed_origins = [\"https://a.example:443\"]"),
            "cors.allowed_origins[0]",
        ),
        ("origin without a scheme", s("[cors]\nallowed_origins = [\"a.example\"]"), "cors.allowed_origins[0]"),
        ("second origin bad", s("[cors]\nallowed_origins = [\"*\", \"ftp://a.example\"]"), "cors.allowed_origins[1]"),
        ("token with a space", s("[admin]\ntoken = \"two words\""), "admin.token is a secret"),
        ("token with non-ASCII", s("[admin]\ntoken = \"s€cret\""), "admin.token is a secret"),
        ("moving the ConfigMap", s("[config_reload]\nconfigmap = \"other\""), "config_reload.configmap"),
        ("moving the data key", s("[config_reload]\nkey = \"other.toml\""), "config_reload.key"),
        ("moving the namespace", s("[config_reload]\nnamespace = \"other\""), "config_reload.namespace"),
    ];
    // Size and depth.
    let big = format!("# {}\n[log]\nlevle = \"info\"", "x".repeat(1024 * 1024));
    cases.push(("a 1 MiB document", big, "at most 262144 bytes are parsed"));
    let near = format!("# {}\n[log]\nlevle = \"info\"", "x".repeat(250 * 1024));
    cases.push(("a 250 KiB document", near, "log.levle"));
    let deep_array = format!("x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    cases.push(("arrays nested 10 000 deep", deep_array, "line 1"));
    let deep_table = format!("x = {}{}", "{ a = ".repeat(5_000), "}".repeat(5_000));
    cases.push(("inline tables nested 5 000 deep", deep_table, "line 1"));
    let dotted = format!("{} = 1", vec!["a"; 5_000].join("."));
    cases.push(("a key dotted 5 000 deep", dotted, "nested deeper than 16"));
    cases
}
