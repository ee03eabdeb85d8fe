//! Diesel queries on `conversations`, `conversation_members`, `messages`, `attachments`,
//! `attachment_chunks` and `user_blocks`. Every query that reads or changes a conversation's
//! content takes the caller's id and filters by membership in the same statement: a row of a
//! conversation the caller is not a member of is never read, so it cannot leak through a
//! forgotten check. Returns `QueryResult` only; no policy, no crypto.

use diesel::dsl::{count_star, exists, not};
use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::{
    attachment_chunks, attachments, conversation_members, conversations, messages, user_blocks,
    users,
};

/// A conversation row as stored (ciphertext, not yet opened).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    pub id: Uuid,
    pub kind: String,
    pub creator_id: Uuid,
    pub data_key_id: Uuid,
    pub title_ciphertext: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_activity_at: OffsetDateTime,
    pub last_seq: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub author_id: Uuid,
    pub data_key_id: Uuid,
    pub body_ciphertext: Option<String>,
    pub created_at: OffsetDateTime,
    pub edited_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = attachments)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub data_key_id: Uuid,
    pub name_ciphertext: String,
    pub content_type: String,
    pub size: i64,
    pub chunks: i32,
    pub position: i16,
    pub created_at: OffsetDateTime,
}

/// Whether `user_id` is a member of `conversation_id`.
pub fn is_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    diesel::select(exists(member)).get_result(conn)
}

pub fn insert_conversation(conn: &mut PgConnection, row: &ConversationRow) -> QueryResult<()> {
    diesel::insert_into(conversations::table)
        .values((
            conversations::id.eq(row.id),
            conversations::kind.eq(&row.kind),
            conversations::creator_id.eq(row.creator_id),
            conversations::data_key_id.eq(row.data_key_id),
            conversations::title_ciphertext.eq(&row.title_ciphertext),
            conversations::created_at.eq(row.created_at),
            conversations::last_activity_at.eq(row.last_activity_at),
            conversations::last_seq.eq(row.last_seq),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn insert_members(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_ids: &[Uuid],
    now: OffsetDateTime,
) -> QueryResult<()> {
    let rows: Vec<_> = user_ids
        .iter()
        .map(|u| {
            (
                conversation_members::conversation_id.eq(conversation_id),
                conversation_members::user_id.eq(*u),
                conversation_members::joined_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(conversation_members::table)
        .values(rows)
        .execute(conn)
        .map(|_| ())
}

/// The conversation, if `user_id` is a member.
pub fn find_for_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .inner_join(conversation_members::table)
        .filter(conversations::id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()
}

/// A user's data key as stored: (key id, master key id, wrap — `None` once destroyed).
pub type StoredKey = (Uuid, String, Option<String>);

/// The conversation, locked, if `user_id` is a member: takes its next message number under the
/// lock (`last_seq + 1`), moves its activity time, and reads the caller's stored data key in the
/// same statement (one round trip). The lock is held to commit, so messages of one conversation
/// are numbered in commit order. `None` when not a member; the key `None` when they have none yet.
pub fn next_seq_and_key_for_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<Option<(i64, Option<StoredKey>)>> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        last_seq: i64,
        #[diesel(sql_type = Nullable<SqlUuid>)]
        key_id: Option<Uuid>,
        #[diesel(sql_type = Nullable<Text>)]
        master_key_id: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        wrapped: Option<String>,
    }
    let row: Option<Row> = diesel::sql_query(
        "WITH k AS (SELECT id, master_key_id, wrapped FROM data_keys WHERE user_id = $2) \
         UPDATE conversations c SET last_seq = c.last_seq + 1, last_activity_at = $3 \
         WHERE c.id = $1 AND EXISTS (SELECT 1 FROM conversation_members m \
                                     WHERE m.conversation_id = $1 AND m.user_id = $2) \
         RETURNING c.last_seq, (SELECT id FROM k) AS key_id, \
                   (SELECT master_key_id FROM k) AS master_key_id, (SELECT wrapped FROM k) AS wrapped",
    )
    .bind::<SqlUuid, _>(conversation_id)
    .bind::<SqlUuid, _>(user_id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .optional()?;
    Ok(row.map(|r| {
        let key = match (r.key_id, r.master_key_id) {
            (Some(id), Some(master)) => Some((id, master, r.wrapped)),
            _ => None,
        };
        (r.last_seq, key)
    }))
}

/// A message row with its author's username and its data key's wrap (owner, master key id,
/// wrap), read in one query.
pub type MessageWithKey = (MessageRow, String, Option<(Uuid, String, Option<String>)>);

/// A page of a conversation's messages, if `user_id` is a member: `before` a sequence number
/// (newest first), `after` one (oldest first: the caller reverses), or the newest; `limit` rows,
/// each with its author's name and its data key's wrap — one round trip for what a page needs
/// besides its attachments.
pub fn messages_with_keys_for_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<MessageWithKey>> {
    use crate::db::schema::data_keys;
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    let mut query = messages::table
        .inner_join(users::table.on(users::id.eq(messages::author_id)))
        .left_join(data_keys::table.on(data_keys::id.eq(messages::data_key_id)))
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(exists(member))
        .select((
            MessageRow::as_select(),
            users::username,
            (
                data_keys::user_id,
                data_keys::master_key_id,
                data_keys::wrapped,
            )
                .nullable(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query
            .filter(messages::seq.gt(after))
            .order(messages::seq.asc());
    } else {
        if let Some(before) = before {
            query = query.filter(messages::seq.lt(before));
        }
        query = query.order(messages::seq.desc());
    }
    query.load::<MessageWithKey>(conn)
}

/// A page of the conversations `user_id` is a member of, by latest activity (newest first),
/// strictly after the `(last_activity_at, id)` position `after` in that order.
pub fn list_for_member(
    conn: &mut PgConnection,
    user_id: Uuid,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<(ConversationRow, i64)>> {
    let mut query = conversations::table
        .inner_join(conversation_members::table)
        .filter(conversation_members::user_id.eq(user_id))
        .select((
            ConversationRow::as_select(),
            conversation_members::last_read_seq,
        ))
        .order((
            conversations::last_activity_at.desc(),
            conversations::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            conversations::last_activity_at
                .lt(at)
                .or(conversations::last_activity_at
                    .eq(at)
                    .and(conversations::id.lt(id))),
        );
    }
    query.load(conn)
}

/// The caller's read marker in a conversation they are a member of.
pub fn read_marker(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<i64>> {
    conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id))
        .select(conversation_members::last_read_seq)
        .first(conn)
        .optional()
}

/// Messages after `seq` not written by `user_id` and not deleted: the unread count.
pub fn unread_count(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
    seq: i64,
) -> QueryResult<i64> {
    messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::seq.gt(seq))
        .filter(messages::author_id.ne(user_id))
        .filter(messages::deleted_at.is_null())
        .select(count_star())
        .get_result(conn)
}

/// Members of a conversation with their usernames, by join time.
pub fn members(conn: &mut PgConnection, conversation_id: Uuid) -> QueryResult<Vec<(Uuid, String)>> {
    conversation_members::table
        .inner_join(users::table)
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .select((users::id, users::username))
        .order((conversation_members::joined_at, users::id))
        .load(conn)
}

/// Moves the caller's read marker forward to `seq` (never back, never past the newest message);
/// the marker after the move, or `None` when the caller is not a member.
pub fn mark_read(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
    seq: i64,
) -> QueryResult<Option<i64>> {
    use diesel::sql_types::{BigInt, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Marker {
        #[diesel(sql_type = BigInt)]
        last_read_seq: i64,
    }
    diesel::sql_query(
        "UPDATE conversation_members m \
         SET last_read_seq = GREATEST(m.last_read_seq, LEAST($3, c.last_seq)) \
         FROM conversations c \
         WHERE c.id = m.conversation_id AND m.conversation_id = $1 AND m.user_id = $2 \
         RETURNING m.last_read_seq",
    )
    .bind::<SqlUuid, _>(conversation_id)
    .bind::<SqlUuid, _>(user_id)
    .bind::<BigInt, _>(seq)
    .get_result::<Marker>(conn)
    .optional()
    .map(|m| m.map(|m| m.last_read_seq))
}

/// Removes `user_id` from the conversation; deletes the conversation (and so its messages) when
/// nobody is left. `false` when they were not a member.
pub fn leave(conn: &mut PgConnection, conversation_id: Uuid, user_id: Uuid) -> QueryResult<bool> {
    let removed = diesel::delete(
        conversation_members::table
            .filter(conversation_members::conversation_id.eq(conversation_id))
            .filter(conversation_members::user_id.eq(user_id)),
    )
    .execute(conn)?;
    if removed == 0 {
        return Ok(false);
    }
    let anyone = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id));
    diesel::delete(
        conversations::table
            .filter(conversations::id.eq(conversation_id))
            .filter(not(exists(anyone))),
    )
    .execute(conn)?;
    Ok(true)
}

pub fn insert_message(conn: &mut PgConnection, row: &MessageRow) -> QueryResult<()> {
    diesel::insert_into(messages::table)
        .values((
            messages::id.eq(row.id),
            messages::conversation_id.eq(row.conversation_id),
            messages::seq.eq(row.seq),
            messages::author_id.eq(row.author_id),
            messages::data_key_id.eq(row.data_key_id),
            messages::body_ciphertext.eq(&row.body_ciphertext),
            messages::created_at.eq(row.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// One message, if `user_id` is a member of its conversation `conversation_id`.
pub fn message_for_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    message_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<MessageRow>> {
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    messages::table
        .filter(messages::id.eq(message_id))
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(exists(member))
        .select(MessageRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn update_body(
    conn: &mut PgConnection,
    message_id: Uuid,
    data_key_id: Uuid,
    ciphertext: &str,
    now: OffsetDateTime,
) -> QueryResult<()> {
    diesel::update(messages::table.find(message_id))
        .set((
            messages::body_ciphertext.eq(Some(ciphertext)),
            messages::data_key_id.eq(data_key_id),
            messages::edited_at.eq(Some(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Deletes a message's content and attachments; the message keeps its place in the list.
pub fn soft_delete(
    conn: &mut PgConnection,
    message_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<()> {
    diesel::delete(attachments::table.filter(attachments::message_id.eq(message_id)))
        .execute(conn)?;
    diesel::update(messages::table.find(message_id))
        .set((
            messages::body_ciphertext.eq(None::<String>),
            messages::deleted_at.eq(Some(now)),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn insert_attachment(conn: &mut PgConnection, row: &AttachmentRow) -> QueryResult<()> {
    diesel::insert_into(attachments::table)
        .values((
            attachments::id.eq(row.id),
            attachments::message_id.eq(row.message_id),
            attachments::conversation_id.eq(row.conversation_id),
            attachments::data_key_id.eq(row.data_key_id),
            attachments::name_ciphertext.eq(&row.name_ciphertext),
            attachments::content_type.eq(&row.content_type),
            attachments::size.eq(row.size),
            attachments::chunks.eq(row.chunks),
            attachments::position.eq(row.position),
            attachments::created_at.eq(row.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn insert_chunk(
    conn: &mut PgConnection,
    attachment_id: Uuid,
    seq: i32,
    ciphertext: &str,
) -> QueryResult<()> {
    diesel::insert_into(attachment_chunks::table)
        .values((
            attachment_chunks::attachment_id.eq(attachment_id),
            attachment_chunks::seq.eq(seq),
            attachment_chunks::ciphertext.eq(ciphertext),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The attachments of the given messages, in their order within each message.
pub fn attachments_of(
    conn: &mut PgConnection,
    message_ids: &[Uuid],
) -> QueryResult<Vec<AttachmentRow>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    attachments::table
        .filter(attachments::message_id.eq_any(message_ids))
        .select(AttachmentRow::as_select())
        .order((attachments::message_id, attachments::position))
        .load(conn)
}

/// One attachment, if `user_id` is a member of its conversation `conversation_id`.
pub fn attachment_for_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    attachment_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<AttachmentRow>> {
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    attachments::table
        .filter(attachments::id.eq(attachment_id))
        .filter(attachments::conversation_id.eq(conversation_id))
        .filter(exists(member))
        .select(AttachmentRow::as_select())
        .first(conn)
        .optional()
}

/// One chunk of an attachment's ciphertext.
pub fn chunk(
    conn: &mut PgConnection,
    attachment_id: Uuid,
    seq: i32,
) -> QueryResult<Option<String>> {
    attachment_chunks::table
        .filter(attachment_chunks::attachment_id.eq(attachment_id))
        .filter(attachment_chunks::seq.eq(seq))
        .select(attachment_chunks::ciphertext)
        .first(conn)
        .optional()
}

/// Whether any of `others` has blocked `user_id`, or `user_id` has blocked any of them.
pub fn blocked_between(
    conn: &mut PgConnection,
    user_id: Uuid,
    others: &[Uuid],
) -> QueryResult<bool> {
    diesel::select(exists(
        user_blocks::table.filter(
            user_blocks::blocker_id
                .eq(user_id)
                .and(user_blocks::blocked_id.eq_any(others))
                .or(user_blocks::blocked_id
                    .eq(user_id)
                    .and(user_blocks::blocker_id.eq_any(others))),
        ),
    ))
    .get_result(conn)
}

/// Whether any other member of the conversation has blocked `user_id`.
pub fn blocked_by_a_member(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    let members = conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation_id))
        .select(conversation_members::user_id);
    diesel::select(exists(
        user_blocks::table
            .filter(user_blocks::blocked_id.eq(user_id))
            .filter(user_blocks::blocker_id.eq_any(members)),
    ))
    .get_result(conn)
}

/// `true` when the block is new.
pub fn block(
    conn: &mut PgConnection,
    blocker: Uuid,
    blocked: Uuid,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    diesel::insert_into(user_blocks::table)
        .values((
            user_blocks::blocker_id.eq(blocker),
            user_blocks::blocked_id.eq(blocked),
            user_blocks::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n > 0)
}

/// When `blocker` blocked `blocked`, if they did.
pub fn blocked_since(
    conn: &mut PgConnection,
    blocker: Uuid,
    blocked: Uuid,
) -> QueryResult<Option<OffsetDateTime>> {
    user_blocks::table
        .filter(user_blocks::blocker_id.eq(blocker))
        .filter(user_blocks::blocked_id.eq(blocked))
        .select(user_blocks::created_at)
        .first(conn)
        .optional()
}

/// `true` when there was a block.
pub fn unblock(conn: &mut PgConnection, blocker: Uuid, blocked: Uuid) -> QueryResult<bool> {
    diesel::delete(
        user_blocks::table
            .filter(user_blocks::blocker_id.eq(blocker))
            .filter(user_blocks::blocked_id.eq(blocked)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Every block the user made or received; returns the rows deleted.
pub fn delete_blocks_of(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(
        user_blocks::table.filter(
            user_blocks::blocker_id
                .eq(user_id)
                .or(user_blocks::blocked_id.eq(user_id)),
        ),
    )
    .execute(conn)
}

/// The users `blocker` has blocked, with usernames, newest block first.
pub fn blocks_of(
    conn: &mut PgConnection,
    blocker: Uuid,
) -> QueryResult<Vec<(Uuid, String, OffsetDateTime)>> {
    user_blocks::table
        .inner_join(users::table.on(users::id.eq(user_blocks::blocked_id)))
        .filter(user_blocks::blocker_id.eq(blocker))
        .select((users::id, users::username, user_blocks::created_at))
        .order(user_blocks::created_at.desc())
        .load(conn)
}

/// Up to `limit` messages created before `cutoff` deleted (with their attachments); the number.
pub fn prune_batch(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let ids: Vec<Uuid> = messages::table
        .filter(messages::created_at.lt(cutoff))
        .select(messages::id)
        .order(messages::created_at)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(messages::table.filter(messages::id.eq_any(&ids))).execute(conn)
}

/// The console's figures for one user: conversations they are in, messages and attachments they
/// wrote, and the bytes of those attachments.
pub fn usage(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<(i64, i64, i64, i64)> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let conversations: i64 = conversation_members::table
        .filter(conversation_members::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    let messages: i64 = messages::table
        .filter(messages::author_id.eq(user_id))
        .filter(messages::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    let (attachments, bytes): (i64, i64) = attachments::table
        .inner_join(messages::table)
        .filter(messages::author_id.eq(user_id))
        .select((
            count_star(),
            sql::<BigInt>("COALESCE(SUM(attachments.size), 0)::bigint"),
        ))
        .get_result(conn)?;
    Ok((conversations, messages, attachments, bytes))
}

/// Up to `limit` conversations `user_id` is a member of, by id after `after` (the data export's
/// keyset pages), each with the caller's read marker.
pub fn member_conversations_after(
    conn: &mut PgConnection,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<(ConversationRow, i64)>> {
    let mut query = conversations::table
        .inner_join(conversation_members::table)
        .filter(conversation_members::user_id.eq(user_id))
        .select((
            ConversationRow::as_select(),
            conversation_members::last_read_seq,
        ))
        .order(conversations::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(conversations::id.gt(after));
    }
    query.load(conn)
}

/// Up to `limit` messages `user_id` wrote in conversations they are no longer a member of, by id
/// after `after`, with the same author name and key wrap as a page's rows.
pub fn authored_outside_membership(
    conn: &mut PgConnection,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<MessageWithKey>> {
    use crate::db::schema::data_keys;
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(messages::conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    let mut query = messages::table
        .inner_join(users::table.on(users::id.eq(messages::author_id)))
        .left_join(data_keys::table.on(data_keys::id.eq(messages::data_key_id)))
        .filter(messages::author_id.eq(user_id))
        .filter(not(exists(member)))
        .select((
            MessageRow::as_select(),
            users::username,
            (
                data_keys::user_id,
                data_keys::master_key_id,
                data_keys::wrapped,
            )
                .nullable(),
        ))
        .order(messages::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(messages::id.gt(after));
    }
    query.load::<MessageWithKey>(conn)
}

/// Up to `limit` attachments `user_id` may read — in a conversation they are a member of, or on
/// a message they wrote — by id after `after`.
pub fn attachments_visible_to(
    conn: &mut PgConnection,
    user_id: Uuid,
    after: Option<Uuid>,
    only: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<AttachmentRow>> {
    let member = conversation_members::table
        .filter(conversation_members::conversation_id.eq(attachments::conversation_id))
        .filter(conversation_members::user_id.eq(user_id));
    let authored = messages::table
        .filter(messages::id.eq(attachments::message_id))
        .filter(messages::author_id.eq(user_id));
    let mut query = attachments::table
        .filter(exists(member).or(exists(authored)))
        .select(AttachmentRow::as_select())
        .order(attachments::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(attachments::id.gt(after));
    }
    if let Some(only) = only {
        query = query.filter(attachments::id.eq(only));
    }
    query.load(conn)
}
