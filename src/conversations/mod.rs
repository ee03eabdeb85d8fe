//! Encrypted conversations: direct and group conversations, their members, messages and
//! attachments; blocks between users; message retention.
//!
//! **Boundary.** This module owns the `conversations`, `conversation_members`, `messages`,
//! `attachments`, `attachment_chunks` and `user_blocks` tables. It reads users through `users`
//! and their data keys through `users::data_keys`, spends quotas through `rate_limit`'s
//! `mod.rs`, and never decrypts anything outside a member's request (the console sees counts).
//!
//! **Membership is the only way in.** Every store query that touches a conversation's content
//! filters by the caller's membership in the same statement; a non-member gets the same 404 as
//! for an id that does not exist, whatever the route.
//!
//! **Encryption at rest.** Bodies, titles, attachment names and attachment bytes are Fernet
//! tokens under the author's (for titles, the creator's) data key; each row records the key's
//! id. The database never holds plaintext content or an unwrapped key. Content whose key is gone
//! (an erased author, or a master key removed from configuration too early) reads as
//! `[message unavailable]`, never as an error. Attachments are encrypted in chunks of
//! [`CHUNK_BYTES`], so neither an upload nor a download ever holds more than one chunk's
//! ciphertext beside the plaintext.
//!
//! **Ordering.** A message's number (`seq`) is taken under its conversation's row lock, so
//! numbers follow commit order: keyset pages (`before`/`after`) neither skip nor repeat a message
//! while others are being sent.

pub mod attachment;
pub mod cli;
mod export;
pub mod model;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use diesel::prelude::*;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// A member's data for their export (`privacy`), read in keyset pages: see `export.rs`.
pub use export::{
    ExportedAttachment, ExportedConversation, attachment as export_attachment,
    attachment_chunk as export_attachment_chunk, attachment_readable as export_attachment_readable,
    attachments_page as export_attachments_page,
    authored_elsewhere_page as export_authored_elsewhere_page,
    conversations_page as export_conversations_page, messages_page as export_messages_page,
};
pub use model::{
    AttachmentView, ConversationView, Cursor, MemberView, MessagePage, MessageText, MessageView,
    PageRequest, UsageStats,
};

use self::attachment::{AttachmentError, AttachmentType};
use self::model::{DELETED_USER, MemberList, Title, UNAVAILABLE_TEXT};
use self::store::{AttachmentRow, ConversationRow, MessageRow};
use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::Principal;
use crate::bus::{Event as LiveEvent, EventKind};
use crate::config::settings::ConversationSettings;
use crate::crypto::keyring::DataKey;
use crate::error::{AppError, FieldError};
use crate::rate_limit::QuotaKind;
use crate::state::AppState;
use crate::users::data_keys::{self, DataKeyError, OpenKeys};

/// Plaintext bytes per encrypted attachment chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// The most files one message carries.
pub const MAX_FILES: usize = 4;

/// The route that takes attachments (multipart bodies streamed under [`upload_limits`]).
pub const MESSAGES_ROUTE: &str = "/api/v1/conversations/{id}/messages";

/// What one message form may carry: [`MAX_FILES`] files of ATTACHMENT_MAX_BYTES and an 8 KiB body.
pub fn upload_limits(settings: &ConversationSettings) -> crate::http::multipart::UploadLimits {
    crate::http::multipart::UploadLimits {
        max_files: MAX_FILES,
        max_file_bytes: settings.attachment_max_bytes,
        max_body_bytes: model::MAX_BODY_BYTES,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// Not a member, or no such conversation, message or attachment: one answer for all.
    #[error("not found")]
    NotFound,
    /// A block stands between the caller and someone in the conversation.
    #[error("a block prevents this")]
    Blocked,
    /// Someone else's message.
    #[error("only the author may change a message")]
    NotAuthor,
    /// The edit window has closed, or the message was deleted.
    #[error("the message can no longer be changed")]
    Locked(&'static str),
    /// Named usernames that cannot be added (unknown or disabled).
    #[error("unknown members")]
    UnknownMembers(Vec<String>),
    #[error("too many members")]
    TooManyMembers(usize),
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for ConversationError {
    fn from(error: diesel::result::Error) -> Self {
        ConversationError::App(error.into())
    }
}

impl From<DataKeyError> for ConversationError {
    fn from(error: DataKeyError) -> Self {
        match error {
            DataKeyError::Db(error) => ConversationError::App(error.into()),
            // The caller's own key is gone (erased) or unusable: nothing can be written for them.
            other => ConversationError::App(AppError::Unavailable {
                retry_after: 60,
                reason: "encryption key",
            })
            .log_key_error(&other),
        }
    }
}

impl ConversationError {
    fn log_key_error(self, error: &DataKeyError) -> Self {
        tracing::error!(error = %error, "the author's data key is not usable");
        self
    }
}

impl From<ConversationError> for AppError {
    fn from(error: ConversationError) -> Self {
        match error {
            ConversationError::NotFound => AppError::NotFound,
            ConversationError::Blocked => AppError::Forbidden,
            ConversationError::NotAuthor => AppError::Forbidden,
            ConversationError::Locked(why) => {
                AppError::Conflict(vec![FieldError::new("message", why)])
            }
            ConversationError::UnknownMembers(names) => AppError::Validation(
                names
                    .into_iter()
                    .map(|n| {
                        FieldError::new(
                            "member_usernames",
                            format!("`{n}` is not a user you can add"),
                        )
                    })
                    .collect(),
            ),
            ConversationError::TooManyMembers(max) => AppError::Validation(vec![FieldError::new(
                "member_usernames",
                format!("a conversation has at most {max} members"),
            )]),
            ConversationError::Attachment(error) => error.into(),
            ConversationError::App(error) => error,
        }
    }
}

type Result<T, E = ConversationError> = std::result::Result<T, E>;

fn now(state: &AppState) -> OffsetDateTime {
    state.clock.now()
}

/// Runs `f` in one transaction on a pooled connection, off the async workers.
async fn in_tx<T, F>(state: &AppState, f: F) -> Result<T>
where
    F: FnOnce(&mut PgConnection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    state
        .pool
        .run(move |conn| Ok(conn.transaction::<T, ConversationError, _>(f)))
        .await?
}

/// What a new conversation needs.
pub struct NewConversation {
    pub member_usernames: Vec<String>,
    pub title: Option<String>,
}

/// Starts a conversation between the caller and the named users (a direct conversation with
/// one, a group with more). Spends the monthly conversation quota.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    input: NewConversation,
    meta: RequestMeta,
) -> Result<ConversationView, AppError> {
    let settings = state.settings.conversations.clone();
    let members = MemberList::parse(&input.member_usernames, settings.max_members)
        .map_err(|e| AppError::Validation(vec![e]))?;
    let title = Title::parse(input.title.as_deref()).map_err(|e| AppError::Validation(vec![e]))?;
    let ring = state.keyring.clone();
    let quotas = state.settings.quotas.clone();
    let caller = principal.clone();
    let at = now(state);
    let result = in_tx(state, move |conn| {
        let mut ids = Vec::with_capacity(members.names().len());
        let mut unknown = Vec::new();
        for name in members.names() {
            match crate::users::store::find_by_username(conn, name.as_str())? {
                Some(user) if user.active && user.id != caller.user_id => ids.push(user.id),
                Some(user) if user.id == caller.user_id => {}
                _ => unknown.push(name.as_str().to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(ConversationError::UnknownMembers(unknown));
        }
        if ids.is_empty() {
            return Err(ConversationError::App(AppError::Validation(vec![
                FieldError::new("member_usernames", "must name at least one other user"),
            ])));
        }
        if ids.len() + 1 > settings.max_members {
            return Err(ConversationError::TooManyMembers(settings.max_members));
        }
        if store::blocked_between(conn, caller.user_id, &ids)? {
            return Err(ConversationError::Blocked);
        }
        crate::rate_limit::consume_quota(
            conn,
            &quotas,
            &caller,
            QuotaKind::ConversationsCreated,
            at,
        )?;
        let (key_id, key) = data_keys::for_writing(conn, &ring, caller.user_id, at)?;
        let row = ConversationRow {
            id: Uuid::now_v7(),
            kind: if ids.len() == 1 { "direct" } else { "group" }.to_string(),
            creator_id: caller.user_id,
            data_key_id: key_id,
            title_ciphertext: title.as_ref().map(|t| key.encrypt(t.as_str().as_bytes())),
            created_at: at,
            last_activity_at: at,
            last_seq: 0,
        };
        store::insert_conversation(conn, &row)?;
        let mut all = Vec::with_capacity(ids.len() + 1);
        all.push(caller.user_id);
        all.extend_from_slice(&ids);
        store::insert_members(conn, row.id, &all, at)?;
        let members = store::members(conn, row.id)?;
        Ok(ConversationView {
            id: row.id,
            kind: row.kind,
            title: title.map(|t| t.as_str().to_string()),
            members: member_views(members),
            created_at: at,
            last_activity_at: at,
            unread_count: 0,
        })
    })
    .await
    .map_err(AppError::from);
    crate::rate_limit::quota_audited(state, principal, meta, result).await
}

fn member_views(members: Vec<(Uuid, String)>) -> Vec<MemberView> {
    members
        .into_iter()
        .map(|(id, username)| MemberView {
            id,
            username: display_username(username),
        })
        .collect()
}

/// An erased account's tombstone username shows as `[deleted user]`.
fn display_username(username: String) -> String {
    if crate::users::Username::is_tombstone(&username) {
        DELETED_USER.to_string()
    } else {
        username
    }
}

fn open_text(keys: &OpenKeys, key_id: Uuid, token: &str) -> String {
    keys.decrypt(key_id, token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| UNAVAILABLE_TEXT.to_string())
}

/// The views of `rows` for `user_id` (their unread counts after their read markers).
fn conversation_views(
    conn: &mut PgConnection,
    ring: &crate::crypto::keyring::KeyRing,
    user_id: Uuid,
    rows: Vec<(ConversationRow, i64)>,
) -> Result<Vec<ConversationView>> {
    let key_ids: Vec<Uuid> = rows.iter().map(|(r, _)| r.data_key_id).collect();
    let keys = data_keys::open(conn, ring, &key_ids)?;
    let mut views = Vec::with_capacity(rows.len());
    for (row, read) in rows {
        let members = store::members(conn, row.id)?;
        let unread_count = store::unread_count(conn, row.id, user_id, read)?;
        views.push(ConversationView {
            id: row.id,
            kind: row.kind,
            title: row
                .title_ciphertext
                .as_deref()
                .map(|t| open_text(&keys, row.data_key_id, t)),
            members: member_views(members),
            created_at: row.created_at,
            last_activity_at: row.last_activity_at,
            unread_count,
        });
    }
    Ok(views)
}

/// The caller's conversations by latest activity, newest first; `after` is the
/// [`conversation_cursor`] of the last one of the previous page.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<ConversationView>, Option<String>), AppError> {
    let after = match after.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(parse_conversation_cursor(c).ok_or_else(|| {
            AppError::Validation(vec![FieldError::new("cursor", "is not a valid cursor")])
        })?),
    };
    let ring = state.keyring.clone();
    let user_id = principal.user_id;
    let views = in_tx(state, move |conn| {
        let rows = store::list_for_member(conn, user_id, after, limit + 1)?;
        conversation_views(conn, &ring, user_id, rows)
    })
    .await?;
    let mut views = views;
    let more = views.len() as i64 > limit;
    views.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        views
            .last()
            .map(|v| conversation_cursor(v.last_activity_at, v.id))
    } else {
        None
    };
    Ok((views, next))
}

/// An opaque position in the conversation list: activity time (µs) and id.
pub fn conversation_cursor(at: OffsetDateTime, id: Uuid) -> String {
    use base64::Engine;
    let micros = (at.unix_timestamp_nanos() / 1000) as i64;
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&micros.to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_conversation_cursor(cursor: &str) -> Option<(OffsetDateTime, Uuid)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    if bytes.len() != 24 {
        return None;
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
    Some((at, Uuid::from_slice(&bytes[8..]).ok()?))
}

/// One conversation of the caller's.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<ConversationView, AppError> {
    let ring = state.keyring.clone();
    let user_id = principal.user_id;
    Ok(in_tx(state, move |conn| {
        let row = store::find_for_member(conn, id, user_id)?.ok_or(ConversationError::NotFound)?;
        let read = store::read_marker(conn, id, user_id)?.unwrap_or(0);
        conversation_views(conn, &ring, user_id, vec![(row, read)])?
            .pop()
            .ok_or(ConversationError::NotFound)
    })
    .await?)
}

/// A file of a message being sent, as received (validated by [`send`]).
pub struct Upload {
    pub name: String,
    pub declared_type: Option<String>,
    pub bytes: Bytes,
}

/// A validated file, ready to encrypt.
struct CheckedUpload {
    name: String,
    kind: AttachmentType,
    bytes: Bytes,
}

/// Every file checked (name, size, type from content, active content), or the first refusal,
/// naming the file (`files[2]`).
fn check_uploads(
    settings: &ConversationSettings,
    uploads: Vec<Upload>,
) -> Result<Vec<CheckedUpload>, AppError> {
    if uploads.len() > MAX_FILES {
        return Err(AttachmentError::TooMany { max: MAX_FILES }.to_app_error("files"));
    }
    let allowed: Vec<AttachmentType> = settings
        .attachment_types
        .iter()
        .filter_map(|t| AttachmentType::parse(t))
        .collect();
    uploads
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let field = format!("files[{i}]");
            if u.bytes.len() > settings.attachment_max_bytes {
                return Err(AttachmentError::TooLarge {
                    limit: settings.attachment_max_bytes,
                }
                .to_app_error(&field));
            }
            let name = attachment::validate_name(&u.name).map_err(|e| e.to_app_error(&field))?;
            let kind = attachment::sniff(&u.bytes, u.declared_type.as_deref(), &allowed)
                .map_err(|e| e.to_app_error(&field))?;
            Ok(CheckedUpload {
                name: name.into_inner(),
                kind,
                bytes: u.bytes,
            })
        })
        .collect()
}

/// Sends a message (with up to [`MAX_FILES`] attachments) to a conversation of the caller's.
/// Spends the daily message quota (and the attachment quota per file) in the same transaction:
/// a refused send stores nothing.
pub async fn send(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    body: &str,
    uploads: Vec<Upload>,
    meta: RequestMeta,
) -> Result<MessageView, AppError> {
    let text = MessageText::parse("body", body).map_err(|e| AppError::Validation(vec![e]))?;
    let settings = state.settings.conversations.clone();
    let files = check_uploads(&settings, uploads)?;
    let ring = state.keyring.clone();
    let quotas = state.settings.quotas.clone();
    let caller = principal.clone();
    let at = now(state);
    let result = in_tx(state, move |conn| {
        // The lock on the conversation row: numbering, membership and the author's stored data
        // key in one statement.
        let (seq, stored_key) =
            store::next_seq_and_key_for_member(conn, conversation_id, caller.user_id, at)?
                .ok_or(ConversationError::NotFound)?;
        if store::blocked_by_a_member(conn, conversation_id, caller.user_id)? {
            return Err(ConversationError::Blocked);
        }
        crate::rate_limit::consume_quota(conn, &quotas, &caller, QuotaKind::MessagesSent, at)?;
        for _ in &files {
            crate::rate_limit::consume_quota(
                conn,
                &quotas,
                &caller,
                QuotaKind::AttachmentsUploaded,
                at,
            )?;
        }
        let (key_id, key) =
            data_keys::for_writing_from(conn, &ring, caller.user_id, at, stored_key)?;
        let row = MessageRow {
            id: Uuid::now_v7(),
            conversation_id,
            seq,
            author_id: caller.user_id,
            data_key_id: key_id,
            body_ciphertext: Some(key.encrypt(text.as_str().as_bytes())),
            created_at: at,
            edited_at: None,
            deleted_at: None,
        };
        store::insert_message(conn, &row)?;
        let mut attachments = Vec::with_capacity(files.len());
        for (position, file) in files.into_iter().enumerate() {
            attachments.push(store_attachment(
                conn, &key, key_id, &row, position, file, at,
            )?);
        }
        // The authenticating query already loaded the caller's row.
        let author = match caller.user.as_ref() {
            Some(user) => user.username.clone(),
            None => crate::users::store::usernames(conn, &[caller.user_id])?
                .pop()
                .map(|(_, u)| u)
                .unwrap_or_default(),
        };
        Ok(MessageView {
            id: row.id,
            conversation_id,
            author: MemberView {
                id: caller.user_id,
                username: author,
            },
            body: Some(text.as_str().to_string()),
            attachments,
            created_at: at,
            edited_at: None,
            deleted_at: None,
            cursor: Cursor(seq).encode(),
        })
    })
    .await
    .map_err(AppError::from);
    let view = crate::rate_limit::quota_audited(state, principal, meta, result).await?;
    publish(
        state,
        LiveEvent::new(EventKind::MessageCreated, conversation_id).message(view.id),
    );
    Ok(view)
}

/// The members of a conversation (live delivery checks every event against them).
pub fn member_ids(conn: &mut PgConnection, conversation_id: Uuid) -> Result<Vec<Uuid>, AppError> {
    Ok(store::members(conn, conversation_id)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Whether `user_id` is a member of `conversation_id`.
pub fn is_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
) -> Result<bool, AppError> {
    Ok(store::is_member(conn, conversation_id, user_id)?)
}

/// One message as `member_id` sees it (live delivery: loaded once per event, then sent to every
/// member's socket); `None` when they are not a member or it does not exist.
pub fn message_for_member(
    conn: &mut PgConnection,
    ring: &crate::crypto::keyring::KeyRing,
    conversation_id: Uuid,
    message_id: Uuid,
    member_id: Uuid,
) -> Result<Option<MessageView>, AppError> {
    let Some(row) = store::message_for_member(conn, conversation_id, message_id, member_id)? else {
        return Ok(None);
    };
    Ok(message_views(conn, ring, vec![row])
        .map_err(AppError::from)?
        .pop())
}

/// Tells every instance (after the commit) what changed, by id: `live` loads and checks the rest.
fn publish(state: &AppState, event: LiveEvent) {
    state.bus.publish(event);
}

/// Encrypts `file` in chunks under the author's key and stores it.
fn store_attachment(
    conn: &mut PgConnection,
    key: &DataKey,
    key_id: Uuid,
    message: &MessageRow,
    position: usize,
    file: CheckedUpload,
    at: OffsetDateTime,
) -> Result<AttachmentView> {
    let id = Uuid::now_v7();
    let chunks: Vec<&[u8]> = file.bytes.chunks(CHUNK_BYTES).collect();
    let row = AttachmentRow {
        id,
        message_id: message.id,
        conversation_id: message.conversation_id,
        data_key_id: key_id,
        name_ciphertext: key.encrypt(file.name.as_bytes()),
        content_type: file.kind.as_str().to_string(),
        size: i64::try_from(file.bytes.len()).unwrap_or(i64::MAX),
        chunks: i32::try_from(chunks.len()).unwrap_or(i32::MAX),
        position: i16::try_from(position).unwrap_or(i16::MAX),
        created_at: at,
    };
    store::insert_attachment(conn, &row)?;
    for (seq, chunk) in chunks.into_iter().enumerate() {
        // One chunk's ciphertext at a time: dropped once written.
        let token = key.encrypt(chunk);
        store::insert_chunk(conn, id, i32::try_from(seq).unwrap_or(i32::MAX), &token)?;
    }
    Ok(AttachmentView {
        id,
        name: file.name,
        content_type: file.kind.mime().to_string(),
        size: row.size,
    })
}

/// A page of a conversation's messages, newest first.
pub async fn page(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    request: PageRequest,
    limit: i64,
) -> Result<MessagePage, AppError> {
    let ring = state.keyring.clone();
    let user_id = principal.user_id;
    Ok(in_tx(state, move |conn| {
        let (before, after) = match request {
            PageRequest::Newest => (None, None),
            PageRequest::Before(c) => (Some(c.0), None),
            PageRequest::After(c) => (None, Some(c.0)),
        };
        // Rows, author names and key wraps in one query; rows at all prove membership, an empty
        // page is checked (a non-member's empty page is a 404).
        let mut rows = store::messages_with_keys_for_member(
            conn,
            conversation_id,
            user_id,
            before,
            after,
            limit + 1,
        )?;
        if rows.is_empty() && !store::is_member(conn, conversation_id, user_id)? {
            return Err(ConversationError::NotFound);
        }
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more {
            rows.last().map(|r| Cursor(r.0.seq).encode())
        } else {
            None
        };
        if after.is_some() {
            rows.reverse();
        }
        let items = message_views_with_keys(conn, &ring, rows)?;
        Ok(MessagePage {
            items,
            next_cursor: next,
        })
    })
    .await?)
}

/// The views of rows read with their authors and key wraps
/// ([`store::messages_with_keys_for_member`]): one unwrap per data key, one query for the
/// attachments (and one more only for an attachment under a key the messages did not bring).
fn message_views_with_keys(
    conn: &mut PgConnection,
    ring: &crate::crypto::keyring::KeyRing,
    rows: Vec<store::MessageWithKey>,
) -> Result<Vec<MessageView>> {
    let mut keys = OpenKeys::from_wraps(
        ring,
        rows.iter().filter_map(|(r, _, wrap)| {
            wrap.as_ref()
                .map(|(owner, master, w)| (r.data_key_id, *owner, master.as_str(), w.as_deref()))
        }),
    );
    let ids: Vec<Uuid> = rows.iter().map(|(r, _, _)| r.id).collect();
    let attachment_rows = store::attachments_of(conn, &ids)?;
    let missing: Vec<Uuid> = attachment_rows
        .iter()
        .map(|a| a.data_key_id)
        .filter(|id| !keys.contains(*id))
        .collect();
    if !missing.is_empty() {
        keys.extend(data_keys::open(conn, ring, &missing)?);
    }
    let mut by_message: HashMap<Uuid, Vec<AttachmentView>> = HashMap::new();
    for a in attachment_rows {
        by_message
            .entry(a.message_id)
            .or_default()
            .push(attachment_view(&keys, &a));
    }
    Ok(rows
        .into_iter()
        .map(|(r, username, _)| message_view(&keys, &mut by_message, r, username))
        .collect())
}

fn message_view(
    keys: &OpenKeys,
    attachments: &mut HashMap<Uuid, Vec<AttachmentView>>,
    r: MessageRow,
    username: String,
) -> MessageView {
    MessageView {
        id: r.id,
        conversation_id: r.conversation_id,
        author: MemberView {
            id: r.author_id,
            username: display_username(username),
        },
        body: r
            .body_ciphertext
            .as_deref()
            .map(|t| open_text(keys, r.data_key_id, t)),
        attachments: attachments.remove(&r.id).unwrap_or_default(),
        created_at: r.created_at,
        edited_at: r.edited_at,
        deleted_at: r.deleted_at,
        cursor: Cursor(r.seq).encode(),
    }
}

/// The views of `rows`, decrypted: one unwrap per data key, one query for authors, one for
/// attachments.
fn message_views(
    conn: &mut PgConnection,
    ring: &crate::crypto::keyring::KeyRing,
    rows: Vec<MessageRow>,
) -> Result<Vec<MessageView>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attachment_rows = store::attachments_of(conn, &ids)?;
    let mut key_ids: Vec<Uuid> = rows.iter().map(|r| r.data_key_id).collect();
    key_ids.extend(attachment_rows.iter().map(|a| a.data_key_id));
    let keys = data_keys::open(conn, ring, &key_ids)?;
    let mut authors: Vec<Uuid> = rows.iter().map(|r| r.author_id).collect();
    authors.sort_unstable();
    authors.dedup();
    let names: HashMap<Uuid, String> = crate::users::store::usernames(conn, &authors)?
        .into_iter()
        .collect();
    let mut by_message: HashMap<Uuid, Vec<AttachmentView>> = HashMap::new();
    for a in attachment_rows {
        by_message
            .entry(a.message_id)
            .or_default()
            .push(attachment_view(&keys, &a));
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let username = names.get(&r.author_id).cloned().unwrap_or_default();
            message_view(&keys, &mut by_message, r, username)
        })
        .collect())
}

fn attachment_view(keys: &OpenKeys, a: &AttachmentRow) -> AttachmentView {
    AttachmentView {
        id: a.id,
        name: open_text(keys, a.data_key_id, &a.name_ciphertext),
        content_type: AttachmentType::parse(&a.content_type)
            .map_or("application/octet-stream", |t| t.mime())
            .to_string(),
        size: a.size,
    }
}

/// The author's message, locked, checked to be changeable now.
fn changeable(
    conn: &mut PgConnection,
    settings: &ConversationSettings,
    conversation_id: Uuid,
    message_id: Uuid,
    user_id: Uuid,
    at: OffsetDateTime,
) -> Result<MessageRow> {
    let row = store::message_for_member(conn, conversation_id, message_id, user_id)?
        .ok_or(ConversationError::NotFound)?;
    if row.author_id != user_id {
        return Err(ConversationError::NotAuthor);
    }
    if row.deleted_at.is_some() {
        return Err(ConversationError::Locked("was deleted"));
    }
    if at - row.created_at > settings.edit_window {
        return Err(ConversationError::Locked(
            "can no longer be changed: the edit window has closed",
        ));
    }
    Ok(row)
}

/// Replaces the text of the caller's own message, within the edit window.
pub async fn edit(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    message_id: Uuid,
    body: &str,
) -> Result<MessageView, AppError> {
    let text = MessageText::parse("body", body).map_err(|e| AppError::Validation(vec![e]))?;
    let settings = state.settings.conversations.clone();
    let ring = state.keyring.clone();
    let user_id = principal.user_id;
    let at = now(state);
    let view = in_tx(state, move |conn| {
        changeable(conn, &settings, conversation_id, message_id, user_id, at)?;
        if store::blocked_by_a_member(conn, conversation_id, user_id)? {
            return Err(ConversationError::Blocked);
        }
        let (key_id, key) = data_keys::for_writing(conn, &ring, user_id, at)?;
        store::update_body(
            conn,
            message_id,
            key_id,
            &key.encrypt(text.as_str().as_bytes()),
            at,
        )?;
        let row = store::message_for_member(conn, conversation_id, message_id, user_id)?
            .ok_or(ConversationError::NotFound)?;
        message_views(conn, &ring, vec![row])?
            .pop()
            .ok_or(ConversationError::NotFound)
    })
    .await?;
    publish(
        state,
        LiveEvent::new(EventKind::MessageEdited, conversation_id).message(message_id),
    );
    Ok(view)
}

/// Deletes the caller's own message (content and attachments), within the edit window.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<(), AppError> {
    let settings = state.settings.conversations.clone();
    let user_id = principal.user_id;
    let at = now(state);
    in_tx(state, move |conn| {
        changeable(conn, &settings, conversation_id, message_id, user_id, at)?;
        store::soft_delete(conn, message_id, at)?;
        Ok(())
    })
    .await?;
    publish(
        state,
        LiveEvent::new(EventKind::MessageDeleted, conversation_id).message(message_id),
    );
    Ok(())
}

/// Moves the caller's read marker to `up_to` (a message cursor); returns the marker's cursor and
/// what is still unread.
pub async fn mark_read(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    up_to: Cursor,
) -> Result<(String, i64), AppError> {
    let user_id = principal.user_id;
    let (marker, unread) = in_tx(state, move |conn| {
        let marker = store::mark_read(conn, conversation_id, user_id, up_to.0)?
            .ok_or(ConversationError::NotFound)?;
        let unread = store::unread_count(conn, conversation_id, user_id, marker)?;
        Ok((marker, unread))
    })
    .await?;
    publish(
        state,
        LiveEvent::new(EventKind::Read, conversation_id)
            .user(user_id)
            .seq(marker),
    );
    Ok((Cursor(marker.max(1)).encode(), unread))
}

/// Takes the caller out of the conversation; it is deleted when nobody is left.
pub async fn leave(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
) -> Result<(), AppError> {
    let user_id = principal.user_id;
    in_tx(state, move |conn| {
        if store::leave(conn, conversation_id, user_id)? {
            Ok(())
        } else {
            Err(ConversationError::NotFound)
        }
    })
    .await?;
    publish(
        state,
        LiveEvent::new(EventKind::MemberLeft, conversation_id).user(user_id),
    );
    Ok(())
}

/// Account erasure, inside the caller's transaction: drops every block the user made or received.
/// Memberships, messages and attachments stay as ciphertext under the user's (destroyed) data
/// key, so other members keep their history and see the user as `[deleted user]` and their
/// content as `[message unavailable]`. Returns the blocks dropped.
pub fn forget_user_in_tx(conn: &mut PgConnection, user_id: Uuid) -> Result<usize, AppError> {
    Ok(store::delete_blocks_of(conn, user_id)?)
}

/// A user the caller has blocked.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BlockView {
    pub id: Uuid,
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Blocks `username` for the caller (idempotent: blocking again changes nothing); `true` when
/// the block is new, which is audited.
pub async fn block(
    state: &AppState,
    principal: &Principal,
    username: String,
    meta: RequestMeta,
) -> Result<(BlockView, bool), AppError> {
    let user_id = principal.user_id;
    let actor = principal.actor();
    let auditor = state.auditor.clone();
    let at = now(state);
    Ok(in_tx(state, move |conn| {
        let target = crate::users::store::find_by_username(conn, &username)?
            .filter(|u| u.id != user_id)
            .ok_or(ConversationError::NotFound)?;
        let new = store::block(conn, user_id, target.id, at)?;
        let since = store::blocked_since(conn, user_id, target.id)?.unwrap_or(at);
        if new {
            auditor.record(
                conn,
                &meta,
                Event::new(Action::UserBlocked, Outcome::Success, actor).target("user", target.id),
            )?;
        }
        Ok((
            BlockView {
                id: target.id,
                username: target.username,
                created_at: since,
            },
            new,
        ))
    })
    .await?)
}

/// Lifts the caller's block of `username`.
pub async fn unblock(
    state: &AppState,
    principal: &Principal,
    username: String,
    meta: RequestMeta,
) -> Result<(), AppError> {
    let user_id = principal.user_id;
    let actor = principal.actor();
    let auditor = state.auditor.clone();
    Ok(in_tx(state, move |conn| {
        let target = crate::users::store::find_by_username(conn, &username)?
            .ok_or(ConversationError::NotFound)?;
        if !store::unblock(conn, user_id, target.id)? {
            return Err(ConversationError::NotFound);
        }
        auditor.record(
            conn,
            &meta,
            Event::new(Action::UserUnblocked, Outcome::Success, actor).target("user", target.id),
        )?;
        Ok(())
    })
    .await?)
}

/// The users `user_id` has blocked, inside the caller's connection (their data export).
pub fn blocks_of(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<BlockView>, AppError> {
    Ok(store::blocks_of(conn, user_id)?
        .into_iter()
        .map(|(id, username, created_at)| BlockView {
            id,
            username: display_username(username),
            created_at,
        })
        .collect())
}

/// The users the caller has blocked.
pub async fn blocks(state: &AppState, principal: &Principal) -> Result<Vec<BlockView>, AppError> {
    let user_id = principal.user_id;
    Ok(in_tx(state, move |conn| Ok(blocks_of(conn, user_id)?)).await?)
}

/// An attachment being downloaded: its description, and its plaintext chunk by chunk.
pub struct Download {
    pub name: String,
    pub kind: AttachmentType,
    pub size: i64,
    /// The chunks, decrypted one at a time as the client reads (each a short pooled query).
    pub body: futures_util::stream::BoxStream<'static, Result<Bytes, AppError>>,
}

/// An attachment of a conversation of the caller's, streamed.
pub async fn download(
    state: &AppState,
    principal: &Principal,
    conversation_id: Uuid,
    attachment_id: Uuid,
) -> Result<Download, AppError> {
    let ring = state.keyring.clone();
    let user_id = principal.user_id;
    let (row, key) = in_tx(state, move |conn| {
        let row = store::attachment_for_member(conn, conversation_id, attachment_id, user_id)?
            .ok_or(ConversationError::NotFound)?;
        let keys = data_keys::open(conn, &ring, &[row.data_key_id])?;
        let key = keys.take(row.data_key_id);
        Ok((row, key))
    })
    .await?;
    let kind = AttachmentType::parse(&row.content_type).ok_or(ConversationError::NotFound)?;
    // A file whose key is gone has no content to give: 404, like any unavailable attachment.
    let key = Arc::new(key.ok_or(ConversationError::NotFound)?);
    // The stored name, with the sniffed type's extension when its own says otherwise
    // (`page.html` → `page.html.png`): a saved file never opens as something else.
    let name = key
        .decrypt(&row.name_ciphertext)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|n| attachment::validate_name(&n).ok())
        .map_or_else(
            || format!("attachment.{}", kind.as_str()),
            |n| n.for_download(kind),
        );
    let pool = state.pool.clone();
    let chunks = row.chunks;
    let body = futures_util::stream::unfold(0i32, move |seq| {
        let pool = pool.clone();
        let key = key.clone();
        async move {
            if seq >= chunks {
                return None;
            }
            let chunk = pool
                .run(move |conn| {
                    let token = store::chunk(conn, attachment_id, seq)?.ok_or_else(|| {
                        AppError::internal(anyhow::anyhow!("attachment chunk {seq} missing"))
                    })?;
                    key.decrypt(&token)
                        .map(Bytes::from)
                        .map_err(|e| AppError::internal(anyhow::anyhow!("attachment chunk: {e}")))
                })
                .await;
            Some((chunk, seq + 1))
        }
    });
    Ok(Download {
        name,
        kind,
        size: row.size,
        body: Box::pin(body),
    })
}

/// The console's figures for a user (counts only: the console never decrypts).
pub fn usage_stats(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<UsageStats> {
    let (conversations, messages, attachments, attachment_bytes) = store::usage(conn, user_id)?;
    Ok(UsageStats {
        conversations,
        messages,
        attachments,
        attachment_bytes,
    })
}

/// Rows deleted per retention batch.
pub const PRUNE_BATCH: i64 = 1000;

/// Deletes messages (and their attachments) older than MESSAGE_RETENTION_DAYS, in batches of
/// [`PRUNE_BATCH`], each its own transaction with its `message.pruned` audit record (the count).
/// Nothing when retention is off. Returns the number deleted.
pub fn prune(
    conn: &mut PgConnection,
    auditor: &crate::audit::Auditor,
    settings: &ConversationSettings,
    now: OffsetDateTime,
    actor: Actor,
) -> Result<usize, AppError> {
    let Some(days) = settings.retention_days else {
        return Ok(0);
    };
    let cutoff = now - time::Duration::days(i64::from(days));
    let mut total = 0usize;
    loop {
        // Each batch and its audit record commit together: the log counts exactly what went.
        let deleted = conn.transaction::<_, AppError, _>(|conn| {
            let deleted = store::prune_batch(conn, cutoff, PRUNE_BATCH)?;
            if deleted > 0 {
                auditor.record(
                    conn,
                    &RequestMeta::default(),
                    Event::new(Action::MessagePruned, Outcome::Success, actor.clone()).metadata(
                        json!({
                            "deleted": deleted,
                            "before": crate::clock::rfc3339(cutoff),
                            "retention_days": days,
                        }),
                    ),
                )?;
            }
            Ok(deleted)
        })?;
        total += deleted;
        if deleted < usize::try_from(PRUNE_BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(total)
}

/// How often a running service applies message retention.
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Applies retention now and every [`PRUNE_INTERVAL`] (only when MESSAGE_RETENTION_DAYS is set).
pub fn spawn_pruner(
    pool: crate::db::Pool,
    auditor: crate::audit::Auditor,
    settings: ConversationSettings,
) {
    if settings.retention_days.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            interval.tick().await;
            let auditor = auditor.clone();
            let settings = settings.clone();
            let result = pool
                .run(move |conn| {
                    prune(
                        conn,
                        &auditor,
                        &settings,
                        OffsetDateTime::now_utc(),
                        Actor::system(),
                    )
                })
                .await;
            match result {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "messages pruned (retention)"),
                Err(error) => tracing::warn!(error = %error, "message retention not applied"),
            }
        }
    });
}
