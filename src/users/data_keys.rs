//! Per-user data keys (`data_keys`): each user's Fernet key, stored only wrapped by the master key
//! ring (`crypto::keyring`). Content is encrypted under its author's data key, and each encrypted
//! row records the data key's id, so reading any row means unwrapping that one key.
//!
//! - [`for_writing`] hands out the user's key, creating it on first use (race-free: one row per
//!   user, `ON CONFLICT DO NOTHING` then read);
//! - [`open`] unwraps the keys a page of rows needs, once each; a destroyed key (erasure) or one
//!   under a master key that is no longer configured opens as *unavailable*, never as an error
//!   per request (`/ready` and `check-config` report the second case);
//! - [`rewrap_batch`] moves keys from older master keys to the newest, in id order, resumable;
//!   [`rotate`] loops it (audited per batch) for `rampart keys rotate-encryption`;
//! - [`destroy`] drops a user's wrapped key: everything encrypted under it is unreadable for good.
//!
//! Unwrapped keys live only for the duration of one use-case; nothing caches them, so a destroyed
//! key stops working everywhere at the next request.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::crypto::keyring::{DataKey, KeyRing, KeyRingError};
use crate::db::schema::data_keys;

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    /// The user's key was destroyed (the account was erased): nothing new is encrypted for them.
    #[error("the user's data key was destroyed")]
    Destroyed,
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// The user's data key and its id, created and wrapped under the newest master key on first use.
pub fn for_writing(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(Uuid, DataKey), DataKeyError> {
    let existing: Option<(Uuid, String, Option<String>)> = data_keys::table
        .filter(data_keys::user_id.eq(user_id))
        .select((data_keys::id, data_keys::master_key_id, data_keys::wrapped))
        .first(conn)
        .optional()?;
    for_writing_from(conn, ring, user_id, now, existing)
}

/// [`for_writing`] when the caller already read the user's stored key (`existing`: key id,
/// master key id, wrap) in a query of its own, saving a round trip; creates it when `None`.
pub fn for_writing_from(
    conn: &mut PgConnection,
    ring: &KeyRing,
    user_id: Uuid,
    now: OffsetDateTime,
    existing: Option<(Uuid, String, Option<String>)>,
) -> Result<(Uuid, DataKey), DataKeyError> {
    if let Some((id, master, wrapped)) = existing {
        let wrapped = wrapped.ok_or(DataKeyError::Destroyed)?;
        return Ok((id, ring.unwrap(user_id, &master, &wrapped)?));
    }
    let key = DataKey::generate()?;
    let wrapped = ring.wrap(user_id, &key)?;
    let id = Uuid::now_v7();
    let inserted = diesel::insert_into(data_keys::table)
        .values((
            data_keys::id.eq(id),
            data_keys::user_id.eq(user_id),
            data_keys::master_key_id.eq(&wrapped.master_key_id),
            data_keys::wrapped.eq(&wrapped.token),
            data_keys::created_at.eq(now),
        ))
        .on_conflict(data_keys::user_id)
        .do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok((id, key));
    }
    // Another transaction created it first: use theirs (it committed, or we would have waited).
    let (id, master, wrapped): (Uuid, String, Option<String>) = data_keys::table
        .filter(data_keys::user_id.eq(user_id))
        .select((data_keys::id, data_keys::master_key_id, data_keys::wrapped))
        .first(conn)?;
    let wrapped = wrapped.ok_or(DataKeyError::Destroyed)?;
    Ok((id, ring.unwrap(user_id, &master, &wrapped)?))
}

/// Data keys opened for one use-case, by id. A key that is destroyed, under a master key no
/// longer configured, or corrupt is absent: what it encrypted reads as unavailable.
#[derive(Default)]
pub struct OpenKeys {
    keys: HashMap<Uuid, DataKey>,
}

impl OpenKeys {
    /// The plaintext of `token` under data key `key_id`, or `None` when that key is unavailable or
    /// the token does not authenticate under it.
    pub fn decrypt(&self, key_id: Uuid, token: &str) -> Option<Vec<u8>> {
        self.keys.get(&key_id)?.decrypt(token).ok()
    }

    pub fn get(&self, key_id: Uuid) -> Option<&DataKey> {
        self.keys.get(&key_id)
    }

    /// The key `key_id`, taken out (for a use that outlives this set, such as a download).
    pub fn take(mut self, key_id: Uuid) -> Option<DataKey> {
        self.keys.remove(&key_id)
    }
}

impl OpenKeys {
    /// Unwraps keys already read with their rows (key id, owner, master key id, wrap), each
    /// once; destroyed, unconfigured or corrupt ones are left out (their content is unavailable).
    pub fn from_wraps<'a>(
        ring: &KeyRing,
        wraps: impl IntoIterator<Item = (Uuid, Uuid, &'a str, Option<&'a str>)>,
    ) -> OpenKeys {
        let mut keys = HashMap::new();
        for (id, owner, master, wrapped) in wraps {
            if keys.contains_key(&id) {
                continue;
            }
            let Some(wrapped) = wrapped else { continue };
            match ring.unwrap(owner, master, wrapped) {
                Ok(key) => {
                    keys.insert(id, key);
                }
                Err(error) => {
                    tracing::warn!(data_key = %id, master_key = %master, error = %error,
                        "a data key could not be unwrapped; its content reads as unavailable");
                }
            }
        }
        OpenKeys { keys }
    }

    /// Whether `key_id` is open.
    pub fn contains(&self, key_id: Uuid) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// Adds the keys of `other` (keys opened by a second query).
    pub fn extend(&mut self, other: OpenKeys) {
        self.keys.extend(other.keys);
    }
}

/// Opens the data keys `ids` (duplicates are fine), each unwrapped once.
pub fn open(conn: &mut PgConnection, ring: &KeyRing, ids: &[Uuid]) -> QueryResult<OpenKeys> {
    let mut wanted: Vec<Uuid> = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(OpenKeys::default());
    }
    let rows: Vec<(Uuid, Uuid, String, Option<String>)> = data_keys::table
        .filter(data_keys::id.eq_any(&wanted))
        .select((
            data_keys::id,
            data_keys::user_id,
            data_keys::master_key_id,
            data_keys::wrapped,
        ))
        .load(conn)?;
    Ok(OpenKeys::from_wraps(
        ring,
        rows.iter()
            .map(|(id, owner, master, wrapped)| (*id, *owner, master.as_str(), wrapped.as_deref())),
    ))
}

/// Destroys `user_id`'s wrapped data key (crypto-shredding); `true` when there was a live one.
pub fn destroy(conn: &mut PgConnection, user_id: Uuid, now: OffsetDateTime) -> QueryResult<bool> {
    // A user who never wrote anything has no key yet: a destroyed row is written for them, so
    // nothing can be encrypted for the account afterwards (a write racing the erasure finds
    // the key destroyed instead of creating a fresh one).
    let n = diesel::update(
        data_keys::table
            .filter(data_keys::user_id.eq(user_id))
            .filter(data_keys::wrapped.is_not_null()),
    )
    .set((
        data_keys::wrapped.eq(None::<String>),
        data_keys::destroyed_at.eq(Some(now)),
    ))
    .execute(conn)?;
    diesel::insert_into(data_keys::table)
        .values((
            data_keys::id.eq(Uuid::now_v7()),
            data_keys::user_id.eq(user_id),
            data_keys::master_key_id.eq(NO_MASTER_KEY),
            data_keys::wrapped.eq(None::<String>),
            data_keys::created_at.eq(now),
            data_keys::destroyed_at.eq(Some(now)),
        ))
        .on_conflict(data_keys::user_id)
        .do_nothing()
        .execute(conn)?;
    Ok(n > 0)
}

/// The master key id recorded on the destroyed row of a user who never had a key.
const NO_MASTER_KEY: &str = "mk_0000000000000000";

/// Whether the user has a data key that can still be unwrapped (the erasure report).
pub fn present(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        data_keys::table
            .filter(data_keys::user_id.eq(user_id))
            .filter(data_keys::wrapped.is_not_null()),
    ))
    .get_result(conn)
}

/// Live (not destroyed) data keys per master key id, and the number destroyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub by_master_key: Vec<(String, i64)>,
    pub destroyed: i64,
}

impl KeyCounts {
    /// The master key ids that still wrap live keys but are not in `ring`.
    pub fn unconfigured<'a>(&'a self, ring: &KeyRing) -> Vec<(&'a str, i64)> {
        self.by_master_key
            .iter()
            .filter(|(id, _)| !ring.contains(id))
            .map(|(id, n)| (id.as_str(), *n))
            .collect()
    }
}

pub fn counts(conn: &mut PgConnection) -> QueryResult<KeyCounts> {
    use diesel::dsl::count_star;
    let by_master_key: Vec<(String, i64)> = data_keys::table
        .filter(data_keys::wrapped.is_not_null())
        .group_by(data_keys::master_key_id)
        .select((data_keys::master_key_id, count_star()))
        .order(data_keys::master_key_id)
        .load(conn)?;
    let destroyed: i64 = data_keys::table
        .filter(data_keys::wrapped.is_null())
        .count()
        .get_result(conn)?;
    Ok(KeyCounts {
        by_master_key,
        destroyed,
    })
}

/// Whether any live data key is wrapped under a master key not in `ring` (the cheap check for
/// `/ready`: one indexed probe).
pub fn any_unconfigured(conn: &mut PgConnection, ring: &KeyRing) -> QueryResult<bool> {
    let configured: Vec<&str> = ring.ids().collect();
    diesel::select(diesel::dsl::exists(
        data_keys::table
            .filter(data_keys::wrapped.is_not_null())
            .filter(diesel::dsl::not(
                data_keys::master_key_id.eq_any(configured),
            )),
    ))
    .get_result(conn)
}

/// What one [`rewrap_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapBatch {
    /// Keys now wrapped under the newest master key.
    pub rewrapped: usize,
    /// Keys that could not be unwrapped (corrupt wraps), by id: left as they were.
    pub failed: Vec<Uuid>,
    /// The last id looked at: the next batch starts after it.
    pub last_id: Option<Uuid>,
    /// Keys re-wrapped, by the master key they were under.
    pub from: BTreeMap<String, usize>,
}

/// Re-wraps up to `limit` live data keys wrapped under an older *configured* master key (ids after
/// `after`, in id order) under the newest one, in one transaction. Rows another rotation holds are
/// skipped (`SKIP LOCKED`): two rotations running at once split the work. Idempotent and
/// resumable: a key already under the newest master key is never selected again.
pub fn rewrap_batch(
    conn: &mut PgConnection,
    ring: &KeyRing,
    after: Option<Uuid>,
    limit: i64,
    now: OffsetDateTime,
) -> Result<RewrapBatch, DataKeyError> {
    if ring.ids().nth(1).is_none() {
        return Ok(RewrapBatch::default());
    }
    conn.transaction(|conn| rewrap_in_tx(conn, ring, after, limit, now))
}

/// [`rewrap_batch`] with its audit row (`encryption.rotated`: how many keys moved from which
/// master key to which, and the ids that failed) written in the same transaction: a batch that
/// committed is recorded, one that was interrupted changed nothing and recorded nothing.
pub fn rewrap_batch_audited(
    conn: &mut PgConnection,
    ring: &KeyRing,
    auditor: &Auditor,
    after: Option<Uuid>,
    limit: i64,
    now: OffsetDateTime,
) -> Result<RewrapBatch, DataKeyError> {
    if ring.ids().nth(1).is_none() {
        return Ok(RewrapBatch::default());
    }
    conn.transaction(|conn| {
        let batch = rewrap_in_tx(conn, ring, after, limit, now)?;
        if batch.rewrapped > 0 || !batch.failed.is_empty() {
            let outcome = if batch.failed.is_empty() {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            let failed: Vec<String> = batch.failed.iter().map(Uuid::to_string).collect();
            auditor.record(
                conn,
                &RequestMeta::none(),
                Event::new(Action::EncryptionRotated, outcome, Actor::system()).metadata(
                    serde_json::json!({
                        "rewrapped": batch.rewrapped,
                        "from": batch.from,
                        "to": ring.current_id(),
                        "failed": failed,
                    }),
                ),
            )?;
        }
        Ok(batch)
    })
}

fn rewrap_in_tx(
    conn: &mut PgConnection,
    ring: &KeyRing,
    after: Option<Uuid>,
    limit: i64,
    now: OffsetDateTime,
) -> Result<RewrapBatch, DataKeyError> {
    let older: Vec<String> = ring.ids().skip(1).map(str::to_string).collect();
    // The nil UUID sorts before every id: no `after` means from the start.
    let rows: Vec<(Uuid, Uuid, String, Option<String>)> = data_keys::table
        .filter(data_keys::wrapped.is_not_null())
        .filter(data_keys::master_key_id.eq_any(&older))
        .filter(data_keys::id.gt(after.unwrap_or(Uuid::nil())))
        .select((
            data_keys::id,
            data_keys::user_id,
            data_keys::master_key_id,
            data_keys::wrapped,
        ))
        .order(data_keys::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)?;
    let mut batch = RewrapBatch {
        last_id: rows.last().map(|r| r.0),
        ..RewrapBatch::default()
    };
    for (id, owner, master, wrapped) in rows {
        let Some(wrapped) = wrapped else { continue };
        match ring.rewrap(owner, &master, &wrapped) {
            Ok(new) => {
                diesel::update(data_keys::table.find(id))
                    .set((
                        data_keys::master_key_id.eq(&new.master_key_id),
                        data_keys::wrapped.eq(Some(&new.token)),
                        data_keys::rewrapped_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
                batch.rewrapped += 1;
                *batch.from.entry(master).or_default() += 1;
            }
            Err(error) => {
                tracing::warn!(data_key = %id, error = %error, "data key not re-wrapped");
                batch.failed.push(id);
            }
        }
    }
    Ok(batch)
}

/// Live data keys still to move to the newest master key: those under an older configured one.
pub fn pending_rewrap(counts: &KeyCounts, ring: &KeyRing) -> i64 {
    counts
        .by_master_key
        .iter()
        .filter(|(id, _)| id != ring.current_id() && ring.contains(id))
        .map(|(_, n)| n)
        .sum()
}

/// The outcome of a whole [`rotate`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Keys waiting under older configured master keys when the run started.
    pub pending_at_start: i64,
    pub rewrapped: usize,
    /// Keys whose wrap did not authenticate (corrupt): left as they were, by id.
    pub failed: Vec<Uuid>,
    pub batches: usize,
    /// The live keys per master key once the run ended.
    pub after: KeyCounts,
}

/// Re-wraps every live data key under an older configured master key under the newest one,
/// `batch_size` keys per audited transaction ([`rewrap_batch_audited`]) until none is left.
/// `progress(done, pending_at_start)` is called after each batch. Interrupted at any point, a run
/// loses nothing (each batch commits whole or not at all) and the next run continues: keys
/// already moved are never selected again.
pub fn rotate(
    conn: &mut PgConnection,
    ring: &KeyRing,
    auditor: &Auditor,
    batch_size: i64,
    now: OffsetDateTime,
    mut progress: impl FnMut(usize, i64),
) -> Result<Rotation, DataKeyError> {
    let batch_size = batch_size.max(1);
    let mut rotation = Rotation {
        pending_at_start: pending_rewrap(&counts(conn)?, ring),
        ..Rotation::default()
    };
    let mut after = None;
    loop {
        let batch = rewrap_batch_audited(conn, ring, auditor, after, batch_size, now)?;
        let Some(last) = batch.last_id else { break };
        rotation.batches += 1;
        rotation.rewrapped += batch.rewrapped;
        rotation.failed.extend(batch.failed);
        after = Some(last);
        progress(rotation.rewrapped, rotation.pending_at_start);
    }
    rotation.after = counts(conn)?;
    Ok(rotation)
}
