//! The audit log as CSV, streamed: rows are read in keyset batches and written out as they come,
//! so an export of millions of rows holds one batch in memory, never the whole set.
//!
//! Audit rows hold attacker-chosen text (user agents, login names) and an export must not turn
//! into code on an admin's machine (CSV injection). Following OWASP's guidance, every field is
//! quoted (embedded quotes doubled), and a `'` goes before every formula trigger (`=`, `+`, `-`,
//! `@`, tab, carriage return) that could start a cell: at the start of the field, and after any
//! character a spreadsheet may split cells on when it guesses the delimiter or ignores the
//! quotes — `,` `;` tab `|`, line breaks and quote marks (`Mozilla/5.0;=1+2*3` is a formula to a
//! spreadsheet in a `;` locale, quoted or not). Spaces between the separator and the trigger do
//! not hide it. The stored row is untouched; only its export is defused.

use actix_web::web;
use bytes::Bytes;
use futures_util::Stream;

use crate::audit::{AuditEntry, AuditQuery};
use crate::error::AppError;
use crate::state::AppState;

/// Rows per database round trip.
pub const BATCH: i64 = 500;

pub const HEADER: [&str; 14] = [
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "server_request_id",
    "count",
    "metadata",
];

/// Characters that start a formula when they open a cell.
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
/// Characters after which a spreadsheet may start a new cell.
const SEPARATORS: [char; 8] = [',', ';', '\t', '|', '\n', '\r', '"', '\''];

/// A cell safe to open in a spreadsheet: `'` before every trigger that could begin a cell.
pub fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    // Whether the next non-space character would be the first of a cell.
    let mut cell_start = true;
    let mut at_risk = false;
    for c in text.chars() {
        if cell_start && TRIGGERS.contains(&c) {
            at_risk = true;
            break;
        }
        cell_start = SEPARATORS.contains(&c) || (cell_start && c == ' ');
    }
    if !at_risk {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut cell_start = true;
    for c in text.chars() {
        if cell_start && TRIGGERS.contains(&c) {
            out.push('\'');
        }
        out.push(c);
        // A defused tab or CR still separates: what follows it is checked as well.
        cell_start = SEPARATORS.contains(&c) || (cell_start && c == ' ');
    }
    std::borrow::Cow::Owned(out)
}

/// The metadata column: JSON, defused like [`cell`] but still valid JSON with the same values —
/// a trigger inside a string is written as its `\u00XX` escape instead of getting a `'` (outside
/// strings only a negative number after `,` can start a cell, and that gets the `'`).
pub fn json_cell(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + 8);
    let mut cell_start = true;
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if cell_start && TRIGGERS.contains(&c) {
            if in_string {
                out.push_str(&format!("\\u{:04x}", c as u32));
                cell_start = false;
                continue;
            }
            out.push('\'');
        }
        out.push(c);
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        cell_start = SEPARATORS.contains(&c) || (cell_start && c == ' ');
    }
    out
}

fn write_row(out: &mut csv::Writer<Vec<u8>>, e: &AuditEntry) -> Result<(), csv::Error> {
    let count = e
        .metadata
        .get("count")
        .and_then(|c| c.as_i64())
        .map(|c| c.to_string())
        .unwrap_or_default();
    let metadata = json_cell(&e.metadata);
    let ip = e.ip.map(|ip| ip.to_string()).unwrap_or_default();
    out.write_record([
        e.id.to_string().as_str(),
        &crate::clock::rfc3339(e.occurred_at),
        &cell(&e.actor_type),
        &cell(e.actor_id.as_deref().unwrap_or_default()),
        &cell(&e.action),
        &cell(&e.outcome),
        &cell(e.target_type.as_deref().unwrap_or_default()),
        &cell(e.target_id.as_deref().unwrap_or_default()),
        &ip,
        &cell(e.user_agent.as_deref().unwrap_or_default()),
        &cell(e.request_id.as_deref().unwrap_or_default()),
        &cell(e.server_request_id.as_deref().unwrap_or_default()),
        &count,
        &metadata,
    ])
}

/// CSV bytes for a batch (with the header line first when `header`).
pub fn encode(entries: &[AuditEntry], header: bool) -> Result<Bytes, AppError> {
    let mut out = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::with_capacity(entries.len() * 256));
    if header {
        out.write_record(HEADER).map_err(AppError::internal)?;
    }
    for e in entries {
        write_row(&mut out, e).map_err(AppError::internal)?;
    }
    out.into_inner()
        .map(Bytes::from)
        .map_err(|e| AppError::internal(anyhow::anyhow!("csv: {e}")))
}

struct Cursor {
    query: AuditQuery,
    header: bool,
    done: bool,
}

/// The rows matching `query`, newest first, as a stream of CSV chunks. A failure part-way ends
/// the stream with an error (the client sees a truncated download, and the cause is logged).
pub fn stream(
    state: web::Data<AppState>,
    mut query: AuditQuery,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    query.limit = BATCH;
    query.after_id = None;
    futures_util::stream::unfold(
        Cursor {
            query,
            header: true,
            done: false,
        },
        move |mut cursor| {
            let state = state.clone();
            async move {
                if cursor.done {
                    return None;
                }
                let query = cursor.query.clone();
                let page = state
                    .pool
                    .run(move |conn| Ok(crate::audit::list(conn, &query)?))
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::error!(error = %error, "audit export failed part-way");
                        cursor.done = true;
                        return Some((Err(error.into()), cursor));
                    }
                };
                let chunk = encode(&page.items, cursor.header);
                cursor.header = false;
                match page.next_before_id {
                    Some(next) => cursor.query.before_id = Some(next),
                    None => cursor.done = true,
                }
                Some((chunk.map_err(actix_web::Error::from), cursor))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_left_alone() {
        for (raw, safe) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\r=1", "'\r'=1"),
            ("  =1", "  '=1"),
            ("curl/8.0", "curl/8.0"),
            ("auth.login.failed", "auth.login.failed"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            ),
            ("a-b+c=d@e", "a-b+c=d@e"),
            ("", ""),
        ] {
            assert_eq!(cell(raw), safe, "{raw:?}");
        }
    }

    #[test]
    fn triggers_after_a_separator_are_defused_too() {
        for (raw, safe) in [
            ("Mozilla/5.0;=1+2*3;x", "Mozilla/5.0;'=1+2*3;x"),
            ("a,=1", "a,'=1"),
            ("a, +1", "a, '+1"),
            ("a\t@SUM(A1)", "a\t'@SUM(A1)"),
            ("a|-1", "a|'-1"),
            ("a\n=1", "a\n'=1"),
            ("a\r\n=1", "a\r\n'=1"),
            ("a\"=1", "a\"'=1"),
            ("a'=1", "a''=1"),
            ("a;;=1;+2", "a;;'=1;'+2"),
            ("\t=1", "'\t'=1"),
            (
                "{\"ua\":\"x;=cmd|' /C calc'!A0\"}",
                "{\"ua\":\"x;'=cmd|' /C calc'!A0\"}",
            ),
        ] {
            assert_eq!(cell(raw), safe, "{raw:?}");
        }
    }

    #[test]
    fn metadata_stays_json_with_the_same_values_but_defused() {
        let value = serde_json::json!({
            "login": "@nobody",
            "ua": "x;=1+2",
            "path": "/a,-b",
            "n": [1, -2],
            "quote": "a\"=b",
            "uuid": "01a22d19-af18-735c-8564-bb77a79b8325",
        });
        let text = json_cell(&value);
        // No trigger follows a separator anywhere, inside strings or out, unless behind a `'`.
        let chars: Vec<char> = text.chars().collect();
        for (i, c) in chars.iter().enumerate().skip(1) {
            if TRIGGERS.contains(c) {
                let before = chars[..i].iter().rev().find(|c| **c != ' ').unwrap();
                assert!(
                    !SEPARATORS.contains(before) || *before == '\'',
                    "{text} at {i}"
                );
            }
        }
        assert!(text.contains("\"\\u0040nobody\""), "{text}");
        assert!(
            text.contains("01a22d19-af18-735c"),
            "hyphens inside ids stay: {text}"
        );
        // Strings read back exactly; only the negative number after a comma is now text.
        let back: serde_json::Value = serde_json::from_str(&text.replace(",'-", ",-")).unwrap();
        assert_eq!(back, value);
        assert!(text.contains(",'-2"), "{text}");
    }

    #[test]
    fn every_field_is_quoted_and_quotes_are_doubled() {
        let entry = AuditEntry {
            id: 7,
            occurred_at: time::macros::datetime!(2026-11-30 12:00 UTC),
            actor_type: "anonymous".into(),
            actor_id: None,
            action: "auth.login.failed".into(),
            outcome: "failure".into(),
            target_type: None,
            target_id: None,
            ip: Some("203.0.113.9".parse().unwrap()),
            user_agent: Some("Mozilla/5.0;=1+2*3;x \"q\"".into()),
            request_id: Some("attacker-chosen".into()),
            server_request_id: Some("0193-server".into()),
            metadata: serde_json::json!({ "login": "=1" }),
            hash: "ab".into(),
            prev_hash: "cd".into(),
        };
        let csv = String::from_utf8(encode(&[entry], true).unwrap().to_vec()).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("\"id\",\"occurred_at\","), "{header}");
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("\"7\",\"2026-11-30T12:00:00Z\",\"anonymous\",\"\","),
            "{row}"
        );
        assert!(
            row.contains(",\"Mozilla/5.0;'=1+2*3;x \"\"q\"\"\","),
            "{row}"
        );
        assert!(
            row.contains(",\"attacker-chosen\",\"0193-server\","),
            "{row}"
        );
        assert!(
            row.contains("\"{\"\"login\"\":\"\"\\u003d1\"\"}\""),
            "{row}"
        );
        // Read back as CSV, every record has every column.
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        for record in reader.records() {
            assert_eq!(record.unwrap().len(), HEADER.len());
        }
    }
}
