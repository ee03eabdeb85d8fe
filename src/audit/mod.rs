//! The tamper-evident audit log: who did what, to what, from where, with what outcome.
//!
//! **Boundary.** Other features record events only through [`Auditor`] (with [`Event`], [`Actor`],
//! [`RequestMeta`] and the one [`Action`] enum) and read them only through [`list`] / [`get`]
//! (admins) and [`own_events_page`] / [`events_done_to_page`] (a user's own data export);
//! nothing else touches the audit tables. This module never decides whether an action is
//! allowed and never reads another feature's tables; its routes are the admin API's read-only
//! `GET /api/v1/admin/audit-logs` and `…/verify` (the console mounts its own pages).
//!
//! # Writing: the record commits or rolls back with the change
//! [`Auditor::record`] takes the connection the caller has an open transaction on, so the change
//! and its record share one fate: no audit record, no change. It refuses to run outside a
//! transaction (`NotInTransaction`). Events with no surrounding change (a failed login) use
//! [`Auditor::record_standalone`], which opens its own transaction and refuses to run inside one
//! (`AlreadyInTransaction`), so "standalone" cannot silently become "rolled back with the caller".
//! Call `record` last in the transaction: it holds the chain lock until the commit.
//!
//! Metadata is scrubbed first ([`scrub`]): secrets redacted at any depth, sizes bounded, NUL
//! replaced, so nothing a client sends can make the INSERT fail.
//!
//! # The chain
//! Each row's `hash` is HMAC-SHA256(audit key, `prev_hash` ‖ canonical encoding of the row) —
//! see [`chain`]. The audit key is derived from SECRET_KEY (which the database never sees), so
//! somebody with full database access can delete or edit rows but cannot produce rows that
//! verify. Appends are serialised by a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`): the writer takes it, reads the newest row, and inserts id + 1
//! chained to its hash. Concurrent writers therefore queue instead of forking the chain, and ids
//! are dense — a gap is a deletion. (The lock is taken in a statement of its own, so in READ
//! COMMITTED each following statement sees the previous holder's commit; under REPEATABLE READ
//! a stale snapshot makes the insert fail on the primary key rather than fork.)
//!
//! # Verification
//! [`Auditor::verify`] walks the log in id order inside one REPEATABLE READ snapshot, starting
//! from genesis or from the latest retention checkpoint, and stops at the first row that does not
//! verify, classifying it as edited, deleted, reordered, inserted or unlinked
//! ([`chain::FailureKind`]). `rampart audit verify` prints `OK: N rows verified` or that row.
//!
//! # Retention
//! [`Auditor::prune`] removes the oldest rows (the longest id prefix that occurred before the
//! date). Under the chain lock it verifies the chain (refusing to destroy evidence of tampering),
//! opens the append-only trigger for exactly that prefix with the transaction-local setting
//! `rampart.audit_prune_through`, deletes, and writes a checkpoint (last removed id and hash,
//! itself HMAC-chained to the previous checkpoint) plus an `audit.pruned` row. Verification then
//! starts from the checkpoint, so it passes on what remains and still detects tampering there.
//!
//! # Noise control: aggregation that keeps the chain immutable
//! [`Auditor::record_aggregated`] is for events an attacker can repeat at will (a rate-limited
//! IP hammering). Per (action, IP, scope, minute) — the scope being e.g. the rate-limit policy of
//! [`Auditor::record_aggregated_as`], empty otherwise — the *first* occurrence is written as an ordinary
//! chained row whose metadata records the window (`aggregate.window_start`,
//! `aggregate.window_seconds`); the others only increment `event_count` in `audit_aggregates`,
//! keyed (action, ip, scope, window_start) and linked to that row. Readers ([`list`], [`get`]) add the
//! running count to the row's metadata as `count`. Chained rows are never updated, so the chain
//! stays verifiable; the count itself is outside the chain (it is a rate, not evidence), and the
//! table's trigger only lets it grow. The flood costs one row per minute per (action, IP).
//!
//! # The database role
//! Triggers refuse UPDATE, TRUNCATE and (outside `prune`) DELETE on `audit_logs` and
//! `audit_checkpoints` for every role, superusers included; a stricter deployment also revokes
//! the privileges (the migration's header has the GRANT statements). A superuser who bypasses the
//! trigger is caught by `verify`.

pub mod chain;
pub mod cli;
pub mod export;
pub mod model;
pub mod pseudonym;
pub mod queue;
pub mod report;
pub mod routes;
pub mod scrub;
pub mod store;

use std::fmt;
use std::sync::Arc;

use diesel::PgConnection;
use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::result::{Error as DieselError, QueryResult};
use ipnet::IpNet;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use chain::{AuditKey, Failure, FailureKind};
pub use cli::{cli_prune, cli_verify};
pub use export::{AccountEvent, OwnEvent, events_done_to_page, own_events_page, public_reason};
pub use model::{
    Action, Actor, ActorType, AuditEntry, AuditFilter, AuditPage, AuditQuery, AuditRow, Checkpoint,
    Event, Outcome, RequestMeta, in_timestamp_range, parse_reason, parse_timestamp,
};
pub use pseudonym::{forget_salt, has_salt};
pub use queue::{Aggregated, AuditQueue};
pub use report::{CheckpointSummary, PruneReport, VerifyReport};

use crate::clock::rfc3339;
use crate::config::Settings;
use chain::{ChainReport, ChainStart, Verifier};

/// Rows fetched per round trip while verifying.
const VERIFY_BATCH: i64 = 2000;
/// The aggregation window of `record_aggregated`.
pub const AGGREGATE_WINDOW_SECONDS: i64 = 60;

/// The time source; tests inject a fixed or stepping clock.
pub type TimeSource = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Records, verifies and prunes the audit log. Cheap to clone; build it once at start.
#[derive(Clone)]
pub struct Auditor {
    key: Arc<AuditKey>,
    enabled: bool,
    clock: TimeSource,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("key", &self.key)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditSetupError {
    #[error(
        "SECRET_KEY is not set; the audit chain is keyed from it (generate one with `rampart keygen`)"
    )]
    MissingSecretKey,
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
}

fn in_transaction(conn: &mut PgConnection) -> QueryResult<bool> {
    Ok(
        <AnsiTransactionManager as TransactionManager<PgConnection>>::transaction_manager_status_mut(
            conn,
        )
        .transaction_depth()?
        .is_some(),
    )
}

fn minute_start(at: OffsetDateTime) -> OffsetDateTime {
    let secs = at.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(AGGREGATE_WINDOW_SECONDS))
        .unwrap_or(at)
}

impl Auditor {
    pub fn new(key: AuditKey, enabled: bool) -> Auditor {
        Auditor {
            key: Arc::new(key),
            enabled,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// Replaces the clock (tests: fixed times for aggregation windows and retention).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Auditor {
        self.clock = Arc::new(clock);
        self
    }

    /// For the server: the key from SECRET_KEY; without it, production is an error and
    /// development/test get an ephemeral random key (with a warning), whose rows cannot be
    /// verified after a restart.
    pub fn from_settings(settings: &Settings) -> Result<Auditor, AuditSetupError> {
        let key = match &settings.secrets.secret_key {
            Some(secret) => AuditKey::derive(secret),
            None if settings.is_production() => return Err(AuditSetupError::MissingSecretKey),
            None => {
                tracing::warn!(
                    "SECRET_KEY is not set: the audit log is chained with an EPHEMERAL random key; \
                     rows written by this process cannot be verified after it exits"
                );
                AuditKey::ephemeral()?
            }
        };
        Ok(Auditor::new(key, settings.enable_audit_logging))
    }

    /// For operator commands (`rampart audit verify|prune`): SECRET_KEY is required in every
    /// environment, since a random key could verify nothing.
    pub fn for_operator(settings: &Settings) -> Result<Auditor, AuditSetupError> {
        let secret = settings
            .secrets
            .secret_key
            .as_ref()
            .ok_or(AuditSetupError::MissingSecretKey)?;
        Ok(Auditor::new(
            AuditKey::derive(secret),
            settings.enable_audit_logging,
        ))
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn key(&self) -> &AuditKey {
        &self.key
    }

    fn now(&self) -> OffsetDateTime {
        chain::truncate_to_micros((self.clock)())
    }

    /// Records `event` inside the transaction the caller has open on `conn`: it commits or rolls
    /// back with the caller's change. Returns the row id (`None` when auditing is disabled).
    pub fn record(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        event: Event,
    ) -> QueryResult<Option<i64>> {
        if !self.enabled {
            return Ok(None);
        }
        if !in_transaction(conn)? {
            return Err(DieselError::NotInTransaction);
        }
        self.append(conn, prepare(meta, &event)).map(Some)
    }

    /// Records `event` in a transaction of its own, for events with no surrounding change (a
    /// failed login). Refuses to run inside a transaction.
    pub fn record_standalone(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        event: Event,
    ) -> QueryResult<Option<i64>> {
        if !self.enabled {
            return Ok(None);
        }
        if in_transaction(conn)? {
            return Err(DieselError::AlreadyInTransaction);
        }
        let row = prepare(meta, &event);
        conn.transaction(|conn| self.append(conn, row)).map(Some)
    }

    /// Records a repeatable event (its own transaction, like `record_standalone`) at most once per
    /// (action, IP, minute); later occurrences in the same minute only raise the count readers
    /// see as `metadata.count`. Returns the id of the row standing for the window. Events without
    /// an IP are recorded individually.
    pub fn record_aggregated(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        event: Event,
    ) -> QueryResult<Option<i64>> {
        self.record_aggregated_as(conn, meta, event, "", 1)
    }

    /// `record_aggregated` per (action, IP, `scope`, minute), counting `occurrences` at once (a
    /// caller that has already coalesced a burst). The scope — a rate-limit policy, a quota kind
    /// — is recorded in the row's `aggregate.scope`.
    pub fn record_aggregated_as(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        event: Event,
        scope: &str,
        occurrences: i64,
    ) -> QueryResult<Option<i64>> {
        if !self.enabled {
            return Ok(None);
        }
        let Some(ip) = meta.ip else {
            return self.record_standalone(conn, meta, event);
        };
        if in_transaction(conn)? {
            return Err(DieselError::AlreadyInTransaction);
        }
        let now = self.now();
        let window = minute_start(now);
        let net = IpNet::from(ip.to_canonical());
        let action = event.action.as_str();
        let scope = scrub::bound_text(scope, 64);
        let occurrences = occurrences.max(1);
        let mut row = prepare(meta, &event);
        if let Value::Object(map) = &mut row.metadata {
            let mut aggregate = json!({
                "window_start": rfc3339(window),
                "window_seconds": AGGREGATE_WINDOW_SECONDS,
            });
            if !scope.is_empty() {
                aggregate["scope"] = json!(scope);
            }
            map.insert("aggregate".into(), aggregate);
        }
        let key = store::AggregateKey {
            action,
            ip: net,
            scope: &scope,
            window_start: window,
        };
        conn.transaction(|conn| {
            let (_, linked) = store::bump_aggregate(conn, &key, occurrences, now)?;
            if let Some(id) = linked {
                return Ok(Some(id));
            }
            let id = self.append(conn, row)?;
            store::link_aggregate(conn, &key, id)?;
            Ok(Some(id))
        })
    }

    /// Appends under the chain lock: id = newest + 1, chained to the newest hash.
    fn append(&self, conn: &mut PgConnection, mut row: AuditRow) -> QueryResult<i64> {
        store::lock_chain(conn)?;
        let (next_id, prev_hash) = match store::last_row(conn)? {
            Some((id, hash)) => (id + 1, hash),
            None => match store::latest_checkpoint(conn)? {
                Some(c) => (c.last_pruned_id + 1, c.last_pruned_hash),
                None => (1, chain::GENESIS.to_vec()),
            },
        };
        row.id = next_id;
        row.prev_hash = prev_hash;
        row.occurred_at = self.now();
        row.hash = chain::row_hash(&self.key, &row).to_vec();
        store::insert_row(conn, &row)?;
        Ok(row.id)
    }

    /// Walks the whole chain in one consistent snapshot (REPEATABLE READ, read only; inside the
    /// caller's transaction if there is one). Read-only: never writes.
    pub fn verify(&self, conn: &mut PgConnection) -> QueryResult<VerifyReport> {
        if in_transaction(conn)? {
            self.verify_in(conn)
        } else {
            conn.build_transaction()
                .repeatable_read()
                .read_only()
                .run(|conn| self.verify_in(conn))
        }
    }

    fn verify_in(&self, conn: &mut PgConnection) -> QueryResult<VerifyReport> {
        let checkpoints = store::checkpoints(conn)?;
        let checkpoint = checkpoints.last().map(|c| CheckpointSummary {
            id: c.id,
            last_pruned_id: c.last_pruned_id,
            pruned_before: c.pruned_before,
        });
        let report = match chain::verify_checkpoints(&self.key, &checkpoints) {
            Ok(start) => self.walk(conn, start, i64::MIN)?,
            Err(failure) => ChainReport {
                verified: 0,
                head: None,
                failure: Some(failure),
            },
        };
        Ok(VerifyReport {
            rows_verified: report.verified,
            head: report.head.map(|(id, hash)| (id, hex::encode(hash))),
            checkpoint,
            failure: report.failure,
        })
    }

    /// Feeds the rows with id > `after` to a verifier starting at `start`.
    fn walk(
        &self,
        conn: &mut PgConnection,
        start: ChainStart,
        after: i64,
    ) -> QueryResult<ChainReport> {
        let mut verifier = Verifier::new(&self.key, start);
        let mut after = after;
        loop {
            let batch = store::rows_after(conn, after, VERIFY_BATCH)?;
            let Some(last) = batch.last() else {
                break;
            };
            after = last.id;
            let complete = (batch.len() as i64) < VERIFY_BATCH;
            for row in &batch {
                if !verifier.push(row) {
                    return Ok(verifier.finish());
                }
            }
            if complete {
                break;
            }
        }
        Ok(verifier.finish())
    }

    /// Appends an `audit.verified` row describing `report` (what `rampart audit verify` and the
    /// admin API call after `verify`).
    pub fn record_verification(
        &self,
        conn: &mut PgConnection,
        meta: &RequestMeta,
        actor: Actor,
        report: &VerifyReport,
    ) -> QueryResult<Option<i64>> {
        let outcome = if report.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let mut metadata = json!({ "rows_verified": report.rows_verified });
        if let Some((id, hash)) = &report.head {
            metadata["head_id"] = json!(id);
            metadata["head_hash"] = json!(hash);
        }
        if let Some(failure) = &report.failure {
            metadata["failure"] = json!({
                "kind": failure.kind.as_str(),
                "row_id": failure.row_id,
                "message": failure.message,
            });
        }
        self.record_standalone(
            conn,
            meta,
            Event::new(Action::AuditVerified, outcome, actor).metadata(metadata),
        )
    }

    /// Removes the rows that occurred before `before` (the longest such id prefix), leaving a
    /// checkpoint so that the rest still verifies. Refuses when the chain does not verify.
    /// Runs in its own transaction.
    pub fn prune(
        &self,
        conn: &mut PgConnection,
        before: OffsetDateTime,
    ) -> QueryResult<PruneReport> {
        if in_transaction(conn)? {
            return Err(DieselError::AlreadyInTransaction);
        }
        // `parse_timestamp` already refuses these; a caller with its own date must not reach the
        // binding (diesel panics on an offset time with no UTC equivalent).
        if !in_timestamp_range(before) {
            return Err(DieselError::QueryBuilderError(
                "the date is outside the range of timestamps Postgres holds".into(),
            ));
        }
        let before = chain::truncate_to_micros(before);
        // Verify without the lock first, so appends are not held up for a full walk.
        let snapshot = self.verify(conn)?;
        if let Some(failure) = snapshot.failure.clone() {
            return Ok(PruneReport::Refused(failure));
        }
        conn.transaction(|conn| {
            store::lock_chain(conn)?;
            let latest = store::latest_checkpoint(conn)?;
            // Under the lock, check only what changed since the snapshot: the seam and newer rows.
            let unchanged_seam = match (&snapshot.head, snapshot.head_start()) {
                (Some((id, _)), Some(start)) => {
                    store::row_hash(conn, *id)?.is_some_and(|h| h == start.prev_hash)
                        && latest.as_ref().map(|c| c.id)
                            == snapshot.checkpoint.as_ref().map(|c| c.id)
                }
                _ => false,
            };
            let report = match (unchanged_seam, snapshot.head_start()) {
                (true, Some(start)) => self.walk(conn, start, start.next_id - 1)?,
                _ => {
                    let full = self.verify_in(conn)?;
                    ChainReport {
                        verified: full.rows_verified,
                        head: None,
                        failure: full.failure,
                    }
                }
            };
            if let Some(failure) = report.failure {
                return Ok(PruneReport::Refused(failure));
            }
            let Some(through) = store::prune_boundary(conn, before)? else {
                return Ok(PruneReport::NothingToPrune { before });
            };
            let last_pruned_hash = store::row_hash(conn, through)?.ok_or(DieselError::NotFound)?;
            store::allow_prune_through(conn, Some(through))?;
            let rows = store::delete_through(conn, through)?;
            store::allow_prune_through(conn, None)?;
            let mut checkpoint = model::NewCheckpoint {
                created_at: self.now(),
                pruned_before: before,
                last_pruned_id: through,
                last_pruned_hash: last_pruned_hash.clone(),
                pruned_count: rows as i64,
                prev_mac: latest
                    .map(|c| c.mac)
                    .unwrap_or_else(|| chain::GENESIS.to_vec()),
                mac: Vec::new(),
            };
            checkpoint.mac = chain::checkpoint_mac(&self.key, &checkpoint).to_vec();
            let stored = store::insert_checkpoint(conn, &checkpoint)?;
            if self.enabled {
                let event = Event::new(Action::AuditPruned, Outcome::Success, Actor::system())
                    .target("audit_checkpoint", stored.id)
                    .metadata(json!({
                        "pruned_before": rfc3339(before),
                        "last_pruned_id": through,
                        "last_pruned_hash": hex::encode(&last_pruned_hash),
                        "pruned_count": rows,
                    }));
                self.append(conn, prepare(&RequestMeta::none(), &event))?;
            }
            Ok(PruneReport::Pruned {
                rows: rows as u64,
                through_id: through,
                last_pruned_hash: hex::encode(&last_pruned_hash),
                checkpoint_id: stored.id,
                before,
            })
        })
    }
}

/// The row for `event`, scrubbed and bounded; id, time and hashes are set by `append`.
fn prepare(meta: &RequestMeta, event: &Event) -> AuditRow {
    use scrub::{
        MAX_ID_CHARS, MAX_REQUEST_ID_CHARS, MAX_TYPE_CHARS, MAX_USER_AGENT_CHARS, bound_opt,
        bound_text,
    };
    AuditRow {
        id: 0,
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        actor_type: event.actor.kind.as_str().to_string(),
        actor_id: bound_opt(event.actor.id.as_deref(), MAX_ID_CHARS),
        action: event.action.as_str().to_string(),
        outcome: event.outcome.as_str().to_string(),
        target_type: event
            .target
            .as_ref()
            .map(|(kind, _)| bound_text(kind, MAX_TYPE_CHARS)),
        target_id: event
            .target
            .as_ref()
            .map(|(_, id)| bound_text(id, MAX_ID_CHARS)),
        ip: meta.ip.map(|ip| IpNet::from(ip.to_canonical())),
        user_agent: bound_opt(meta.user_agent.as_deref(), MAX_USER_AGENT_CHARS),
        request_id: bound_opt(meta.request_id.as_deref(), MAX_REQUEST_ID_CHARS),
        server_request_id: bound_opt(meta.server_request_id.as_deref(), MAX_REQUEST_ID_CHARS),
        metadata: scrub::scrub_metadata(&event.metadata),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

/// One page of the log, newest first (see [`AuditQuery`]); aggregated rows carry `count`.
pub fn list(conn: &mut PgConnection, query: &AuditQuery) -> QueryResult<AuditPage> {
    let limit = if query.limit <= 0 {
        50
    } else {
        query.limit.min(500)
    };
    let mut rows = store::list(conn, query, limit + 1)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let newer_page = query.after_id.is_some();
    if newer_page {
        rows.reverse();
    }
    let first = rows.first().map(|(row, _)| row.id);
    let last = rows.last().map(|(row, _)| row.id);
    let (next_before_id, prev_after_id) = if newer_page {
        // Reading upwards: older rows exist below (we came from there); newer ones if `more`.
        (
            last.or(query.after_id.map(|a| a + 1)),
            first.filter(|_| more),
        )
    } else {
        (
            last.filter(|_| more),
            first.filter(|_| query.before_id.is_some()),
        )
    };
    Ok(AuditPage {
        items: rows
            .into_iter()
            .map(|(row, count)| AuditEntry::from_row(row, count))
            .collect(),
        next_before_id,
        prev_after_id,
    })
}

/// How many times each of `actions` happened since `since`, aggregated occurrences included.
pub fn occurrences_since(
    conn: &mut PgConnection,
    actions: &[Action],
    since: OffsetDateTime,
) -> QueryResult<Vec<(Action, i64)>> {
    let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    Ok(store::occurrences_since(conn, &names, since)?
        .into_iter()
        .filter_map(|(name, n)| Action::parse(&name).map(|a| (a, n)))
        .collect())
}

/// Per UTC hour since `since`: (hour, action, occurrences) for each of `actions` that happened.
pub fn hourly_since(
    conn: &mut PgConnection,
    actions: &[Action],
    since: OffsetDateTime,
) -> QueryResult<Vec<(OffsetDateTime, Action, i64)>> {
    let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    Ok(store::hourly_since(conn, &names, since)?
        .into_iter()
        .filter_map(|(hour, name, n)| Action::parse(&name).map(|a| (hour, a, n)))
        .collect())
}

/// Who ran an operator command: the OS user and the host, recorded with the audit rows of the
/// CLI's destructive commands (`{"os_user", "host"}`; empty strings when unknown).
pub fn operator_origin() -> serde_json::Value {
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    serde_json::json!({ "os_user": os_user, "host": host })
}

/// An admin's reason from a request, optional unless `required`; a blank one is no reason. The
/// text is checked by [`parse_reason`].
pub fn admin_reason(
    raw: Option<&str>,
    required: bool,
) -> Result<Option<String>, crate::error::AppError> {
    use crate::error::{AppError, FieldError};
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None if required => Err(AppError::Validation(vec![FieldError::new(
            "reason",
            "is required",
        )])),
        None => Ok(None),
        Some(r) => parse_reason(r)
            .map(Some)
            .map_err(|e| AppError::Validation(vec![e])),
    }
}

/// The newest `audit.verified` row: the last recorded check of the chain.
pub fn last_verification(conn: &mut PgConnection) -> QueryResult<Option<AuditEntry>> {
    Ok(store::latest_of(conn, Action::AuditVerified.as_str())?
        .map(|(row, count)| AuditEntry::from_row(row, count)))
}

/// Walks the chain and records the result as `audit.verified` by `actor` (the admin API and the
/// console's "verify now").
pub async fn verify_recorded(
    pool: &crate::db::Pool,
    auditor: &Auditor,
    actor: Actor,
    meta: RequestMeta,
) -> Result<VerifyReport, crate::error::AppError> {
    let auditor = auditor.clone();
    pool.run(move |conn| {
        let report = auditor.verify(conn)?;
        auditor.record_verification(conn, &meta, actor, &report)?;
        Ok(report)
    })
    .await
}

/// One row by id; an aggregated row carries `count`.
pub fn get(conn: &mut PgConnection, id: i64) -> QueryResult<Option<AuditEntry>> {
    Ok(store::get(conn, id)?.map(|(row, count)| AuditEntry::from_row(row, count)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;
    use std::collections::BTreeMap;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(&Sources {
            config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            env,
            dotenv: None,
        })
        .unwrap()
    }

    #[test]
    fn production_without_secret_key_is_an_error() {
        let s = settings(&[("ENVIRONMENT", "production")]);
        assert!(matches!(
            Auditor::from_settings(&s),
            Err(AuditSetupError::MissingSecretKey)
        ));
    }

    #[test]
    fn development_without_secret_key_gets_an_ephemeral_key() {
        let s = settings(&[("ENVIRONMENT", "test")]);
        let auditor = Auditor::from_settings(&s).unwrap();
        assert!(auditor.key().is_ephemeral());
        assert!(format!("{auditor:?}").contains("ephemeral"));
        assert!(Auditor::for_operator(&s).is_err());
    }

    #[test]
    fn the_key_comes_from_secret_key() {
        let secret = "k".repeat(43);
        let s = settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", &secret)]);
        let auditor = Auditor::from_settings(&s).unwrap();
        assert!(!auditor.key().is_ephemeral());
        assert!(auditor.is_enabled());
        assert!(!format!("{auditor:?}").contains(&secret));
        let s = settings(&[("ENABLE_AUDIT_LOGGING", "false"), ("SECRET_KEY", &secret)]);
        assert!(!Auditor::for_operator(&s).unwrap().is_enabled());
    }

    #[test]
    fn windows_start_on_the_minute() {
        let at = time::macros::datetime!(2026-03-04 05:06:59.999 UTC);
        assert_eq!(
            minute_start(at),
            time::macros::datetime!(2026-03-04 05:06:00 UTC)
        );
    }
}
