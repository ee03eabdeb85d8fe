//! A member's conversations for their data export (`privacy`): read in keyset pages so an export
//! of any size runs in bounded memory, decrypted with the same rules as the API's pages (content
//! whose key is gone reads `[message unavailable]`, an erased member `[deleted user]`).
//!
//! What a user's export holds: every conversation they are a member of, with every message in it
//! (what they wrote and what they received — exactly what `GET …/messages` shows them), and the
//! messages they wrote in conversations they have left (their own words, without anyone else's).
//! Never a conversation they are not in, never another member's message outside one they are in.

use diesel::PgConnection;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::store::{self, AttachmentRow};
use super::{MemberView, MessageView, member_views, message_views_with_keys, open_text};
use crate::crypto::keyring::KeyRing;
use crate::error::AppError;
use crate::users::data_keys;

/// One conversation of the export (its messages follow it in the document).
#[derive(Debug, Clone, Serialize)]
pub struct ExportedConversation {
    pub id: Uuid,
    pub kind: String,
    pub title: Option<String>,
    pub members: Vec<MemberView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity_at: OffsetDateTime,
    /// The sequence number the user has read up to.
    pub last_read_seq: i64,
}

/// An attachment the user may read, for the export's content pass.
#[derive(Debug, Clone)]
pub struct ExportedAttachment {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    data_key_id: Uuid,
    chunks: i32,
}

impl ExportedAttachment {
    pub fn chunks(&self) -> i32 {
        self.chunks
    }
}

/// Up to `limit` of the user's conversations after `after` (by id).
pub fn conversations_page(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportedConversation>, AppError> {
    let rows = store::member_conversations_after(conn, user_id, after, limit)?;
    let key_ids: Vec<Uuid> = rows.iter().map(|(r, _)| r.data_key_id).collect();
    let keys = data_keys::open(conn, ring, &key_ids)?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, last_read_seq) in rows {
        let members = store::members(conn, row.id)?;
        out.push(ExportedConversation {
            id: row.id,
            kind: row.kind,
            title: row
                .title_ciphertext
                .as_deref()
                .map(|t| open_text(&keys, row.data_key_id, t)),
            members: member_views(members),
            created_at: row.created_at,
            last_activity_at: row.last_activity_at,
            last_read_seq,
        });
    }
    Ok(out)
}

/// Up to `limit` messages of a conversation the user is a member of, after sequence number
/// `after` (0 for the first page), oldest first, each with its sequence number. Empty for a
/// conversation they are not in.
pub fn messages_page(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    conversation_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, MessageView)>, AppError> {
    let rows = store::messages_with_keys_for_member(
        conn,
        conversation_id,
        user_id,
        None,
        Some(after),
        limit,
    )?;
    let seqs: Vec<i64> = rows.iter().map(|(r, _, _)| r.seq).collect();
    let views = message_views_with_keys(conn, ring, rows).map_err(AppError::from)?;
    Ok(seqs.into_iter().zip(views).collect())
}

/// Up to `limit` messages the user wrote in conversations they have left, after `after` (by id).
pub fn authored_elsewhere_page(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MessageView>, AppError> {
    let rows = store::authored_outside_membership(conn, user_id, after, limit)?;
    message_views_with_keys(conn, ring, rows).map_err(AppError::from)
}

/// One attachment the user may read (see [`store::attachments_visible_to`]), name decrypted.
pub fn attachment(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ExportedAttachment>, AppError> {
    Ok(visible(conn, ring, user_id, None, Some(id), 1)?.pop())
}

/// Up to `limit` attachments the user may read (see [`store::attachments_visible_to`]), after
/// `after` (by id), names decrypted.
pub fn attachments_page(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportedAttachment>, AppError> {
    visible(conn, ring, user_id, after, None, limit)
}

fn visible(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    after: Option<Uuid>,
    only: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportedAttachment>, AppError> {
    let rows: Vec<AttachmentRow> =
        store::attachments_visible_to(conn, user_id, after, only, limit)?;
    let key_ids: Vec<Uuid> = rows.iter().map(|a| a.data_key_id).collect();
    let keys = data_keys::open(conn, ring, &key_ids)?;
    Ok(rows
        .into_iter()
        .map(|a| {
            let view = super::attachment_view(&keys, &a);
            ExportedAttachment {
                id: a.id,
                message_id: a.message_id,
                conversation_id: a.conversation_id,
                name: view.name,
                content_type: view.content_type,
                size: a.size,
                data_key_id: a.data_key_id,
                chunks: a.chunks,
            }
        })
        .collect())
}

/// Whether the attachment's content can still be decrypted (its key is not gone).
pub fn attachment_readable(
    conn: &mut PgConnection,
    ring: &KeyRing,
    attachment: &ExportedAttachment,
) -> Result<bool, AppError> {
    Ok(data_keys::open(conn, ring, &[attachment.data_key_id])?.contains(attachment.data_key_id))
}

/// The plaintext of chunk `seq` of an attachment listed by [`attachments_page`] or
/// [`attachment`]; `None` when the chunk is missing or its key is gone.
pub fn attachment_chunk(
    conn: &mut PgConnection,
    ring: &KeyRing,
    attachment: &ExportedAttachment,
    seq: i32,
) -> Result<Option<Vec<u8>>, AppError> {
    let Some(token) = store::chunk(conn, attachment.id, seq)? else {
        return Ok(None);
    };
    let keys = data_keys::open(conn, ring, &[attachment.data_key_id])?;
    Ok(keys.decrypt(attachment.data_key_id, &token))
}

#[cfg(test)]
impl ExportedAttachment {
    pub fn for_test(id: Uuid, name: &str) -> ExportedAttachment {
        ExportedAttachment {
            id,
            message_id: id,
            conversation_id: id,
            name: name.to_string(),
            content_type: "text/plain".into(),
            size: 0,
            data_key_id: id,
            chunks: 0,
        }
    }
}
