//! Diesel queries on `users`. Returns `QueryResult`; no policy here.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{NewUser, User};
use crate::db::schema::users;

pub fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(user)
        .returning(User::as_returning())
        .get_result(conn)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// By lower-case email, or by username case-insensitively (uses the `lower(username)` index).
pub fn find_by_login(conn: &mut PgConnection, login: &str) -> QueryResult<Option<User>> {
    let lowered = login.to_lowercase();
    let query = users::table.select(User::as_select());
    if lowered.contains('@') {
        query
            .filter(users::email.eq(lowered))
            .first(conn)
            .optional()
    } else {
        query
            .filter(sql::<Bool>("lower(username) = ").bind::<Text, _>(lowered))
            .first(conn)
            .optional()
    }
}

pub fn username_taken(conn: &mut PgConnection, username: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.filter(
        sql::<Bool>("lower(username) = ").bind::<Text, _>(username.to_lowercase()),
    )))
    .get_result(conn)
}

pub fn email_taken(conn: &mut PgConnection, email: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::email.eq(email)),
    ))
    .get_result(conn)
}

/// Counts one more failed login under a row lock and returns the new count.
pub fn increment_failures(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<i32> {
    diesel::update(users::table.find(id))
        .set((
            users::failed_logins.eq(users::failed_logins + 1),
            users::updated_at.eq(now),
        ))
        .returning(users::failed_logins)
        .get_result(conn)
}

pub fn set_locked_until(
    conn: &mut PgConnection,
    id: Uuid,
    until: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::locked_until.eq(Some(until)))
        .execute(conn)
}

/// After a successful login: clear the lockout state, and store an upgraded hash if there is one.
pub fn record_success(
    conn: &mut PgConnection,
    id: Uuid,
    new_hash: Option<&str>,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    let target = users::table.find(id);
    match new_hash {
        Some(hash) => diesel::update(target)
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<OffsetDateTime>),
                users::password_hash.eq(hash),
                users::updated_at.eq(now),
            ))
            .execute(conn),
        None => diesel::update(target)
            .set((
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<OffsetDateTime>),
            ))
            .execute(conn),
    }
}

pub fn set_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn set_display_name(
    conn: &mut PgConnection,
    id: Uuid,
    display_name: Option<&str>,
    now: OffsetDateTime,
) -> QueryResult<User> {
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::updated_at.eq(now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
}

pub fn set_active(
    conn: &mut PgConnection,
    id: Uuid,
    active: bool,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::active.eq(active), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn any_admin(conn: &mut PgConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::role.eq("admin")),
    ))
    .get_result(conn)
}
