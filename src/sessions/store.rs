//! Diesel queries on `sessions` and `refresh_tokens`.

use diesel::dsl::sql;
use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{AdminSessionRow, NewAdminSession, NewSession, RefreshToken, Session};
use crate::db::schema::{admin_sessions, refresh_tokens, sessions, users};
use crate::users::User;

pub fn insert(conn: &mut PgConnection, session: &NewSession<'_>) -> QueryResult<Session> {
    diesel::insert_into(sessions::table)
        .values(session)
        .returning(Session::as_returning())
        .get_result(conn)
}

pub fn insert_refresh(
    conn: &mut PgConnection,
    hash: &[u8],
    session_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(hash),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::created_at.eq(now),
        ))
        .execute(conn)
}

/// The refresh token and its session, both row-locked so two racing refreshes serialise.
pub fn lock_refresh(
    conn: &mut PgConnection,
    hash: &[u8],
) -> QueryResult<Option<(RefreshToken, Session)>> {
    refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(hash))
        .select((RefreshToken::as_select(), Session::as_select()))
        .for_update()
        .first(conn)
        .optional()
}

pub fn spend_refresh(
    conn: &mut PgConnection,
    hash: &[u8],
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(refresh_tokens::table.find(hash))
        .set(refresh_tokens::spent_at.eq(Some(now)))
        .execute(conn)
}

pub fn touch(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)
}

/// What the per-request check needs from a session, and its user's row.
#[derive(Debug, Queryable)]
pub struct LiveCheck {
    pub revoked_at: Option<OffsetDateTime>,
    pub expires_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub aal: i16,
    pub authenticated_at: OffsetDateTime,
    pub user: User,
}

/// The per-request check: the session (by primary key) joined to its user (by primary key).
pub fn live_check(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
) -> QueryResult<Option<LiveCheck>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .filter(sessions::user_id.eq(user_id))
        .select((
            sessions::revoked_at,
            sessions::expires_at,
            sessions::last_used_at,
            sessions::aal,
            sessions::authenticated_at,
            User::as_select(),
        ))
        .first(conn)
        .optional()
}

/// Which of `ids` are live sessions of active users: not revoked, not expired, used since
/// `idle_since`.
pub fn live_among(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: OffsetDateTime,
    idle_since: OffsetDateTime,
) -> QueryResult<Vec<Uuid>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq_any(ids))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_used_at.gt(idle_since))
        .filter(users::active.eq(true))
        .select(sessions::id)
        .load(conn)
}

pub fn find_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Session>> {
    sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::user_id.eq(user_id))
        .select(Session::as_select())
        .first(conn)
        .optional()
}

/// Live sessions of a user (not revoked, within the absolute limit, used since `idle_since`),
/// newest first, keyset-paginated on the (time-ordered) v7 id.
pub fn list_live(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
    idle_since: OffsetDateTime,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Session>> {
    let mut query = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_used_at.gt(idle_since))
        .select(Session::as_select())
        .order(sessions::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(sessions::id.lt(before));
    }
    query.load(conn)
}

/// Every session of a user, revoked and expired ones included, newest first (at most `limit`).
pub fn all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(Session::as_select())
        .order(sessions::id.desc())
        .limit(limit)
        .load(conn)
}

pub fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Some(now)),
        sessions::revoked_reason.eq(Some(reason)),
    ))
    .execute(conn)
}

/// Revokes every live session of the user except `keep`; returns the ids revoked.
pub fn revoke_all_except(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: OffsetDateTime,
) -> QueryResult<Vec<Uuid>> {
    let keep = keep.unwrap_or(Uuid::nil());
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::id.ne(keep)),
    )
    .set((
        sessions::revoked_at.eq(Some(now)),
        sessions::revoked_reason.eq(Some(reason)),
    ))
    .returning(sessions::id)
    .get_results(conn)
}

/// Ends every console (admin) session of the user; returns how many there were. The console's
/// sign-in lives in `console`, but ending a user's sessions is one rule, decided here for every
/// kind of session (see `sessions::revoke_all_in_tx`).
pub fn delete_console_sessions(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::user_id.eq(user_id))).execute(conn)
}

/// Clears where the user's (already ended) sessions came from; returns the rows changed.
pub fn scrub_client_details(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)))
        .set((
            sessions::ip.eq(None::<String>),
            sessions::user_agent.eq(None::<String>),
        ))
        .execute(conn)
}

/// Live sessions of every user (or one), newest first, each with its user's name: not revoked,
/// within the absolute limit, and used since `idle_since`.
pub fn list_live_all(
    conn: &mut PgConnection,
    user: Option<Uuid>,
    now: OffsetDateTime,
    idle_since: OffsetDateTime,
    page: (Option<Uuid>, Option<Uuid>),
    limit: i64,
) -> QueryResult<Vec<(Session, String)>> {
    let (before, after) = page;
    let mut q = sessions::table
        .inner_join(users::table)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_used_at.gt(idle_since))
        .select((Session::as_select(), users::username))
        .into_boxed();
    if let Some(user) = user {
        q = q.filter(sessions::user_id.eq(user));
    }
    if let Some(before) = before {
        q = q.filter(sessions::id.lt(before));
    }
    if let Some(after) = after {
        q.filter(sessions::id.gt(after))
            .order(sessions::id.asc())
            .limit(limit)
            .load(conn)
    } else {
        q.order(sessions::id.desc()).limit(limit).load(conn)
    }
}

pub fn count_live(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    idle_since: OffsetDateTime,
) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_used_at.gt(idle_since))
        .count()
        .get_result(conn)
}

/// One session of any user, row-locked for an admin change.
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Session>> {
    sessions::table
        .find(id)
        .select(Session::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// One session with its user's name (admin views).
pub fn find_with_user(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<(Session, String)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id))
        .select((Session::as_select(), users::username))
        .first(conn)
        .optional()
}

// --- console (admin) sessions ------------------------------------------------------------------

pub fn insert_console(
    conn: &mut PgConnection,
    session: &NewAdminSession<'_>,
) -> QueryResult<usize> {
    diesel::insert_into(admin_sessions::table)
        .values(session)
        .execute(conn)
}

/// The console session with this token hash and its user (one indexed query).
pub fn find_console_with_user(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<(AdminSessionRow, User)>> {
    admin_sessions::table
        .inner_join(users::table)
        .filter(admin_sessions::token_hash.eq(token_hash))
        .select((AdminSessionRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

pub fn touch_console(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(admin_sessions::table.find(token_hash))
        .set(admin_sessions::last_seen_at.eq(now))
        .execute(conn)
}

/// Step-up on a live API session: the user proved who they are again at `now`; a second factor
/// (`aal` 2) raises the session's level, a password never lowers it. The level now; `None` when
/// the session is not the user's or was revoked.
pub fn reauthenticated(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    aal: i16,
    now: OffsetDateTime,
) -> QueryResult<Option<i16>> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::authenticated_at.eq(now),
        sessions::aal.eq(sql::<diesel::sql_types::SmallInt>("greatest(aal, ")
            .bind::<diesel::sql_types::SmallInt, _>(aal)
            .sql(")")),
    ))
    .returning(sessions::aal)
    .get_result(conn)
    .optional()
}

/// As [`reauthenticated`], for a console session.
pub fn console_reauthenticated(
    conn: &mut PgConnection,
    token_hash: &[u8],
    aal: i16,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(admin_sessions::table.find(token_hash))
        .set((
            admin_sessions::authenticated_at.eq(now),
            admin_sessions::aal.eq(sql::<diesel::sql_types::SmallInt>("greatest(aal, ")
                .bind::<diesel::sql_types::SmallInt, _>(aal)
                .sql(")")),
        ))
        .execute(conn)
}

pub fn delete_console(conn: &mut PgConnection, token_hash: &[u8]) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.find(token_hash)).execute(conn)
}
