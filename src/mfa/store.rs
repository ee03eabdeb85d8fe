//! Diesel queries for `mfa_totp`, `mfa_recovery_codes` and `mfa_challenges`. Every "use once"
//! rule is one conditional UPDATE here (a step only forward, a code or challenge only while
//! unused), so racing requests cannot both win.

use std::collections::HashSet;

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{NewRecovery, NewTotp, RecoveryRow, TotpRow};
use crate::db::schema::{mfa_challenges, mfa_recovery_codes, mfa_totp, users};

pub fn find_totp(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Option<TotpRow>> {
    mfa_totp::table
        .find(user_id)
        .select(TotpRow::as_select())
        .first(conn)
        .optional()
}

pub fn lock_totp(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Option<TotpRow>> {
    mfa_totp::table
        .find(user_id)
        .select(TotpRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// A pending factor (replacing any earlier pending one); never touches a confirmed factor.
pub fn put_pending(conn: &mut PgConnection, row: &NewTotp<'_>) -> QueryResult<usize> {
    diesel::delete(
        mfa_totp::table
            .filter(mfa_totp::user_id.eq(row.user_id))
            .filter(mfa_totp::confirmed_at.is_null()),
    )
    .execute(conn)?;
    diesel::insert_into(mfa_totp::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
}

/// Accepts time step `step` for the user's factor: only if it is later than every step accepted
/// before (replay refused), and for a confirmed factor unless `pending` says otherwise.
pub fn accept_step(
    conn: &mut PgConnection,
    user_id: Uuid,
    step: i64,
    pending: bool,
) -> QueryResult<bool> {
    let target = mfa_totp::table
        .filter(mfa_totp::user_id.eq(user_id))
        .filter(mfa_totp::last_step.lt(step));
    let updated = if pending {
        diesel::update(target.filter(mfa_totp::confirmed_at.is_null()))
            .set(mfa_totp::last_step.eq(step))
            .execute(conn)?
    } else {
        diesel::update(target.filter(mfa_totp::confirmed_at.is_not_null()))
            .set(mfa_totp::last_step.eq(step))
            .execute(conn)?
    };
    Ok(updated == 1)
}

/// Activates the pending factor created at `created_at` (the one the confirmation checked).
pub fn confirm(
    conn: &mut PgConnection,
    user_id: Uuid,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    Ok(diesel::update(
        mfa_totp::table
            .filter(mfa_totp::user_id.eq(user_id))
            .filter(mfa_totp::created_at.eq(created_at))
            .filter(mfa_totp::confirmed_at.is_null()),
    )
    .set(mfa_totp::confirmed_at.eq(now))
    .execute(conn)?
        == 1)
}

pub fn has_factor(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        mfa_totp::table
            .filter(mfa_totp::user_id.eq(user_id))
            .filter(mfa_totp::confirmed_at.is_not_null()),
    ))
    .get_result(conn)
}

/// Which of `ids` have a confirmed factor.
pub fn with_factor_among(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<HashSet<Uuid>> {
    let found: Vec<Uuid> = mfa_totp::table
        .filter(mfa_totp::user_id.eq_any(ids))
        .filter(mfa_totp::confirmed_at.is_not_null())
        .select(mfa_totp::user_id)
        .load(conn)?;
    Ok(found.into_iter().collect())
}

/// Active admins without a confirmed factor.
pub fn admins_without_factor(conn: &mut PgConnection) -> QueryResult<i64> {
    users::table
        .filter(users::role.eq("admin"))
        .filter(users::active.eq(true))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            mfa_totp::table
                .filter(mfa_totp::user_id.eq(users::id))
                .filter(mfa_totp::confirmed_at.is_not_null()),
        )))
        .count()
        .get_result(conn)
}

/// Removes every factor, recovery code and pending challenge of the user; whether a confirmed
/// factor was among them.
pub fn remove_all(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<bool> {
    let confirmed = has_factor(conn, user_id)?;
    diesel::delete(mfa_totp::table.filter(mfa_totp::user_id.eq(user_id))).execute(conn)?;
    diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
        .execute(conn)?;
    Ok(confirmed)
}

// --- recovery codes -------------------------------------------------------------------------------

pub fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: Uuid,
    codes: &[NewRecovery],
) -> QueryResult<usize> {
    diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    diesel::insert_into(mfa_recovery_codes::table)
        .values(codes)
        .execute(conn)
}

/// The user's unused codes whose lookup group is `lookup` (almost always one, or none).
pub fn recovery_candidates(
    conn: &mut PgConnection,
    user_id: Uuid,
    lookup: &str,
) -> QueryResult<Vec<RecoveryRow>> {
    mfa_recovery_codes::table
        .filter(mfa_recovery_codes::user_id.eq(user_id))
        .filter(mfa_recovery_codes::lookup.eq(lookup))
        .filter(mfa_recovery_codes::used_at.is_null())
        .select(RecoveryRow::as_select())
        .load(conn)
}

/// Spends one code: true only for the request that found it unused.
pub fn spend_recovery_code(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    Ok(diesel::update(
        mfa_recovery_codes::table
            .filter(mfa_recovery_codes::id.eq(id))
            .filter(mfa_recovery_codes::user_id.eq(user_id))
            .filter(mfa_recovery_codes::used_at.is_null()),
    )
    .set(mfa_recovery_codes::used_at.eq(now))
    .execute(conn)?
        == 1)
}

pub fn recovery_codes_left(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<i64> {
    mfa_recovery_codes::table
        .filter(mfa_recovery_codes::user_id.eq(user_id))
        .filter(mfa_recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

// --- sign-in challenges ---------------------------------------------------------------------------

pub fn insert_challenge(
    conn: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
    purpose: &str,
    ip: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> QueryResult<usize> {
    // Expired challenges of anyone are dropped as new ones are made (the table stays small).
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(now)))
        .execute(conn)?;
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(token_hash),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::purpose.eq(purpose),
            mfa_challenges::ip.eq(ip),
            mfa_challenges::created_at.eq(now),
            mfa_challenges::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

/// The user of an unused, unexpired challenge issued for `purpose` to `ip`.
pub fn challenge_user(
    conn: &mut PgConnection,
    token_hash: &[u8],
    purpose: &str,
    ip: &str,
    now: OffsetDateTime,
) -> QueryResult<Option<Uuid>> {
    mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(token_hash))
        .filter(mfa_challenges::purpose.eq(purpose))
        .filter(mfa_challenges::ip.eq(ip))
        .filter(mfa_challenges::used_at.is_null())
        .filter(mfa_challenges::expires_at.gt(now))
        .select(mfa_challenges::user_id)
        .first(conn)
        .optional()
}

/// Spends the challenge: true only for the one request that found it unused and unexpired.
pub fn spend_challenge(
    conn: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    Ok(diesel::update(
        mfa_challenges::table
            .filter(mfa_challenges::token_hash.eq(token_hash))
            .filter(mfa_challenges::user_id.eq(user_id))
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(now)),
    )
    .set(mfa_challenges::used_at.eq(now))
    .execute(conn)?
        == 1)
}
