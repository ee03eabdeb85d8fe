//! Makes anything headed for an audit row safe to store: secrets redacted, sizes bounded, and no
//! input — however hostile — able to make the INSERT fail. Pure functions, no I/O.
//!
//! What is kept verbatim: every character Postgres can store, control characters, markup and
//! quotes included (escaping is the job of whoever *displays* a row). What changes:
//! - values under keys named like a secret (password, secret, token, key, authorization, cookie,
//!   credential …, at any depth, matched on the key's words), and string values shaped like a
//!   credential (`Bearer …`, `Basic …`, a JWT, a rampart API key) become `[REDACTED]`;
//! - NUL (U+0000), which neither `text` nor `jsonb` accepts, becomes U+FFFD;
//! - strings longer than their bound are cut at a character boundary and end in `…[truncated]`;
//! - JSON deeper than `MAX_DEPTH`, containers with more than `MAX_ENTRIES` entries and documents
//!   beyond the node/character budget are cut, with a marker saying so;
//! - bytes that are not valid UTF-8 or JSON that does not parse (lone surrogate escapes, nesting
//!   past serde_json's recursion limit) are kept as lossy text under `unparsed`.
//!
//! This module must not decide *what* is audited; it only makes a value storable.

use serde_json::{Map, Value};

pub const REDACTED: &str = "[REDACTED]";
pub const TRUNCATED: &str = "…[truncated]";
/// Key under which a cut object says how many entries it lost.
pub const TRUNCATED_KEY: &str = "[truncated]";

/// Deepest container nesting kept in metadata (the top-level object is depth 0).
pub const MAX_DEPTH: usize = 8;
/// Entries kept per object or array.
pub const MAX_ENTRIES: usize = 64;
/// Characters kept per metadata string value.
pub const MAX_STRING_CHARS: usize = 1024;
/// Characters kept per metadata key.
pub const MAX_KEY_CHARS: usize = 128;
/// Values (of any kind) kept per metadata document.
pub const MAX_NODES: usize = 512;
/// Characters (keys and strings together) kept per metadata document.
pub const MAX_TOTAL_CHARS: usize = 16 * 1024;
/// Bytes of untrusted JSON that `parse_untrusted_json` will parse at all.
pub const MAX_UNTRUSTED_JSON_BYTES: usize = 64 * 1024;

/// Column bounds (the migration's CHECK constraints use the same numbers).
pub const MAX_USER_AGENT_CHARS: usize = 512;
pub const MAX_REQUEST_ID_CHARS: usize = 128;
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_TYPE_CHARS: usize = 64;

/// Substrings that make a key sensitive wherever they appear in it (after lower-casing and
/// dropping separators, so `clientSecret`, `client-secret` and `CLIENT_SECRET` all match).
const SENSITIVE_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "cookie",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "sessionkey",
    "encryptionkey",
];

/// Whole words that make a key sensitive (`key`, `x-api-key`, `pwd`, `otp`).
const SENSITIVE_WORDS: &[&str] = &["key", "pwd", "pass", "otp", "pin", "dsn"];

/// A key whose *last* word is one of these names a harmless attribute of a secret (`key_id`,
/// `token_type`, `password_changed_at`), so it is kept. Anything else containing a sensitive word
/// is redacted.
const DESCRIPTIVE_SUFFIXES: &[&str] = &[
    "id", "ids", "prefix", "name", "type", "kind", "version", "count", "at", "scopes", "policy",
];

/// Whether the value stored under `key` must be redacted.
pub fn is_sensitive_key(key: &str) -> bool {
    let words = key_words(key);
    let joined: String = words.concat();
    let sensitive = SENSITIVE_FRAGMENTS.iter().any(|f| joined.contains(f))
        || words.iter().any(|w| SENSITIVE_WORDS.contains(&w.as_str()));
    if !sensitive {
        return false;
    }
    match words.last() {
        Some(last) if words.len() > 1 => !DESCRIPTIVE_SUFFIXES.contains(&last.as_str()),
        _ => true,
    }
}

/// Lower-case words of a key: split on anything not alphanumeric and on camelCase humps.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a string value looks like a credential whatever key it is under.
pub fn looks_like_credential(value: &str) -> bool {
    let trimmed = value.trim_start();
    let lower_prefix: String = trimmed
        .chars()
        .take(7)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower_prefix.starts_with("bearer ") || lower_prefix.starts_with("basic ") {
        return true;
    }
    is_jwt_like(trimmed) || is_api_key_like(trimmed)
}

/// Three base64url segments, the first one a JSON object (`eyJ`).
fn is_jwt_like(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 2
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

/// `rk_` + 32 random base62 characters + 6 checksum characters (DESIGN §3).
fn is_api_key_like(value: &str) -> bool {
    value
        .strip_prefix("rk_")
        .is_some_and(|rest| rest.len() == 38 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `text` made storable and at most `max_chars` characters long (`max_chars` must exceed the
/// marker's length): NUL becomes U+FFFD; a longer text is cut and ends in `…[truncated]`.
pub fn bound_text(text: &str, max_chars: usize) -> String {
    let marker_chars = TRUNCATED.chars().count();
    let needs_cut = text.chars().nth(max_chars).is_some();
    let keep = if needs_cut {
        max_chars.saturating_sub(marker_chars)
    } else {
        max_chars
    };
    let mut out = String::with_capacity(text.len().min(keep * 4));
    for c in text.chars().take(keep) {
        out.push(if c == '\0' { '\u{FFFD}' } else { c });
    }
    if needs_cut {
        out.push_str(TRUNCATED);
    }
    out
}

/// `bound_text` for an optional column.
pub fn bound_opt(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.map(|t| bound_text(t, max_chars))
}

struct Budget {
    nodes: usize,
    chars: usize,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.nodes == 0 || self.chars == 0
    }

    fn take_node(&mut self) {
        self.nodes = self.nodes.saturating_sub(1);
    }

    /// Bounds `text` to both its own limit and what is left of the document's character budget.
    fn text(&mut self, text: &str, max_chars: usize) -> String {
        let limit = max_chars.min(self.chars.max(TRUNCATED.chars().count() + 1));
        let out = bound_text(text, limit);
        self.chars = self.chars.saturating_sub(out.chars().count());
        out
    }
}

/// Metadata made safe to store: always a JSON object (`null` → `{}`, anything else that is not an
/// object → `{"value": …}`), secrets redacted at any depth, every dimension bounded.
pub fn scrub_metadata(value: &Value) -> Value {
    let mut budget = Budget {
        nodes: MAX_NODES,
        chars: MAX_TOTAL_CHARS,
    };
    match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => scrub_object(map, 0, &mut budget),
        other => {
            let mut wrapper = Map::new();
            wrapper.insert("value".into(), other.clone());
            scrub_object(&wrapper, 0, &mut budget)
        }
    }
}

fn scrub_value(value: &Value, depth: usize, budget: &mut Budget) -> Value {
    budget.take_node();
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        Value::String(s) if looks_like_credential(s) => Value::String(REDACTED.into()),
        Value::String(s) => Value::String(budget.text(s, MAX_STRING_CHARS)),
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => Value::String(format!(
            "[TRUNCATED: nested deeper than {MAX_DEPTH} levels]"
        )),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len().min(MAX_ENTRIES));
            for item in items {
                if out.len() >= MAX_ENTRIES || budget.exhausted() {
                    break;
                }
                out.push(scrub_value(item, depth + 1, budget));
            }
            let dropped = items.len() - out.len();
            if dropped > 0 {
                out.push(Value::String(format!(
                    "[TRUNCATED: {dropped} more item(s)]"
                )));
            }
            Value::Array(out)
        }
        Value::Object(map) => scrub_object(map, depth, budget),
    }
}

fn scrub_object(map: &Map<String, Value>, depth: usize, budget: &mut Budget) -> Value {
    let mut out = Map::new();
    let mut kept = 0usize;
    for (key, value) in map {
        if kept >= MAX_ENTRIES || budget.exhausted() {
            break;
        }
        kept += 1;
        let stored_key = budget.text(key, MAX_KEY_CHARS);
        let stored_value = if is_sensitive_key(key) {
            budget.take_node();
            Value::String(REDACTED.into())
        } else {
            scrub_value(value, depth + 1, budget)
        };
        out.insert(stored_key, stored_value);
    }
    let dropped = map.len() - kept;
    if dropped > 0 {
        out.insert(TRUNCATED_KEY.into(), Value::from(dropped));
    }
    Value::Object(out)
}

/// Parses JSON received from outside (a webhook body, a client's payload) into scrubbed
/// metadata. Never fails: input that is too large, not UTF-8 or not JSON is kept as bounded lossy
/// text under `unparsed`.
pub fn parse_untrusted_json(bytes: &[u8]) -> Value {
    if bytes.len() <= MAX_UNTRUSTED_JSON_BYTES
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
    {
        return scrub_metadata(&value);
    }
    let head = &bytes[..bytes.len().min(MAX_STRING_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut map = Map::new();
    map.insert(
        "unparsed".into(),
        Value::String(bound_text(&text, MAX_STRING_CHARS)),
    );
    map.insert("unparsed_bytes".into(), Value::from(bytes.len()));
    Value::Object(map)
}

/// A header value (bytes, possibly not UTF-8) as storable text of at most `max_chars`.
pub fn lossy_text(bytes: &[u8], max_chars: usize) -> String {
    let head = &bytes[..bytes.len().min(max_chars * 4)];
    bound_text(&String::from_utf8_lossy(head), max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_recognised_in_every_spelling() {
        for key in [
            "password",
            "new_password",
            "Password",
            "PASSWORD_HASH",
            "passwd",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "refresh_token",
            "refreshToken",
            "access-token",
            "key",
            "api_key",
            "apiKey",
            "X-API-Key",
            "privateKey",
            "private_key",
            "Authorization",
            "proxy-authorization",
            "cookie",
            "Set-Cookie",
            "credentials",
            "otp",
            "session_key",
        ] {
            assert!(is_sensitive_key(key), "{key} should be redacted");
        }
    }

    #[test]
    fn harmless_attributes_of_secrets_and_ordinary_keys_are_kept() {
        for key in [
            "key_id",
            "api_key_id",
            "key_prefix",
            "token_type",
            "password_changed_at",
            "username",
            "email",
            "reason",
            "monkey",
            "count",
            "scopes",
            "ip",
        ] {
            assert!(!is_sensitive_key(key), "{key} should be kept");
        }
    }

    #[test]
    fn nested_secrets_are_redacted_at_any_depth() {
        let input = json!({
            "login": "alice",
            "password": "hunter2hunter2",
            "request": {
                "headers": {"Authorization": "Bearer abc", "accept": "json"},
                "body": [{"refresh_token": "r1"}, {"nested": {"deeper": {"client_secret": {"x": 1}}}}]
            },
            "note": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
        });
        let out = scrub_metadata(&input);
        assert_eq!(out["login"], "alice");
        assert_eq!(out["password"], REDACTED);
        assert_eq!(out["request"]["headers"]["Authorization"], REDACTED);
        assert_eq!(out["request"]["headers"]["accept"], "json");
        assert_eq!(out["request"]["body"][0]["refresh_token"], REDACTED);
        assert_eq!(
            out["request"]["body"][1]["nested"]["deeper"]["client_secret"],
            REDACTED
        );
        assert_eq!(out["note"], REDACTED);
        let text = out.to_string();
        for secret in ["hunter2", "abc", "r1", "c2lnbmF0dXJl"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn credential_shaped_values_are_redacted_under_any_key() {
        for value in [
            "Bearer x",
            "bearer x",
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "rk_0123456789abcdefghijABCDEFGHIJ01234567",
        ] {
            assert!(looks_like_credential(value), "{value}");
        }
        for value in ["hello", "rk_short", "a.b.c", "Bearerless"] {
            assert!(!looks_like_credential(value), "{value}");
        }
    }

    #[test]
    fn strings_are_bounded_at_a_character_boundary() {
        let long = "é".repeat(5000);
        let out = bound_text(&long, 100);
        assert_eq!(out.chars().count(), 100);
        assert!(out.ends_with(TRUNCATED));
        assert!(out.starts_with("éé"));
        assert_eq!(bound_text("short", 100), "short");
        let exact = "x".repeat(100);
        assert_eq!(bound_text(&exact, 100), exact);
    }

    #[test]
    fn nul_is_replaced_and_other_control_characters_are_kept() {
        let hostile = "a\0b\x1b[31mred\r\n\u{202e}rtl\u{7f}";
        let out = bound_text(hostile, 100);
        assert_eq!(out, "a\u{FFFD}b\x1b[31mred\r\n\u{202e}rtl\u{7f}");
    }

    #[test]
    fn deep_nesting_is_cut() {
        let mut value = json!("bottom");
        for _ in 0..200 {
            value = json!({ "n": value });
        }
        let out = scrub_metadata(&value);
        let mut depth = 0;
        let mut cursor = &out;
        while let Some(next) = cursor.get("n") {
            cursor = next;
            depth += 1;
        }
        assert!(depth <= MAX_DEPTH + 1, "depth {depth}");
        assert!(cursor.as_str().unwrap().starts_with("[TRUNCATED"));
    }

    #[test]
    fn wide_and_huge_documents_are_cut_to_the_budget() {
        let wide: Map<String, Value> = (0..10_000)
            .map(|i| (format!("k{i:05}"), json!("v".repeat(2000))))
            .collect();
        let out = scrub_metadata(&Value::Object(wide));
        let map = out.as_object().unwrap();
        assert!(map.len() <= MAX_ENTRIES + 1);
        assert!(map.contains_key(TRUNCATED_KEY));
        assert!(out.to_string().len() < MAX_TOTAL_CHARS * 2);

        let long_array = Value::Array((0..10_000).map(Value::from).collect());
        let out = scrub_metadata(&json!({ "a": long_array }));
        let arr = out["a"].as_array().unwrap();
        assert_eq!(arr.len(), MAX_ENTRIES + 1);
        assert!(arr[MAX_ENTRIES].as_str().unwrap().contains("more item"));

        // Many medium containers: the node budget stops the walk.
        let many: Map<String, Value> = (0..60)
            .map(|i| {
                let inner: Vec<Value> = (0..60).map(|j| json!([i, j])).collect();
                (format!("k{i}"), Value::Array(inner))
            })
            .collect();
        let out = scrub_metadata(&Value::Object(many));
        fn count(v: &Value) -> usize {
            1 + match v {
                Value::Array(a) => a.iter().map(count).sum(),
                Value::Object(m) => m.values().map(count).sum(),
                _ => 0,
            }
        }
        assert!(
            count(&out) <= MAX_NODES + 2 * MAX_ENTRIES + 2,
            "{}",
            count(&out)
        );
    }

    #[test]
    fn keys_are_bounded_and_nul_free() {
        let key = format!("a\0{}", "k".repeat(1000));
        let out = scrub_metadata(&json!({ key: 1 }));
        let (stored, _) = out.as_object().unwrap().iter().next().unwrap();
        assert!(stored.chars().count() <= MAX_KEY_CHARS);
        assert!(!stored.contains('\0'));
    }

    #[test]
    fn non_objects_are_wrapped() {
        assert_eq!(scrub_metadata(&Value::Null), json!({}));
        assert_eq!(scrub_metadata(&json!([1, 2])), json!({"value": [1, 2]}));
        assert_eq!(scrub_metadata(&json!("x")), json!({"value": "x"}));
    }

    #[test]
    fn untrusted_json_never_fails() {
        let ok = parse_untrusted_json(br#"{"a": {"password": "p"}}"#);
        assert_eq!(ok, json!({"a": {"password": REDACTED}}));

        let surrogate = parse_untrusted_json(br#"{"a":"\ud800"}"#);
        assert_eq!(surrogate["unparsed"], r#"{"a":"\ud800"}"#);

        let invalid_utf8 = parse_untrusted_json(b"{\"a\":\"\xff\xfe\"}");
        assert!(
            invalid_utf8["unparsed"]
                .as_str()
                .unwrap()
                .contains('\u{FFFD}')
        );

        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let out = parse_untrusted_json(deep.as_bytes());
        assert!(out["unparsed"].as_str().unwrap().ends_with(TRUNCATED));

        let huge = vec![b' '; MAX_UNTRUSTED_JSON_BYTES + 1];
        assert_eq!(
            parse_untrusted_json(&huge)["unparsed_bytes"],
            MAX_UNTRUSTED_JSON_BYTES + 1
        );

        let nul = parse_untrusted_json(br#"{"a":"x\u0000y"}"#);
        assert_eq!(nul["a"], "x\u{FFFD}y");
    }

    #[test]
    fn lossy_text_handles_invalid_utf8() {
        assert_eq!(lossy_text(b"Mozilla\xff/5.0", 512), "Mozilla\u{FFFD}/5.0");
        assert_eq!(lossy_text(&[b'a'; 4000], 512).chars().count(), 512);
    }
}
