//! The data export, streamed: a blocking producer writes the document a page at a time into a
//! bounded channel that the response body drains.
//!
//! Memory is bounded by the channel ([`CHANNEL_DEPTH`] buffers of [`BUFFER_BYTES`]) plus one page
//! of rows and one attachment chunk, however long the history. The producer takes a pooled
//! connection per page and gives it back before writing, so a client that reads slowly holds
//! a thread, never a database connection; a client that goes away ends the producer at its next
//! write. A failure half-way (the database gone) aborts the response, so a client never gets a
//! truncated document that looks complete (a JSON export then does not parse; a zip has no
//! central directory).
//!
//! Each page is read in its own short transaction: the export is not one snapshot. Rows written
//! while it runs may or may not be in it; nothing in it is ever another user's private data,
//! because every page is read through the owning feature's member/owner-filtered queries.
//!
//! Hand-written JSON framing (commas and brackets around values `serde_json` serialises) because
//! `serde_json` has no streaming writer for a document whose arrays come from a database cursor.

use std::io::{self, Write};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::model::ExportFormat;
use crate::conversations as conv;
use crate::crypto::keyring::KeyRing;
use crate::db::Pool;
use crate::error::AppError;

/// Bytes per buffer handed to the response body.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Buffers in flight between the producer and the response body.
pub const CHANNEL_DEPTH: usize = 4;
/// Rows per page of each list.
const PAGE: i64 = 200;

/// What to export, for whom.
#[derive(Debug, Clone)]
pub struct Job {
    pub user_id: Uuid,
    /// The session the request came with (marked `current` in the sessions list).
    pub current_session: Option<Uuid>,
    pub format: ExportFormat,
    pub now: OffsetDateTime,
}

/// The response body: buffers of the document, or the error that aborted it.
pub type Body = mpsc::Receiver<Result<Bytes, io::Error>>;

/// Starts the producer on the blocking pool and returns the body it fills.
pub fn spawn(pool: Pool, ring: Arc<KeyRing>, job: Job) -> Body {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let errors = tx.clone();
            if let Err(error) = produce(&pool, &ring, &job, ChannelWriter::new(tx))
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                tracing::error!(error = %error, "the data export failed half-way");
                let _ = errors.blocking_send(Err(error));
            }
        })
    });
    rx
}

/// Writes the whole export to `out` (the body; a file for the CLI and the benchmark).
pub fn produce<W: Write>(pool: &Pool, ring: &KeyRing, job: &Job, out: W) -> io::Result<()> {
    match job.format {
        ExportFormat::Json => {
            let mut out = out;
            write_document(pool, ring, job, &mut out, true)?;
            out.flush()
        }
        ExportFormat::Zip => {
            let mut zip = zip::ZipWriter::new_stream(out);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true);
            zip.start_file("export.json", options)
                .map_err(io::Error::other)?;
            write_document(pool, ring, job, &mut zip, false)?;
            let mut after = None;
            loop {
                let page = db(pool, |c| {
                    conv::export_attachments_page(c, ring, job.user_id, after, PAGE)
                })?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for attachment in &page {
                    if !db(pool, |c| {
                        conv::export_attachment_readable(c, ring, attachment)
                    })? {
                        continue;
                    }
                    zip.start_file(attachment_path(attachment), options)
                        .map_err(io::Error::other)?;
                    for seq in 0..attachment.chunks() {
                        let chunk = db(pool, |c| {
                            conv::export_attachment_chunk(c, ring, attachment, seq)
                        })?
                        .ok_or_else(|| io::Error::other("an attachment chunk is missing"))?;
                        zip.write_all(&chunk)?;
                    }
                }
            }
            let mut inner = zip.finish().map_err(io::Error::other)?.into_inner();
            inner.flush()
        }
    }
}

/// `attachments/<id>/<name>`, the name reduced to safe characters (no path, no control).
fn attachment_path(a: &conv::ExportedAttachment) -> String {
    let name: String = a
        .name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let name = name.trim_start_matches('.');
    let name = if name.trim().is_empty() { "file" } else { name };
    format!("attachments/{}/{name}", a.id)
}

/// One short pooled call (the connection goes back before anything is written).
fn db<T>(
    pool: &Pool,
    f: impl FnOnce(&mut diesel::PgConnection) -> Result<T, AppError>,
) -> io::Result<T> {
    let mut conn = pool.get().map_err(|e| io::Error::other(e.to_string()))?;
    f(&mut conn.conn).map_err(|e| io::Error::other(e.to_string()))
}

fn value<W: Write, T: Serialize + ?Sized>(out: &mut W, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(io::Error::other)
}

/// `,"name":` before a field of the top-level object.
fn key<W: Write>(out: &mut W, name: &str) -> io::Result<()> {
    write!(out, ",\"{name}\":")
}

/// The JSON document. `inline`: attachments as base64 inside it (else as zip file names).
fn write_document<W: Write>(
    pool: &Pool,
    ring: &KeyRing,
    job: &Job,
    out: &mut W,
    inline: bool,
) -> io::Result<()> {
    let id = job.user_id;
    let now = job.now;
    let current = job.current_session;
    let (user, identities, sessions, api_keys, subscription, blocks) = db(pool, |c| {
        let user = crate::users::store::find(c, id)?.ok_or(AppError::NotFound)?;
        let identities: Vec<crate::identity::IdentityView> = crate::identity::of_user(c, id)?
            .iter()
            .map(crate::identity::IdentityView::from)
            .collect();
        let sessions = crate::sessions::all_for_user(c, id, current)?;
        let api_keys = crate::api_keys::all_for_user(c, id, now)?;
        let subscription = crate::webhooks::subscription_in(c, id)?;
        let blocks = crate::conversations::blocks_of(c, id)?;
        Ok((
            crate::users::UserView::from(&user),
            identities,
            sessions,
            api_keys,
            subscription,
            blocks,
        ))
    })?;
    let key_ids: Vec<Uuid> = api_keys.iter().map(|k| k.id).collect();
    out.write_all(b"{\"format\":\"rampart-export/1\",\"exported_at\":")?;
    value(out, &crate::clock::rfc3339(now))?;
    key(out, "user")?;
    value(out, &user)?;
    key(out, "identities")?;
    value(out, &identities)?;
    key(out, "sessions")?;
    value(out, &sessions)?;
    key(out, "api_keys")?;
    value(out, &api_keys)?;
    key(out, "subscription")?;
    value(out, &subscription)?;
    key(out, "blocks")?;
    value(out, &blocks)?;
    drop((identities, sessions, api_keys, subscription, blocks));

    key(out, "conversations")?;
    out.write_all(b"[")?;
    let mut after = None;
    let mut first = true;
    loop {
        let page = db(pool, |c| {
            conv::export_conversations_page(c, ring, id, after, 50)
        })?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for conversation in &page {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            out.write_all(b"{\"conversation\":")?;
            value(out, conversation)?;
            out.write_all(b",\"messages\":[")?;
            let mut seq = 0;
            let mut first_message = true;
            loop {
                let messages = db(pool, |c| {
                    conv::export_messages_page(c, ring, id, conversation.id, seq, PAGE)
                })?;
                let Some((last, _)) = messages.last() else {
                    break;
                };
                seq = *last;
                for (_, message) in &messages {
                    if !first_message {
                        out.write_all(b",")?;
                    }
                    first_message = false;
                    write_message(pool, ring, id, out, message, inline)?;
                }
            }
            out.write_all(b"]}")?;
        }
    }
    out.write_all(b"]")?;

    key(out, "messages_in_left_conversations")?;
    out.write_all(b"[")?;
    let mut after = None;
    let mut first = true;
    loop {
        let page = db(pool, |c| {
            conv::export_authored_elsewhere_page(c, ring, id, after, PAGE)
        })?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for message in &page {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            write_message(pool, ring, id, out, message, inline)?;
        }
    }
    out.write_all(b"]")?;

    key(out, "audit_events")?;
    out.write_all(b"[")?;
    let mut after = 0;
    let mut first = true;
    loop {
        let page = db(pool, |c| {
            Ok(crate::audit::own_events_page(c, id, &key_ids, after, 1000)?)
        })?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for event in &page {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            value(out, event)?;
        }
    }
    out.write_all(b"]")?;

    key(out, "audit_events_by_others")?;
    out.write_all(b"[")?;
    let mut after = 0;
    let mut first = true;
    loop {
        let page = db(pool, |c| {
            Ok(crate::audit::events_done_to_page(
                c, id, &key_ids, after, 1000,
            )?)
        })?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, event) in &page {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            value(out, event)?;
        }
    }
    out.write_all(b"]}")?;
    Ok(())
}

/// A message: its view, and its attachments with their content (base64, streamed chunk by
/// chunk) or their file name in the zip.
fn write_message<W: Write>(
    pool: &Pool,
    ring: &KeyRing,
    user_id: Uuid,
    out: &mut W,
    message: &crate::conversations::MessageView,
    inline: bool,
) -> io::Result<()> {
    let mut object = serde_json::to_value(message).map_err(io::Error::other)?;
    if let serde_json::Value::Object(map) = &mut object {
        map.remove("attachments");
        map.remove("cursor");
    }
    let text = serde_json::to_string(&object).map_err(io::Error::other)?;
    // The object without its one closing brace; the attachments follow as one more field.
    let open = text
        .strip_suffix('}')
        .ok_or_else(|| io::Error::other("a message did not serialise as an object"))?;
    out.write_all(open.as_bytes())?;
    if open.len() > 1 {
        out.write_all(b",")?;
    }
    out.write_all(b"\"attachments\":[")?;
    for (i, view) in message.attachments.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let attachment = db(pool, |c| conv::export_attachment(c, ring, user_id, view.id))?;
        let readable = match &attachment {
            Some(a) => db(pool, |c| conv::export_attachment_readable(c, ring, a))?,
            None => false,
        };
        out.write_all(b"{\"id\":")?;
        value(out, &view.id)?;
        out.write_all(b",\"name\":")?;
        value(out, &view.name)?;
        out.write_all(b",\"content_type\":")?;
        value(out, &view.content_type)?;
        out.write_all(b",\"size\":")?;
        value(out, &view.size)?;
        match (attachment, readable) {
            (Some(a), true) if inline => {
                out.write_all(b",\"content_base64\":\"")?;
                let mut carry: Vec<u8> = Vec::with_capacity(3);
                for seq in 0..a.chunks() {
                    let chunk = db(pool, |c| conv::export_attachment_chunk(c, ring, &a, seq))?
                        .ok_or_else(|| io::Error::other("an attachment chunk is missing"))?;
                    carry.extend_from_slice(&chunk);
                    let whole = carry.len() / 3 * 3;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&carry[..whole]);
                    out.write_all(encoded.as_bytes())?;
                    carry.drain(..whole);
                }
                let encoded = base64::engine::general_purpose::STANDARD.encode(&carry);
                out.write_all(encoded.as_bytes())?;
                out.write_all(b"\"}")?;
            }
            (Some(a), true) => {
                out.write_all(b",\"file\":")?;
                value(out, &attachment_path(&a))?;
                out.write_all(b"}")?;
            }
            _ => out.write_all(b",\"content_unavailable\":true}")?,
        }
    }
    out.write_all(b"]}")
}

/// Buffers writes and hands full buffers to the response body; blocks while the body is behind
/// (that is the back-pressure), fails with `BrokenPipe` once the client is gone.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(BUFFER_BYTES),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BUFFER_BYTES));
        self.tx
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BUFFER_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_paths_stay_inside_their_folder() {
        let a = |name: &str| conv::ExportedAttachment::for_test(Uuid::nil(), name);
        let id = Uuid::nil();
        assert_eq!(
            attachment_path(&a("../../etc/passwd")),
            format!("attachments/{id}/_.._etc_passwd")
        );
        assert_eq!(attachment_path(&a("...")), format!("attachments/{id}/file"));
        assert_eq!(
            attachment_path(&a("report 2026.pdf")),
            format!("attachments/{id}/report 2026.pdf")
        );
        assert_eq!(
            attachment_path(&a("a\u{0}b/c")),
            format!("attachments/{id}/a_b_c")
        );
    }
}
