//! Diesel queries on `quota_usage`. Every function runs on the connection (and transaction) it
//! is given and returns `QueryResult`; none decides a limit.

use diesel::prelude::*;
use time::Date;
use uuid::Uuid;

use crate::db::schema::quota_usage;

/// One subject's use of one quota on one day.
pub struct Usage<'a> {
    pub subject_type: &'a str,
    pub subject_id: Uuid,
    pub kind: &'a str,
    pub day: Date,
}

/// Counts one use if fewer than `limit` were counted so far; returns the new count, or `None`
/// when the quota is used up. One statement: concurrent callers serialise on the row, and each
/// re-evaluates `used < limit` against the latest count, so exactly `limit` uses are admitted.
pub fn consume(conn: &mut PgConnection, usage: &Usage<'_>, limit: u32) -> QueryResult<Option<i32>> {
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    if limit == 0 {
        return Ok(None);
    }
    use diesel::query_dsl::methods::FilterDsl;
    diesel::insert_into(quota_usage::table)
        .values((
            quota_usage::subject_type.eq(usage.subject_type),
            quota_usage::subject_id.eq(usage.subject_id),
            quota_usage::kind.eq(usage.kind),
            quota_usage::day.eq(usage.day),
            quota_usage::used.eq(1),
        ))
        .on_conflict((
            quota_usage::subject_type,
            quota_usage::subject_id,
            quota_usage::kind,
            quota_usage::day,
        ))
        .do_update()
        .set(quota_usage::used.eq(quota_usage::used + 1))
        // The upsert's WHERE (`ON CONFLICT … DO UPDATE … WHERE used < limit`).
        .filter(quota_usage::used.lt(limit))
        .returning(quota_usage::used)
        .get_result(conn)
        .optional()
}

/// How many uses of `kind` the subject has counted on `day` (0 when none).
pub fn used(conn: &mut PgConnection, usage: &Usage<'_>) -> QueryResult<i32> {
    quota_usage::table
        .filter(quota_usage::subject_type.eq(usage.subject_type))
        .filter(quota_usage::subject_id.eq(usage.subject_id))
        .filter(quota_usage::kind.eq(usage.kind))
        .filter(quota_usage::day.eq(usage.day))
        .select(quota_usage::used)
        .first(conn)
        .optional()
        .map(|u| u.unwrap_or(0))
}
