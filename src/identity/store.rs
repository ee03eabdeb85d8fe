//! Diesel queries on `user_identities`. `QueryResult` only; no policy.

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Identity, NewIdentity};
use crate::db::schema::user_identities;

pub fn find(conn: &mut PgConnection, issuer: &str, subject: &str) -> QueryResult<Option<Identity>> {
    user_identities::table
        .filter(user_identities::issuer.eq(issuer))
        .filter(user_identities::subject.eq(subject))
        .select(Identity::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, row: &NewIdentity<'_>) -> QueryResult<Identity> {
    diesel::insert_into(user_identities::table)
        .values(row)
        .returning(Identity::as_returning())
        .get_result(conn)
}

pub fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    email: Option<&str>,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(user_identities::table.find(id))
        .set((
            user_identities::email.eq(email),
            user_identities::last_seen_at.eq(now),
        ))
        .execute(conn)
}

pub fn of_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<Identity>> {
    user_identities::table
        .filter(user_identities::user_id.eq(user_id))
        .order(user_identities::created_at.asc())
        .select(Identity::as_select())
        .load(conn)
}

/// Deletes the identity if it belongs to `user_id`; returns the rows deleted.
pub fn delete(conn: &mut PgConnection, id: Uuid, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(
        user_identities::table
            .filter(user_identities::id.eq(id))
            .filter(user_identities::user_id.eq(user_id)),
    )
    .execute(conn)
}

/// Deletes every identity of the user; returns the rows deleted.
pub fn delete_all_of_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::delete(user_identities::table.filter(user_identities::user_id.eq(user_id)))
        .execute(conn)
}

/// Which of `ids` are identities still linked to an active user.
pub fn active_among(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    use crate::db::schema::users;
    user_identities::table
        .inner_join(users::table)
        .filter(user_identities::id.eq_any(ids))
        .filter(users::active.eq(true))
        .select(user_identities::id)
        .load(conn)
}

/// The identity and its user, in one query (the per-request lookup of a provider token).
pub fn find_with_user(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
) -> QueryResult<Option<(Identity, crate::users::User)>> {
    use crate::db::schema::users;
    user_identities::table
        .inner_join(users::table)
        .filter(user_identities::issuer.eq(issuer))
        .filter(user_identities::subject.eq(subject))
        .select((Identity::as_select(), crate::users::User::as_select()))
        .first(conn)
        .optional()
}

/// Records a sighting at most once a minute (a provider token on every request must not mean a
/// write on every request).
pub fn touch_if_stale(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(
        user_identities::table
            .filter(user_identities::id.eq(id))
            .filter(user_identities::last_seen_at.lt(now - time::Duration::minutes(1))),
    )
    .set(user_identities::last_seen_at.eq(now))
    .execute(conn)
}

pub fn provider_of(conn: &mut PgConnection, id: Uuid) -> QueryResult<String> {
    user_identities::table
        .find(id)
        .select(user_identities::provider)
        .first(conn)
}

pub fn get(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Identity>> {
    user_identities::table
        .find(id)
        .select(Identity::as_select())
        .first(conn)
        .optional()
}
