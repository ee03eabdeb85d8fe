//! The hash chain: the audit key, the canonical encoding of a row, its HMAC, and the verifier that
//! walks rows in id order and names the first one that does not verify. Pure: no I/O, no clock.
//!
//! `hash(row) = HMAC-SHA256(audit key, prev_hash ‖ encode(row))`, where `encode` is a
//! length-prefixed concatenation of every column except `hash` (id and timestamp included, so a
//! row cannot be moved or re-dated) with metadata in a canonical JSON form that survives the
//! round trip through `jsonb` (sorted keys, numbers by value). Columns added later
//! (`server_request_id`) follow, name-tagged, only when set: older rows, which lack them, encode
//! as they did when written and still verify, while a newer row's value cannot be cleared.
//!
//! Classification, for the first row that fails (ids are dense, so position is known):
//! - its MAC verifies but it does not continue the chain, and ids are missing before it →
//!   **deleted** (the rows in the gap);
//! - its MAC fails at its own id but verifies at another id → **reordered** (moved or swapped);
//! - its MAC fails, it links to its predecessor, and the next row links to its stored hash →
//!   **edited** (contents changed after writing, hash left alone);
//! - its MAC fails otherwise → **inserted** (forged: nothing written with the key chains to it);
//! - its MAC verifies, its id is the expected one, but it links elsewhere → **unlinked**
//!   (an authentic row from another chain or position, e.g. replayed from a copy).
//!
//! Tail truncation (deleting the newest rows) leaves a valid shorter chain; compare the reported
//! head with one recorded elsewhere to detect it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Number, Value};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::model::{AuditRow, Checkpoint, NewCheckpoint};
use crate::crypto::hmac::HmacKey;

pub const HASH_LEN: usize = 32;
pub type Hash = [u8; HASH_LEN];
/// `prev_hash` of the very first row, and `prev_mac` of the first checkpoint.
pub const GENESIS: Hash = [0; HASH_LEN];

const KEY_LABEL: &[u8] = b"rampart/audit-chain/v1";
const ROW_DOMAIN: &[u8] = b"rampart/audit-row/v1";
const CHECKPOINT_DOMAIN: &[u8] = b"rampart/audit-checkpoint/v1";
/// How far from its stored id a failing row's MAC is searched for, to recognise reordering.
const REORDER_WINDOW: i64 = 64;

/// The key of the chain, derived from SECRET_KEY: HMAC-SHA256(SECRET_KEY, "rampart/audit-chain/v1").
/// Holds only the keyed HMAC state (cloned per use); prints as redacted.
#[derive(Clone)]
pub struct AuditKey {
    key: HmacKey,
    ephemeral: bool,
}

impl AuditKey {
    pub fn derive(secret_key: &SecretString) -> AuditKey {
        AuditKey {
            key: HmacKey::new(secret_key.expose_secret().as_bytes()).derive(KEY_LABEL),
            ephemeral: false,
        }
    }

    /// A random key for development and tests without SECRET_KEY: rows it writes cannot be
    /// verified after a restart.
    pub fn ephemeral() -> Result<AuditKey, getrandom::Error> {
        Ok(AuditKey {
            key: HmacKey::random()?,
            ephemeral: true,
        })
    }

    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    fn mac(&self, parts: &[&[u8]]) -> Hash {
        self.key.mac(parts)
    }

    /// The key of the pseudonyms of names that belong to nobody known (see `pseudonym`).
    pub(super) fn pseudonym_key(&self) -> HmacKey {
        self.key.derive(b"rampart-audit-pseudonym-v1")
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ephemeral {
            f.write_str("AuditKey(ephemeral, ***REDACTED***)")
        } else {
            f.write_str("AuditKey(***REDACTED***)")
        }
    }
}

/// Length-prefixed fields, so no two different rows encode alike.
struct Encoder(Vec<u8>);

impl Encoder {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn opt(&mut self, value: Option<&str>) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.bytes(v.as_bytes());
            }
        }
    }

    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
}

/// Microseconds since the Unix epoch: the precision Postgres keeps.
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// `at` cut to whole microseconds, so the value hashed is the value stored.
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    at - time::Duration::nanoseconds(i64::from(at.nanosecond() % 1000))
}

/// The canonical encoding of `row` as if its id were `id` (everything hashed except `hash`).
fn encode_row(row: &AuditRow, id: i64) -> Vec<u8> {
    let mut e = Encoder(Vec::with_capacity(256));
    e.bytes(ROW_DOMAIN);
    e.i64(id);
    e.i64(unix_micros(row.occurred_at));
    e.bytes(row.actor_type.as_bytes());
    e.opt(row.actor_id.as_deref());
    e.bytes(row.action.as_bytes());
    e.bytes(row.outcome.as_bytes());
    e.opt(row.target_type.as_deref());
    e.opt(row.target_id.as_deref());
    let ip = row.ip.map(|net| net.to_string());
    e.opt(ip.as_deref());
    e.opt(row.user_agent.as_deref());
    e.opt(row.request_id.as_deref());
    e.bytes(canonical_json(&row.metadata).as_bytes());
    // Columns added after the first rows were written are appended only when set, tagged with
    // their name: a row without them encodes exactly as before (old rows still verify), and a
    // row with them cannot be made to verify by clearing them (the encoding would change).
    if let Some(server_request_id) = row.server_request_id.as_deref() {
        e.bytes(b"server_request_id");
        e.bytes(server_request_id.as_bytes());
    }
    e.0
}

/// HMAC of `row` (its `prev_hash` and fields; its `hash` is ignored).
pub fn row_hash(key: &AuditKey, row: &AuditRow) -> Hash {
    row_hash_as(key, row, row.id)
}

fn row_hash_as(key: &AuditKey, row: &AuditRow, id: i64) -> Hash {
    key.mac(&[&row.prev_hash, &encode_row(row, id)])
}

/// The MAC of a checkpoint, chained to the previous checkpoint's MAC.
pub fn checkpoint_mac(key: &AuditKey, c: &NewCheckpoint) -> Hash {
    let mut e = Encoder(Vec::with_capacity(128));
    e.bytes(CHECKPOINT_DOMAIN);
    e.i64(unix_micros(c.created_at));
    e.i64(unix_micros(c.pruned_before));
    e.i64(c.last_pruned_id);
    e.bytes(&c.last_pruned_hash);
    e.i64(c.pruned_count);
    key.mac(&[&c.prev_mac, &e.0])
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// JSON with object keys sorted by their UTF-8 bytes, no whitespace, and numbers written by value
/// (`5.0` and `5` alike, `-0.0` as `0`, integral floats as integers), so that what `jsonb` hands
/// back — reordered keys, `1e16` spelt out, `-0.0` as `0.0` — encodes exactly as what was written.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn canonical_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    if f == 0.0 {
        return "0".into();
    }
    // 2^63 and 2^64 are exact in f64; integral values below them convert exactly.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f.fract() == 0.0 {
        if (-TWO_63..TWO_63).contains(&f) {
            return (f as i64).to_string();
        }
        if (0.0..TWO_64).contains(&f) {
            return (f as u64).to_string();
        }
    }
    format!("{f:?}")
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Where the retained chain starts: genesis, or just after the latest checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStart {
    pub next_id: i64,
    pub prev_hash: Hash,
}

impl ChainStart {
    pub const GENESIS: ChainStart = ChainStart {
        next_id: 1,
        prev_hash: GENESIS,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A row's contents were changed after it was written.
    Edited,
    /// Rows are missing.
    Deleted,
    /// A row sits at an id other than the one it was written with.
    Reordered,
    /// A row was not written with the audit key.
    Inserted,
    /// An authentic row that does not continue this chain.
    Unlinked,
    /// A retention checkpoint does not verify.
    Checkpoint,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Edited => "edited",
            FailureKind::Deleted => "deleted",
            FailureKind::Reordered => "reordered",
            FailureKind::Inserted => "inserted",
            FailureKind::Unlinked => "unlinked",
            FailureKind::Checkpoint => "checkpoint",
        }
    }
}

/// The first thing that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The first bad row (for `Deleted`, the first row after the gap; for `Checkpoint`, `None`).
    pub row_id: Option<i64>,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row_id {
            Some(id) => write!(f, "row {id}: {}: {}", self.kind.as_str(), self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

/// Checks the retention checkpoints (oldest first) and returns where the retained chain starts.
pub fn verify_checkpoints(
    key: &AuditKey,
    checkpoints: &[Checkpoint],
) -> Result<ChainStart, Failure> {
    let mut prev_mac = GENESIS.to_vec();
    let mut start = ChainStart::GENESIS;
    for c in checkpoints {
        let fields = NewCheckpoint {
            created_at: c.created_at,
            pruned_before: c.pruned_before,
            last_pruned_id: c.last_pruned_id,
            last_pruned_hash: c.last_pruned_hash.clone(),
            pruned_count: c.pruned_count,
            prev_mac: c.prev_mac.clone(),
            mac: Vec::new(),
        };
        let fail = |message: String| Failure {
            kind: FailureKind::Checkpoint,
            row_id: None,
            message,
        };
        if !eq(&checkpoint_mac(key, &fields), &c.mac) {
            return Err(fail(format!(
                "checkpoint {} is not authentic (forged or edited)",
                c.id
            )));
        }
        if !eq(&c.prev_mac, &prev_mac) {
            return Err(fail(format!(
                "checkpoint {} does not follow the previous checkpoint (one was deleted)",
                c.id
            )));
        }
        if c.last_pruned_id < start.next_id - 1 {
            return Err(fail(format!(
                "checkpoint {} goes back to id {}",
                c.id, c.last_pruned_id
            )));
        }
        let Ok(hash) = Hash::try_from(c.last_pruned_hash.as_slice()) else {
            return Err(fail(format!("checkpoint {} has a malformed hash", c.id)));
        };
        start = ChainStart {
            next_id: c.last_pruned_id + 1,
            prev_hash: hash,
        };
        prev_mac = c.mac.clone();
    }
    Ok(start)
}

/// A row whose MAC failed though it sits where the chain expects it: edited if the next row still
/// links to its stored hash, inserted otherwise.
#[derive(Debug, Clone)]
struct Suspect {
    id: i64,
    hash: Vec<u8>,
}

/// Walks rows in ascending id order. Feed rows with `push` until it returns `false`, then
/// `finish`.
#[derive(Debug)]
pub struct Verifier<'k> {
    key: &'k AuditKey,
    next_id: i64,
    prev_hash: Vec<u8>,
    verified: u64,
    suspect: Option<Suspect>,
    failure: Option<Failure>,
    head: Option<(i64, Vec<u8>)>,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Rows that verified, in order, before the first failure (all of them when it passed).
    pub verified: u64,
    /// The last verified row: (id, hash).
    pub head: Option<(i64, Hash)>,
    pub failure: Option<Failure>,
}

impl<'k> Verifier<'k> {
    pub fn new(key: &'k AuditKey, start: ChainStart) -> Verifier<'k> {
        Verifier {
            key,
            next_id: start.next_id,
            prev_hash: start.prev_hash.to_vec(),
            verified: 0,
            suspect: None,
            failure: None,
            head: None,
        }
    }

    fn fail(&mut self, kind: FailureKind, row_id: i64, message: String) -> bool {
        self.failure = Some(Failure {
            kind,
            row_id: Some(row_id),
            message,
        });
        false
    }

    /// Checks the next row; `false` once a failure has been found (stop feeding).
    pub fn push(&mut self, row: &AuditRow) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if let Some(suspect) = self.suspect.take() {
            return if eq(&row.prev_hash, &suspect.hash) {
                self.fail(
                    FailureKind::Edited,
                    suspect.id,
                    "its contents changed after it was written (the hash no longer matches)".into(),
                )
            } else {
                self.fail(
                    FailureKind::Inserted,
                    suspect.id,
                    "it was not written with the audit key and the chain does not continue \
                     from it (a forged row was inserted)"
                        .into(),
                )
            };
        }
        let authentic = eq(&row_hash(self.key, row), &row.hash);
        let links = eq(&row.prev_hash, &self.prev_hash);
        if row.id < self.next_id {
            return self.fail(
                FailureKind::Inserted,
                row.id,
                format!(
                    "the chain continues at id {}, but this row has a lower id (rows up to {} \
                     were pruned; this one was inserted afterwards)",
                    self.next_id,
                    self.next_id - 1
                ),
            );
        }
        if authentic {
            if row.id > self.next_id {
                let (from, to) = (self.next_id, row.id - 1);
                let which = if from == to {
                    format!("row {from} is missing")
                } else {
                    format!("rows {from}..={to} are missing")
                };
                return self.fail(
                    FailureKind::Deleted,
                    row.id,
                    format!("{which}: it was deleted"),
                );
            }
            if !links {
                return self.fail(
                    FailureKind::Unlinked,
                    row.id,
                    "an authentic row that does not continue the chain from the previous row \
                     (copied from another chain or position)"
                        .into(),
                );
            }
            self.accept(row);
            return true;
        }
        let lowest = (row.id - REORDER_WINDOW).max(1);
        if let Some(written_as) = (lowest..=row.id + REORDER_WINDOW)
            .filter(|id| *id != row.id)
            .find(|id| eq(&row_hash_as(self.key, row, *id), &row.hash))
        {
            return self.fail(
                FailureKind::Reordered,
                row.id,
                format!(
                    "it holds the record written as row {written_as} (rows were moved or swapped)"
                ),
            );
        }
        if row.id == self.next_id && links {
            // Edited or inserted: the next row decides.
            self.suspect = Some(Suspect {
                id: row.id,
                hash: row.hash.clone(),
            });
            return true;
        }
        if row.id > self.next_id {
            let missing = if row.id - 1 == self.next_id {
                format!("row {} is missing", self.next_id)
            } else {
                format!("rows {}..={} are missing", self.next_id, row.id - 1)
            };
            return self.fail(
                FailureKind::Inserted,
                row.id,
                format!("it was not written with the audit key, and {missing}"),
            );
        }
        self.fail(
            FailureKind::Inserted,
            row.id,
            "it was not written with the audit key and does not link to the previous row \
             (a forged row was inserted, or a row was rewritten together with its links)"
                .into(),
        )
    }

    fn accept(&mut self, row: &AuditRow) {
        self.verified += 1;
        self.next_id = row.id + 1;
        self.prev_hash = row.hash.clone();
        self.head = Some((row.id, row.hash.clone()));
    }

    pub fn finish(mut self) -> ChainReport {
        if self.failure.is_none()
            && let Some(suspect) = self.suspect.take()
        {
            self.failure = Some(Failure {
                kind: FailureKind::Inserted,
                row_id: Some(suspect.id),
                message: "the newest row was not written with the audit key (a forged row was \
                          appended, or the row was edited together with its hash)"
                    .into(),
            });
        }
        ChainReport {
            verified: self.verified,
            head: self
                .head
                .and_then(|(id, hash)| Hash::try_from(hash.as_slice()).ok().map(|h| (id, h))),
            failure: self.failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn key() -> AuditKey {
        AuditKey::derive(&SecretString::from("test-secret-key-for-unit-tests-only"))
    }

    fn row(id: i64, prev: &[u8], key: &AuditKey) -> AuditRow {
        let mut row = AuditRow {
            id,
            occurred_at: datetime!(2026-01-01 12:00:00.123456 UTC) + time::Duration::seconds(id),
            actor_type: "user".into(),
            actor_id: Some(format!("user-{id}")),
            action: "auth.login.failed".into(),
            outcome: "failure".into(),
            target_type: Some("user".into()),
            target_id: Some("t".into()),
            ip: Some("203.0.113.7/32".parse().unwrap()),
            user_agent: Some("ua".into()),
            request_id: Some("req".into()),
            server_request_id: None,
            metadata: json!({"n": id, "b": [1, 2.5, "x"]}),
            prev_hash: prev.to_vec(),
            hash: Vec::new(),
        };
        row.hash = row_hash(key, &row).to_vec();
        row
    }

    fn chain(n: i64, key: &AuditKey) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        let mut prev = GENESIS.to_vec();
        for id in 1..=n {
            let r = row(id, &prev, key);
            prev = r.hash.clone();
            rows.push(r);
        }
        rows
    }

    fn walk(rows: &[AuditRow], key: &AuditKey) -> ChainReport {
        let mut v = Verifier::new(key, ChainStart::GENESIS);
        for r in rows {
            if !v.push(r) {
                break;
            }
        }
        v.finish()
    }

    fn failure(rows: &[AuditRow], key: &AuditKey) -> (FailureKind, i64) {
        let f = walk(rows, key).failure.expect("expected a failure");
        (f.kind, f.row_id.unwrap())
    }

    #[test]
    fn key_derivation_is_hmac_of_the_label() {
        use hmac::{Hmac, KeyInit, Mac};
        type HmacSha256 = Hmac<sha2::Sha256>;
        let secret = "s".repeat(43);
        let mut expected = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        expected.update(b"rampart/audit-chain/v1");
        let derived = expected.finalize().into_bytes();
        let key = AuditKey::derive(&SecretString::from(secret));
        let mut direct = HmacSha256::new_from_slice(&derived).unwrap();
        direct.update(b"x");
        assert_eq!(
            key.mac(&[b"x"]).as_slice(),
            direct.finalize().into_bytes().as_slice()
        );
        assert_eq!(format!("{key:?}"), "AuditKey(***REDACTED***)");
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let a = AuditKey::derive(&SecretString::from("a".repeat(40)));
        let b = AuditKey::derive(&SecretString::from("b".repeat(40)));
        assert_ne!(a.mac(&[b"x"]), b.mac(&[b"x"]));
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let key = key();
        let base = row(5, &[7u8; 32], &key);
        let h = row_hash(&key, &base);
        let variants: Vec<fn(&mut AuditRow)> = vec![
            |r| r.id = 6,
            |r| r.occurred_at += time::Duration::microseconds(1),
            |r| r.actor_type = "admin".into(),
            |r| r.actor_id = None,
            |r| r.action = "auth.login.succeeded".into(),
            |r| r.outcome = "success".into(),
            |r| r.target_type = None,
            |r| r.target_id = Some("u".into()),
            |r| r.ip = Some("203.0.113.8/32".parse().unwrap()),
            |r| r.user_agent = Some("ub".into()),
            |r| r.request_id = None,
            |r| r.server_request_id = Some("server".into()),
            |r| r.metadata["n"] = json!(6),
            |r| r.prev_hash[0] ^= 1,
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(row_hash(&key, &r), h, "variant {i} not covered");
        }
    }

    #[test]
    fn rows_without_a_server_request_id_hash_exactly_as_before_the_column_existed() {
        // Computed independently (Python's hmac) from the v1 encoding, which has no
        // server_request_id: rows written before the column was added must keep verifying.
        let key = key();
        let old = row(5, &[7u8; 32], &key);
        assert_eq!(
            hex::encode(row_hash(&key, &old)),
            "a3bbfe10bf621042cba46e4f58675761d28ec505c29ae916c591f8c9e257f31d"
        );
    }

    #[test]
    fn a_server_request_id_is_covered_and_cannot_be_cleared_or_moved() {
        let key = key();
        let mut new = row(5, &[7u8; 32], &key);
        new.server_request_id = Some("0193a1b2-0000-7000-8000-00000000beef".into());
        new.hash = row_hash(&key, &new).to_vec();
        let mut rows = [new.clone()];
        let start = ChainStart {
            next_id: 5,
            prev_hash: [7u8; 32],
        };
        let mut verifier = Verifier::new(&key, start);
        verifier.push(&rows[0]);
        assert!(verifier.finish().failure.is_none());
        for change in [
            |r: &mut AuditRow| r.server_request_id = None,
            |r: &mut AuditRow| {
                r.server_request_id = Some("0193a1b2-0000-7000-8000-00000000beee".into())
            },
            |r: &mut AuditRow| r.server_request_id = Some(String::new()),
            // The client's id and the server's cannot be swapped.
            |r: &mut AuditRow| {
                std::mem::swap(&mut r.request_id, &mut r.server_request_id);
            },
        ] {
            rows[0] = new.clone();
            change(&mut rows[0]);
            assert_ne!(row_hash(&key, &rows[0]).to_vec(), new.hash);
            let mut verifier = Verifier::new(&key, start);
            verifier.push(&rows[0]);
            assert!(verifier.finish().failure.is_some());
        }
    }

    #[test]
    fn optional_fields_do_not_alias() {
        let key = key();
        let mut a = row(1, &GENESIS, &key);
        let mut b = a.clone();
        a.actor_id = Some(String::new());
        b.actor_id = None;
        assert_ne!(row_hash(&key, &a), row_hash(&key, &b));
        a.actor_id = Some("ab".into());
        a.target_type = Some("c".into());
        b.actor_id = Some("a".into());
        b.target_type = Some("bc".into());
        assert_ne!(row_hash(&key, &a), row_hash(&key, &b));
    }

    #[test]
    fn canonical_json_sorts_keys_and_normalises_numbers() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "q\"\\\n\u{1}é"}, "ab": 5.0});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":"q\"\\\u000a\u0001é","z":[true,null]},"ab":5,"b":1}"#
        );
        // What jsonb hands back for what was written.
        for (written, read_back) in [
            ("1e16", "10000000000000000"),
            ("-1e16", "-10000000000000000"),
            ("-0.0", "0.0"),
            ("5.0", "5"),
            ("1.5e-7", "0.00000015"),
            ("1e300", &format!("1{}", "0".repeat(300))),
            ("18446744073709551615", "18446744073709551615"),
            ("1.8446744073709552e19", "18446744073709552000"),
        ] {
            let w: Value = serde_json::from_str(written).unwrap();
            let r: Value = serde_json::from_str(read_back).unwrap();
            assert_eq!(
                canonical_json(&w),
                canonical_json(&r),
                "{written} vs {read_back}"
            );
        }
        assert_ne!(canonical_json(&json!(0.1)), canonical_json(&json!(0.2)));
    }

    #[test]
    fn an_intact_chain_verifies() {
        let key = key();
        let rows = chain(10, &key);
        let report = walk(&rows, &key);
        assert_eq!(report.failure, None);
        assert_eq!(report.verified, 10);
        assert_eq!(report.head.unwrap().0, 10);
    }

    #[test]
    fn an_empty_chain_verifies() {
        let key = key();
        let report = walk(&[], &key);
        assert_eq!(report.verified, 0);
        assert_eq!(report.failure, None);
    }

    #[test]
    fn an_edited_row_is_named() {
        let key = key();
        let mut rows = chain(10, &key);
        rows[3].metadata = json!({"n": 999});
        assert_eq!(failure(&rows, &key), (FailureKind::Edited, 4));
    }

    #[test]
    fn a_deleted_row_is_named() {
        let key = key();
        let mut rows = chain(10, &key);
        rows.remove(4);
        let f = walk(&rows, &key).failure.unwrap();
        assert_eq!((f.kind, f.row_id), (FailureKind::Deleted, Some(6)));
        assert!(f.message.contains("row 5 is missing"), "{}", f.message);
        let mut rows = chain(10, &key);
        rows.drain(0..3);
        assert_eq!(failure(&rows, &key), (FailureKind::Deleted, 4));
    }

    #[test]
    fn a_swapped_pair_is_named() {
        let key = key();
        let mut rows = chain(10, &key);
        rows[2].id = 4;
        rows[3].id = 3;
        rows.swap(2, 3);
        let f = walk(&rows, &key).failure.unwrap();
        assert_eq!((f.kind, f.row_id), (FailureKind::Reordered, Some(3)));
        assert!(f.message.contains("written as row 4"), "{}", f.message);
    }

    #[test]
    fn a_forged_row_is_named() {
        let key = key();
        let other = AuditKey::derive(&SecretString::from("another-key-entirely-xxxxxxxxxxx"));
        // Appended at the end, linked to the real head.
        let mut rows = chain(5, &key);
        let forged = row(6, &rows[4].hash, &other);
        rows.push(forged);
        assert_eq!(failure(&rows, &key), (FailureKind::Inserted, 6));
        // In place of a deleted row: linked backwards, but nothing chains from it.
        let mut rows = chain(8, &key);
        rows[4] = row(5, &rows[3].hash, &other);
        assert_eq!(failure(&rows, &key), (FailureKind::Inserted, 5));
        // With an id below the checkpoint.
        let rows = chain(8, &key);
        let mut v = Verifier::new(
            &key,
            ChainStart {
                next_id: 5,
                prev_hash: Hash::try_from(rows[3].hash.as_slice()).unwrap(),
            },
        );
        assert!(!v.push(&rows[2]));
        assert_eq!(v.finish().failure.unwrap().kind, FailureKind::Inserted);
    }

    #[test]
    fn an_authentic_row_out_of_place_is_unlinked() {
        let key = key();
        let rows = chain(5, &key);
        let elsewhere = row(3, &[9u8; 32], &key);
        let tampered = vec![rows[0].clone(), rows[1].clone(), elsewhere];
        assert_eq!(failure(&tampered, &key), (FailureKind::Unlinked, 3));
    }

    #[test]
    fn verification_resumes_after_a_checkpoint() {
        let key = key();
        let rows = chain(10, &key);
        let mut cp = NewCheckpoint {
            created_at: datetime!(2026-02-01 0:00 UTC),
            pruned_before: datetime!(2026-01-15 0:00 UTC),
            last_pruned_id: 4,
            last_pruned_hash: rows[3].hash.clone(),
            pruned_count: 4,
            prev_mac: GENESIS.to_vec(),
            mac: Vec::new(),
        };
        cp.mac = checkpoint_mac(&key, &cp).to_vec();
        let stored = Checkpoint {
            id: 1,
            created_at: cp.created_at,
            pruned_before: cp.pruned_before,
            last_pruned_id: cp.last_pruned_id,
            last_pruned_hash: cp.last_pruned_hash.clone(),
            pruned_count: cp.pruned_count,
            prev_mac: cp.prev_mac.clone(),
            mac: cp.mac.clone(),
        };
        let start = verify_checkpoints(&key, std::slice::from_ref(&stored)).unwrap();
        assert_eq!(start.next_id, 5);
        let mut v = Verifier::new(&key, start);
        for r in &rows[4..] {
            assert!(v.push(r));
        }
        let report = v.finish();
        assert_eq!(report.failure, None);
        assert_eq!(report.verified, 6);

        let mut forged = stored.clone();
        forged.last_pruned_id = 6;
        let f = verify_checkpoints(&key, &[forged]).unwrap_err();
        assert_eq!(f.kind, FailureKind::Checkpoint);
        // A second checkpoint whose predecessor was removed.
        let mut second = stored.clone();
        second.id = 2;
        second.prev_mac = vec![1u8; 32];
        assert!(verify_checkpoints(&key, &[second]).is_err());
    }

    #[test]
    fn timestamps_are_hashed_at_postgres_precision() {
        let at = datetime!(2026-01-01 0:00:00.123456789 UTC);
        let cut = truncate_to_micros(at);
        assert_eq!(cut, datetime!(2026-01-01 0:00:00.123456 UTC));
        assert_eq!(unix_micros(cut), unix_micros(at));
    }
}
