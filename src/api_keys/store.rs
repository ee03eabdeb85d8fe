//! Diesel queries on `api_keys`. Every query is filtered by owner except the two that cannot be:
//! the authentication lookup (by HMAC, through the unique index) and the admin revocation.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::prelude::*;
use diesel::sql_types::Integer;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{ApiKeyRow, NewApiKey};
use crate::db::schema::{api_keys, users};
use crate::users::User;

/// Authentication lookups issued since start. Tests read it to prove that malformed keys are
/// rejected without touching the database; it costs one relaxed atomic add per lookup.
pub static AUTH_LOOKUPS: AtomicU64 = AtomicU64::new(0);

/// Namespace of the per-user advisory lock that serialises key creation (so the live-key limit
/// holds under concurrent requests). Two-int form, whose key space never overlaps the one-bigint
/// locks used elsewhere (the audit chain).
const CREATE_LOCK_CLASS: i32 = 0x6170_6b79; // "apky"

pub fn insert(conn: &mut PgConnection, key: &NewApiKey<'_>) -> QueryResult<ApiKeyRow> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
}

/// What authentication needs: the key row and its owner's current role and state.
pub type AuthRow = (ApiKeyRow, User);

/// The key with this HMAC, joined to its owner (one indexed query).
pub fn find_for_auth(conn: &mut PgConnection, hash: &[u8]) -> QueryResult<Option<AuthRow>> {
    AUTH_LOOKUPS.fetch_add(1, Ordering::Relaxed);
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::key_hash.eq(hash))
        .select((ApiKeyRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Records use, unless it was already recorded within the last minute: concurrent requests race
/// to a single write, and a busy key costs one UPDATE a minute, not one per request.
pub fn touch(conn: &mut PgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<usize> {
    let stale = now - time::Duration::minutes(1);
    diesel::update(
        api_keys::table.find(id).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.le(stale)),
        ),
    )
    .set(api_keys::last_used_at.eq(Some(now)))
    .execute(conn)
}

/// Serialises key creation per user until the end of the transaction.
pub fn lock_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<()> {
    let (high, low) = user_id.as_u64_pair();
    let folded = high ^ low;
    let objid = (folded as u32 ^ (folded >> 32) as u32) as i32;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Integer, _>(CREATE_LOCK_CLASS)
        .bind::<Integer, _>(objid)
        .execute(conn)
        .map(|_| ())
}

/// Keys that still accept requests and are not on their way out: not revoked, not expired, not
/// rotated.
/// The user's keys that accept requests at `now`: not revoked, not expired, and either never
/// rotated or still in their rotation grace (a key in its grace works, so it counts towards the
/// live-key cap).
pub fn count_live(conn: &mut PgConnection, user_id: Uuid, now: OffsetDateTime) -> QueryResult<i64> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::rotated_to
                .is_null()
                .or(api_keys::grace_until.gt(now)),
        )
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
}

/// Revokes every key of the user not revoked yet (grace keys included); returns (id, prefix) of
/// each key revoked.
pub fn revoke_all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    by: Option<Uuid>,
    reason: &str,
    now: OffsetDateTime,
) -> QueryResult<Vec<(Uuid, String)>> {
    diesel::update(
        api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set((
        api_keys::revoked_at.eq(Some(now)),
        api_keys::revoked_by.eq(by),
        api_keys::revoke_reason.eq(Some(reason)),
    ))
    .returning((api_keys::id, api_keys::prefix))
    .get_results(conn)
}

/// Replaces the names the user gave their keys (account erasure); returns the rows changed.
pub fn scrub_names(conn: &mut PgConnection, user_id: Uuid, name: &str) -> QueryResult<usize> {
    diesel::update(api_keys::table.filter(api_keys::user_id.eq(user_id)))
        .set(api_keys::name.eq(name))
        .execute(conn)
}

/// One of the user's keys, row-locked for a state change.
pub fn lock_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::user_id.eq(user_id))
        .select(ApiKeyRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Any user's key, row-locked (admin revocation only).
pub fn lock_any(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Revokes the key if it is not revoked yet; returns the rows changed (0 or 1).
pub fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    by: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set((
        api_keys::revoked_at.eq(Some(now)),
        api_keys::revoked_by.eq(Some(by)),
        api_keys::revoke_reason.eq(Some(reason)),
    ))
    .execute(conn)
}

pub fn mark_rotated(
    conn: &mut PgConnection,
    id: Uuid,
    replacement: Uuid,
    grace_until: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(api_keys::table.find(id))
        .set((
            api_keys::rotated_to.eq(Some(replacement)),
            api_keys::grace_until.eq(Some(grace_until)),
        ))
        .execute(conn)
}

/// A user's keys, newest first, keyset-paginated on the (time-ordered) v7 id.
pub fn list_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<ApiKeyRow>> {
    let mut query = api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(api_keys::id.lt(before));
    }
    query.load(conn)
}

/// Filters of the admin key list (keyset on the time-ordered id, newest first).
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub owner: Option<Uuid>,
    pub status: Option<super::model::KeyStatus>,
    /// The display prefix, or its start (`rk_AbC`).
    pub prefix: Option<String>,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
}

/// Keys of every user matching `query` at `now`, each with its owner's username.
pub fn list_all(
    conn: &mut PgConnection,
    query: &KeyQuery,
    now: OffsetDateTime,
    limit: i64,
) -> QueryResult<Vec<(ApiKeyRow, String)>> {
    use super::model::KeyStatus;
    let mut q = api_keys::table
        .inner_join(users::table)
        .select((ApiKeyRow::as_select(), users::username))
        .into_boxed();
    if let Some(owner) = query.owner {
        q = q.filter(api_keys::user_id.eq(owner));
    }
    if let Some(prefix) = &query.prefix {
        // Prefixes are `rk_` + base62: nothing to escape once anything else is refused.
        let clean: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(11)
            .collect();
        q = q.filter(api_keys::prefix.like(format!("{clean}%")));
    }
    let not_revoked = api_keys::revoked_at.is_null();
    let not_expired = api_keys::expires_at
        .is_null()
        .or(api_keys::expires_at.gt(now));
    match query.status {
        None => {}
        Some(KeyStatus::Revoked) => q = q.filter(api_keys::revoked_at.is_not_null()),
        Some(KeyStatus::Expired) => q = q.filter(not_revoked).filter(api_keys::expires_at.le(now)),
        Some(KeyStatus::Active) => {
            q = q
                .filter(not_revoked)
                .filter(not_expired)
                .filter(api_keys::rotated_to.is_null())
        }
        Some(KeyStatus::RotationGrace) => {
            q = q
                .filter(not_revoked)
                .filter(not_expired)
                .filter(api_keys::rotated_to.is_not_null())
                .filter(api_keys::grace_until.gt(now))
        }
        Some(KeyStatus::Rotated) => {
            q = q
                .filter(not_revoked)
                .filter(not_expired)
                .filter(api_keys::rotated_to.is_not_null())
                .filter(api_keys::grace_until.le(now))
        }
    }
    if let Some(before) = query.before {
        q = q.filter(api_keys::id.lt(before));
    }
    if let Some(after) = query.after {
        q.filter(api_keys::id.gt(after))
            .order(api_keys::id.asc())
            .limit(limit)
            .load(conn)
    } else {
        q.order(api_keys::id.desc()).limit(limit).load(conn)
    }
}

/// Keys (with their owners) that accept requests at `now`: not revoked, not expired, not past a
/// rotation's grace, the owner active. The one statement of that rule in SQL.
#[diesel::dsl::auto_type(no_type_alias)]
fn accepting(now: OffsetDateTime) -> _ {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .filter(
            api_keys::rotated_to
                .is_null()
                .or(api_keys::grace_until.gt(now)),
        )
        .filter(users::active.eq(true))
}

/// Keys of every user that accept requests at `now` (active or in a rotation's grace).
pub fn count_accepting(conn: &mut PgConnection, now: OffsetDateTime) -> QueryResult<i64> {
    accepting(now).count().get_result(conn)
}

/// Which of `ids` accept requests now (see [`accepting`]).
pub fn accepting_among(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> QueryResult<Vec<Uuid>> {
    accepting(now)
        .filter(api_keys::id.eq_any(ids))
        .select(api_keys::id)
        .load(conn)
}

/// One key with its owner's username (admin views).
pub fn find_with_owner(
    conn: &mut PgConnection,
    id: Uuid,
) -> QueryResult<Option<(ApiKeyRow, String)>> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::id.eq(id))
        .select((ApiKeyRow::as_select(), users::username))
        .first(conn)
        .optional()
}
