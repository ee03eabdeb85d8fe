//! The audit log as CSV, streamed: rows are read in keyset batches and written out as they come,
//! so an export of millions of rows holds one batch in memory, never the whole set.
//!
//! Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or
//! carriage return) are prefixed with `'`: audit rows hold attacker-chosen text (user agents,
//! login names) and an export must not turn into code on an admin's machine.

use actix_web::web;
use bytes::Bytes;
use futures_util::Stream;

use crate::app::AppState;
use crate::audit::{AuditEntry, AuditQuery};
use crate::http::error::AppError;

/// Rows per database round trip.
pub const BATCH: i64 = 500;

pub const HEADER: [&str; 13] = [
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
    "count",
    "metadata",
];

/// A cell safe to open in a spreadsheet.
pub fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn write_row(out: &mut csv::Writer<Vec<u8>>, e: &AuditEntry) -> Result<(), csv::Error> {
    let count = e
        .metadata
        .get("count")
        .and_then(|c| c.as_i64())
        .map(|c| c.to_string())
        .unwrap_or_default();
    let metadata = e.metadata.to_string();
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
        &count,
        &cell(&metadata),
    ])
}

/// CSV bytes for a batch (with the header line first when `header`).
pub fn encode(entries: &[AuditEntry], header: bool) -> Result<Bytes, AppError> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(entries.len() * 256));
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
            ("curl/8.0", "curl/8.0"),
            ("auth.login.failed", "auth.login.failed"),
            ("", ""),
        ] {
            assert_eq!(cell(raw), safe);
        }
    }
}
