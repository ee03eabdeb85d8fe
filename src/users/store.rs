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

/// Reserves one password verification against the lockout budget: counts it as a failure *before*
/// the hash is checked, unless the account is locked at `now`. One conditional UPDATE, so the row
/// lock serialises concurrent attempts and each sees the count (and lock) the previous one left.
/// Returns the new failure count, or `None` when the account is locked.
pub fn reserve_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<Option<i32>> {
    diesel::update(
        users::table.find(id).filter(
            users::locked_until
                .is_null()
                .or(users::locked_until.le(now)),
        ),
    )
    .set((
        users::failed_logins.eq(users::failed_logins + 1),
        users::updated_at.eq(now),
    ))
    .returning(users::failed_logins)
    .get_result(conn)
    .optional()
}

/// Gives back a reservation whose verification never ran to a verdict (hashing busy, a database
/// error): one failure less, and the lock it set (if any) lifted.
pub fn release_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    lock_it_set: Option<OffsetDateTime>,
) -> QueryResult<usize> {
    let target = users::table.find(id);
    match lock_it_set {
        Some(until) => diesel::update(target)
            .set((
                users::failed_logins.eq(sql::<diesel::sql_types::Integer>(
                    "greatest(failed_logins - 1, 0)",
                )),
                users::locked_until.eq(sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                >("CASE WHEN locked_until = ")
                .bind::<diesel::sql_types::Timestamptz, _>(until)
                .sql(" THEN NULL ELSE locked_until END")),
            ))
            .execute(conn),
        None => diesel::update(target)
            .set(users::failed_logins.eq(sql::<diesel::sql_types::Integer>(
                "greatest(failed_logins - 1, 0)",
            )))
            .execute(conn),
    }
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

/// The end of the account's current lock, if any (for `Retry-After`).
pub fn locked_until(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<OffsetDateTime>> {
    users::table
        .find(id)
        .select(users::locked_until)
        .first(conn)
        .optional()
        .map(Option::flatten)
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

/// Replaces the password hash only if it is still `expected` (compare-and-set: of two changes
/// racing with the same current password, the second finds the hash changed and updates nothing).
/// Clears the lockout state too: the current password was just proven. Returns the rows updated.
/// Stores a stronger hash of the password that was just verified (bcrypt or weak argon2 → the
/// configured argon2id) without touching the lockout state.
pub fn upgrade_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn replace_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    expected: &str,
    hash: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(expected)),
    )
    .set((
        users::password_hash.eq(hash),
        users::failed_logins.eq(0),
        users::locked_until.eq(None::<OffsetDateTime>),
        users::updated_at.eq(now),
    ))
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

pub fn set_email(
    conn: &mut PgConnection,
    id: Uuid,
    email: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::email.eq(email), users::updated_at.eq(now)))
        .execute(conn)
}

/// The owner of the address proved it.
pub fn set_email_verified(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
        .execute(conn)
}

/// Whether another account than `id` holds `email` (case-insensitively).
pub fn email_taken_by_other(conn: &mut PgConnection, email: &str, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::email.eq(email.to_lowercase()))
            .filter(users::id.ne(id)),
    ))
    .get_result(conn)
}

pub fn set_username(
    conn: &mut PgConnection,
    id: Uuid,
    username: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::username.eq(username), users::updated_at.eq(now)))
        .execute(conn)
}

/// Replaces everything that names the person with a tombstone (account erasure): username
/// `deleted-<12 hex>`, email `deleted-<12 hex>@erased.invalid`, no password, display name,
/// lockout state or admin grant; `erased_at` set. Only a row not yet erased changes; returns
/// whether it did.
pub fn tombstone(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<bool> {
    use super::model::{TOMBSTONE_EMAIL_DOMAIN, Username};
    let name = Username::tombstone(id);
    diesel::update(users::table.find(id).filter(users::erased_at.is_null()))
        .set((
            users::username.eq(&name),
            users::email.eq(format!("{name}@{TOMBSTONE_EMAIL_DOMAIN}")),
            users::password_hash.eq(None::<String>),
            users::display_name.eq(None::<String>),
            users::active.eq(false),
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<OffsetDateTime>),
            users::admin_granted_by.eq(None::<String>),
            users::erased_at.eq(Some(now)),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n > 0)
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

/// Filters of the admin user list (all optional; keyset on the time-ordered id, newest first).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Username or email prefix, matched case-insensitively.
    pub prefix: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    /// Locked at `now` (Some(true)) or not (Some(false)).
    pub locked_at: Option<(bool, OffsetDateTime)>,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
}

/// `%`, `_` and `\` taken literally in a LIKE pattern.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Up to `limit` users matching `query`: newest first, or (with `after`) the oldest newer ones.
pub fn list(conn: &mut PgConnection, query: &UserQuery, limit: i64) -> QueryResult<Vec<User>> {
    let mut q = users::table.select(User::as_select()).into_boxed();
    if let Some(prefix) = &query.prefix {
        let pattern = like_prefix(&prefix.to_lowercase());
        q = q.filter(
            sql::<Bool>("(lower(username) LIKE ")
                .bind::<Text, _>(pattern.clone())
                .sql(" ESCAPE '\\' OR email LIKE ")
                .bind::<Text, _>(pattern)
                .sql(" ESCAPE '\\')"),
        );
    }
    if let Some(role) = &query.role {
        q = q.filter(users::role.eq(role.clone()));
    }
    if let Some(active) = query.active {
        q = q.filter(users::active.eq(active));
    }
    match query.locked_at {
        Some((true, now)) => q = q.filter(users::locked_until.gt(now)),
        Some((false, now)) => {
            q = q.filter(
                users::locked_until
                    .is_null()
                    .or(users::locked_until.le(now)),
            )
        }
        None => {}
    }
    if let Some(before) = query.before {
        q = q.filter(users::id.lt(before));
    }
    if let Some(after) = query.after {
        q.filter(users::id.gt(after))
            .order(users::id.asc())
            .limit(limit)
            .load(conn)
    } else {
        q.order(users::id.desc()).limit(limit).load(conn)
    }
}

/// One user, row-locked for an admin change.
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .for_update()
        .first(conn)
        .optional()
}

pub fn set_role(
    conn: &mut PgConnection,
    id: Uuid,
    role: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    // An admin made by another admin gets no grant (and one already an admin keeps theirs);
    // leaving the admin role drops any grant.
    let target = users::table.find(id);
    if role == "admin" {
        diesel::update(target)
            .set((users::role.eq(role), users::updated_at.eq(now)))
            .execute(conn)
    } else {
        diesel::update(target)
            .set((
                users::role.eq(role),
                users::admin_granted_by.eq(None::<String>),
                users::updated_at.eq(now),
            ))
            .execute(conn)
    }
}

/// Makes the user an admin, recording how (`users.admin_granted_by`).
pub fn promote_admin(
    conn: &mut PgConnection,
    id: Uuid,
    granted_by: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::role.eq("admin"),
            users::admin_granted_by.eq(Some(granted_by)),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Ends a lockout: no failures counted, not locked.
pub fn unlock(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<OffsetDateTime>),
            users::updated_at.eq(now),
        ))
        .execute(conn)
}

/// (all, active, disabled, locked at `now`) user counts.
pub fn counts(conn: &mut PgConnection, now: OffsetDateTime) -> QueryResult<(i64, i64, i64, i64)> {
    use diesel::dsl::count_star;
    let all: i64 = users::table.select(count_star()).first(conn)?;
    let active: i64 = users::table
        .filter(users::active.eq(true))
        .select(count_star())
        .first(conn)?;
    let locked: i64 = users::table
        .filter(users::locked_until.gt(now))
        .select(count_star())
        .first(conn)?;
    Ok((all, active, all - active, locked))
}

/// Usernames of the given ids (missing ids are left out).
pub fn usernames(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, String)>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::username))
        .load(conn)
}

/// A user by exact username (case-insensitive).
pub fn find_by_username(conn: &mut PgConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .select(User::as_select())
        .filter(sql::<Bool>("lower(username) = ").bind::<Text, _>(username.to_lowercase()))
        .first(conn)
        .optional()
}
