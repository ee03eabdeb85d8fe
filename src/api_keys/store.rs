//! Diesel queries on `api_keys`. Every query is filtered by owner except the two that cannot be:
//! the authentication lookup (by HMAC, through the unique index) and the admin revocation.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::prelude::*;
use diesel::sql_types::Integer;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{ApiKeyRow, NewApiKey};
use crate::accounts::model::User;
use crate::db::schema::{api_keys, users};

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
pub fn count_live(conn: &mut PgConnection, user_id: Uuid, now: OffsetDateTime) -> QueryResult<i64> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::rotated_to.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
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
