//! The operator's privacy commands: `rampart users erase ID --reason R` and
//! `rampart users erasure-report ID`. They call the same service as the API and the console.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use diesel::{Connection, PgConnection};
use uuid::Uuid;

use super::{Erasure, PrivacyError};
use crate::audit::{Actor, Auditor, RequestMeta};
use crate::config::Settings;

fn cli_meta() -> RequestMeta {
    RequestMeta {
        ip: None,
        user_agent: Some("rampart-cli".into()),
        request_id: None,
        server_request_id: None,
    }
}

/// The user named by `id`: a uuid, or a username.
fn resolve(conn: &mut PgConnection, id: &str) -> Result<Option<crate::users::User>, String> {
    let found = match Uuid::parse_str(id.trim()) {
        Ok(uuid) => crate::users::store::find(conn, uuid),
        Err(_) => crate::users::store::find_by_username(conn, id.trim()),
    };
    found.map_err(|e| format!("the database refused the lookup: {e}"))
}

/// `rampart users erase ID --reason R [--yes]`. On a terminal without `--yes` the operator types
/// the username to confirm; elsewhere `--yes` is required. Exit 0 when erased (or already),
/// 1 when refused or not found, 2 for a bad invocation.
pub fn cli_erase(
    settings: &Settings,
    auditor: &Auditor,
    conn: &mut PgConnection,
    id: &str,
    reason: &str,
    yes: bool,
) -> ExitCode {
    let reason = match crate::audit::admin_reason(Some(reason), true) {
        Ok(Some(reason)) => reason,
        Ok(None) | Err(_) => {
            eprintln!("error: --reason must be 1-500 characters of text");
            return ExitCode::from(2);
        }
    };
    let user = match resolve(conn, id) {
        Ok(Some(user)) => user,
        Ok(None) => {
            eprintln!("error: no user {id}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if user.erased_at.is_some() {
        println!("user {} was already erased: nothing to do", user.id);
        return ExitCode::SUCCESS;
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "error: erasure cannot be undone; pass --yes to confirm (no terminal to ask)"
            );
            return ExitCode::from(2);
        }
        print!(
            "Erase {} ({}) for good? Type the username to confirm: ",
            user.username, user.id
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() || answer.trim() != user.username
        {
            eprintln!("error: not confirmed; nothing was changed");
            return ExitCode::FAILURE;
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let meta = cli_meta();
    let outcome = conn.transaction::<_, PrivacyError, _>(|conn| {
        super::erase_in_tx(
            conn,
            auditor,
            &meta,
            Erasure {
                user_id: user.id,
                actor: Actor::system(),
                by: None,
                reason: Some(reason.clone()),
                via: "cli",
                extra: crate::audit::operator_origin(),
            },
            settings.super_admin_email.as_deref(),
            now,
        )
    });
    match outcome {
        Ok(erased) if erased.already => {
            println!("user {} was already erased: nothing to do", user.id);
            ExitCode::SUCCESS
        }
        Ok(erased) => {
            println!(
                "erased user {}: {} sessions ended, {} API keys revoked, {} identities unlinked, \
                 data key destroyed; audited as user.erased",
                erased.user_id,
                erased.sessions_revoked,
                erased.api_keys_revoked,
                erased.identities_unlinked
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", error.sentence());
            ExitCode::FAILURE
        }
    }
}

/// `rampart users erasure-report ID [--json]`: what remains about the user, rows by table.
pub fn cli_erasure_report(conn: &mut PgConnection, id: &str, as_json: bool) -> ExitCode {
    let user = match resolve(conn, id) {
        Ok(Some(user)) => user,
        Ok(None) => {
            eprintln!("error: no user {id}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match super::erasure_report(conn, user.id) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {}", error.sentence());
            return ExitCode::FAILURE;
        }
    };
    if as_json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    println!("user:               {}", report.user_id);
    println!("username:           {}", report.username);
    println!(
        "erased at:          {}",
        report
            .erased_at
            .map_or_else(|| "not erased".to_string(), crate::clock::rfc3339)
    );
    println!(
        "data key:           {}",
        if report.data_key_present {
            "present (content readable)"
        } else {
            "destroyed or never created"
        }
    );
    println!(
        "audit salt:         {}",
        if report.audit_salt_present {
            "present"
        } else {
            "destroyed or never created"
        }
    );
    println!("rows that still refer to the user:");
    for row in &report.tables {
        println!(
            "  {:<22} {:<16} {:>8}  {}",
            row.table, row.column, row.rows, row.shows
        );
    }
    ExitCode::SUCCESS
}
