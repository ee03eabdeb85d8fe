//! Diesel queries on `admin_sessions`. Returns `QueryResult`; no policy here.

use diesel::prelude::*;
use time::OffsetDateTime;

use super::model::{AdminSessionRow, NewAdminSession};
use crate::db::schema::{admin_sessions, users};
use crate::users::User;

pub fn insert(conn: &mut PgConnection, session: &NewAdminSession<'_>) -> QueryResult<usize> {
    diesel::insert_into(admin_sessions::table)
        .values(session)
        .execute(conn)
}

/// The session with this token hash and its user (one indexed query).
pub fn find_with_user(
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

pub fn touch(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(admin_sessions::table.find(token_hash))
        .set(admin_sessions::last_seen_at.eq(now))
        .execute(conn)
}

pub fn delete(conn: &mut PgConnection, token_hash: &[u8]) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.find(token_hash)).execute(conn)
}
