//! Diesel queries for `email_outbox`, `email_tokens` and `known_devices`.

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{NewOutbox, OutboxRow, TokenRow};
use crate::db::schema::{email_outbox, email_tokens, known_devices};

pub fn insert(conn: &mut PgConnection, row: &NewOutbox<'_>) -> QueryResult<usize> {
    diesel::insert_into(email_outbox::table)
        .values(row)
        .execute(conn)
}

/// Due pending rows, oldest first, locked for this transaction; rows another sender holds are
/// skipped (never waited for, never sent twice).
pub fn claim_due(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    email_outbox::table
        .filter(email_outbox::status.eq("pending"))
        .filter(email_outbox::next_attempt_at.le(now))
        .order(email_outbox::next_attempt_at.asc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
}

/// Delivered: the bodies (which may hold a one-time link) are emptied.
pub fn mark_sent(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<usize> {
    diesel::update(email_outbox::table.find(id))
        .set((
            email_outbox::status.eq("sent"),
            email_outbox::sent_at.eq(now),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::text_body.eq(""),
            email_outbox::html_body.eq(""),
            email_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// A failed try: again at `next`, or `failed` for good when `next` is `None`.
pub fn mark_attempt_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    next: Option<OffsetDateTime>,
) -> QueryResult<usize> {
    let target = email_outbox::table.find(id);
    match next {
        Some(next) => diesel::update(target)
            .set((
                email_outbox::attempts.eq(email_outbox::attempts + 1),
                email_outbox::next_attempt_at.eq(next),
                email_outbox::last_error.eq(error),
            ))
            .execute(conn),
        None => diesel::update(target)
            .set((
                email_outbox::attempts.eq(email_outbox::attempts + 1),
                email_outbox::status.eq("failed"),
                email_outbox::last_error.eq(error),
            ))
            .execute(conn),
    }
}

/// Pending and failed rows (the console's page), newest first, before `before`.
pub fn list_open(
    conn: &mut PgConnection,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let mut query = email_outbox::table
        .filter(email_outbox::status.ne("sent"))
        .select(OutboxRow::as_select())
        .order(email_outbox::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(email_outbox::status.eq(status.to_string()));
    }
    if let Some(before) = before {
        query = query.filter(email_outbox::id.lt(before));
    }
    query.load(conn)
}

/// A failed mail goes back to the queue, due now. False unless it was `failed`.
pub fn retry(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<bool> {
    Ok(diesel::update(
        email_outbox::table
            .find(id)
            .filter(email_outbox::status.eq("failed")),
    )
    .set((
        email_outbox::status.eq("pending"),
        email_outbox::next_attempt_at.eq(now),
    ))
    .execute(conn)?
        == 1)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<OutboxRow>> {
    email_outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()
}

/// (pending, failed) counts.
pub fn open_counts(conn: &mut PgConnection) -> QueryResult<(i64, i64)> {
    let pending = email_outbox::table
        .filter(email_outbox::status.eq("pending"))
        .count()
        .get_result(conn)?;
    let failed = email_outbox::table
        .filter(email_outbox::status.eq("failed"))
        .count()
        .get_result(conn)?;
    Ok((pending, failed))
}

/// Erasure: every mail to or about the user goes.
pub fn delete_for_user(conn: &mut PgConnection, user_id: Uuid, email: &str) -> QueryResult<usize> {
    diesel::delete(
        email_outbox::table.filter(
            email_outbox::user_id
                .eq(user_id)
                .or(email_outbox::recipient.eq(email)),
        ),
    )
    .execute(conn)
}

// --- one-time link tokens -------------------------------------------------------------------------

/// Erasure: every link token of the user (they hold addresses).
pub fn delete_tokens(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(email_tokens::table.filter(email_tokens::user_id.eq(user_id))).execute(conn)
}

pub fn insert_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
    purpose: &str,
    email: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::token_hash.eq(token_hash),
            email_tokens::user_id.eq(user_id),
            email_tokens::purpose.eq(purpose),
            email_tokens::email.eq(email),
            email_tokens::created_at.eq(now),
            email_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

/// Spends an unused, unexpired token of `purpose`: its row, for exactly one caller.
pub fn spend_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purpose: &str,
    now: OffsetDateTime,
) -> QueryResult<Option<TokenRow>> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::token_hash.eq(token_hash))
            .filter(email_tokens::purpose.eq(purpose))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(now)),
    )
    .set(email_tokens::used_at.eq(now))
    .returning(TokenRow::as_returning())
    .get_result(conn)
    .optional()
}

/// The unused, unexpired token of `purpose` (read only).
pub fn find_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purpose: &str,
    now: OffsetDateTime,
) -> QueryResult<Option<TokenRow>> {
    email_tokens::table
        .filter(email_tokens::token_hash.eq(token_hash))
        .filter(email_tokens::purpose.eq(purpose))
        .filter(email_tokens::used_at.is_null())
        .filter(email_tokens::expires_at.gt(now))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

/// Ends every unused token of `purpose` for the user (a reset completed, an address changed).
pub fn spend_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(purpose))
            .filter(email_tokens::used_at.is_null()),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)
}

/// Tokens of `purpose` issued for `email` since `since` (the per-address limit).
pub fn issued_since(
    conn: &mut PgConnection,
    email: &str,
    purpose: &str,
    since: OffsetDateTime,
) -> QueryResult<i64> {
    email_tokens::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                .bind::<diesel::sql_types::Text, _>(email.to_lowercase()),
        )
        .filter(email_tokens::purpose.eq(purpose))
        .filter(email_tokens::created_at.gt(since))
        .count()
        .get_result(conn)
}

// --- known devices --------------------------------------------------------------------------------

/// Records a sign-in from (`agent`, `network`): whether the user had any device on record, and
/// whether this one was seen since `since`.
pub fn saw_device(
    conn: &mut PgConnection,
    user_id: Uuid,
    agent: &str,
    network: &str,
    now: OffsetDateTime,
    since: OffsetDateTime,
) -> QueryResult<(bool, bool)> {
    let any: bool = diesel::select(diesel::dsl::exists(
        known_devices::table.filter(known_devices::user_id.eq(user_id)),
    ))
    .get_result(conn)?;
    let recent: bool = diesel::select(diesel::dsl::exists(
        known_devices::table
            .filter(known_devices::user_id.eq(user_id))
            .filter(known_devices::agent.eq(agent))
            .filter(known_devices::network.eq(network))
            .filter(known_devices::last_seen_at.gt(since)),
    ))
    .get_result(conn)?;
    diesel::insert_into(known_devices::table)
        .values((
            known_devices::user_id.eq(user_id),
            known_devices::agent.eq(agent),
            known_devices::network.eq(network),
            known_devices::first_seen_at.eq(now),
            known_devices::last_seen_at.eq(now),
        ))
        .on_conflict((
            known_devices::user_id,
            known_devices::agent,
            known_devices::network,
        ))
        .do_update()
        .set(known_devices::last_seen_at.eq(now))
        .execute(conn)?;
    Ok((any, recent))
}
