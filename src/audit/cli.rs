//! The operator's audit commands (`rampart audit verify`, `rampart audit prune`): one line of
//! output each, an exit status scripts can use.

use diesel::PgConnection;
use time::OffsetDateTime;

use super::{Actor, Auditor, PruneReport, RequestMeta};
use crate::clock::rfc3339;

/// `rampart audit verify`: prints the report, records `audit.verified`, exits 0 only when the
/// chain verifies.
pub fn cli_verify(auditor: &Auditor, conn: &mut PgConnection) -> std::process::ExitCode {
    let report = match auditor.verify(conn) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: cannot read the audit log: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if report.is_ok() {
        println!("{report}");
    } else {
        eprintln!("{report}");
    }
    if let Some((id, hash)) = &report.head {
        println!("head: row {id}, hash {hash}");
    }
    if let Some(c) = &report.checkpoint {
        println!(
            "checkpoint {}: rows up to {} were pruned (before {})",
            c.id,
            c.last_pruned_id,
            rfc3339(c.pruned_before)
        );
    }
    if let Err(error) =
        auditor.record_verification(conn, &RequestMeta::none(), Actor::system(), &report)
    {
        eprintln!("warning: could not record audit.verified: {error}");
    }
    if report.is_ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// `rampart audit prune --before DATE`: exits 1 when the chain does not verify (nothing removed).
pub fn cli_prune(
    auditor: &Auditor,
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> std::process::ExitCode {
    match auditor.prune(conn, before) {
        Ok(report @ PruneReport::Refused(_)) => {
            eprintln!("{report}");
            std::process::ExitCode::FAILURE
        }
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: prune failed, nothing was removed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
