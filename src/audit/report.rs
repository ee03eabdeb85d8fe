//! What verifying and pruning the chain found, as the CLI prints it and the admin API returns it.

use std::fmt;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::chain::{self, ChainStart, Failure};
use crate::clock::rfc3339;

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows that verified (all rows when `failure` is `None`).
    pub rows_verified: u64,
    /// The newest verified row: (id, hex hash). Note it elsewhere to detect later truncation.
    pub head: Option<(i64, String)>,
    /// The latest retention checkpoint, if the log was ever pruned.
    pub checkpoint: Option<CheckpointSummary>,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub id: i64,
    pub last_pruned_id: i64,
    pub pruned_before: OffsetDateTime,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }

    pub(super) fn head_start(&self) -> Option<ChainStart> {
        let (id, hash) = self.head.as_ref()?;
        let bytes = hex::decode(hash).ok()?;
        Some(ChainStart {
            next_id: id + 1,
            prev_hash: chain::Hash::try_from(bytes.as_slice()).ok()?,
        })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            None => write!(f, "OK: {} rows verified", self.rows_verified),
            Some(failure) => write!(
                f,
                "FAILED: {failure} ({} rows verified before it)",
                self.rows_verified
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneReport {
    Pruned {
        rows: u64,
        through_id: i64,
        last_pruned_hash: String,
        checkpoint_id: i64,
        before: OffsetDateTime,
    },
    /// No row (or no id prefix) is older than `before`.
    NothingToPrune { before: OffsetDateTime },
    /// The chain does not verify: nothing was removed, so the evidence stays.
    Refused(Failure),
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PruneReport::Pruned {
                rows,
                through_id,
                last_pruned_hash,
                checkpoint_id,
                before,
            } => write!(
                f,
                "pruned {rows} rows (ids up to {through_id}, before {before}); checkpoint \
                 {checkpoint_id} records the last pruned hash {last_pruned_hash}"
            ),
            PruneReport::NothingToPrune { before } => {
                write!(f, "nothing to prune: no rows before {before}")
            }
            PruneReport::Refused(failure) => write!(
                f,
                "refused: the chain does not verify ({failure}); nothing was pruned"
            ),
        }
    }
}

impl VerifyReport {
    /// The report as the admin API returns it.
    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.is_ok(),
            "rows_verified": self.rows_verified,
            "head": self.head.as_ref().map(|(id, hash)| json!({ "id": id, "hash": hash })),
            "checkpoint": self.checkpoint.as_ref().map(|c| json!({
                "id": c.id,
                "last_pruned_id": c.last_pruned_id,
                "pruned_before": rfc3339(c.pruned_before),
            })),
            "failure": self.failure.as_ref().map(|f| json!({
                "kind": f.kind.as_str(),
                "row_id": f.row_id,
                "message": f.message,
            })),
        })
    }
}
