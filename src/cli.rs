//! The `rampart` command line. Each command loads the configuration and calls one function of the
//! module that owns the work; nothing here decides policy.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};
use secrecy::ExposeSecret;

use crate::config::settings::redact_url_password;
use crate::config::{Environment, Settings};
use crate::crypto::keyring::KeyRing;
use crate::db::migrations;
use crate::users::data_keys;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "A security-first backend service: JSON API, admin console and operator CLI in one binary.",
    long_about = "A security-first backend service: JSON API, admin console and operator CLI in one binary.\n\n\
Configuration comes from config/default.toml, config/<ENVIRONMENT>.toml, a .env file (development \
only) and environment variables, later ones winning. Start with `rampart keygen > .env`, then \
`rampart check-config`, then `rampart serve`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and run the HTTP server.
    ///
    /// In production any configuration problem stops the start (all of them are listed). In
    /// development they are printed as warnings, pending migrations are applied at start
    /// (DATABASE_MIGRATE_ON_START) and the database is waited for up to
    /// DATABASE_STARTUP_WAIT_SECONDS. In test and production the server binds without the
    /// database: /health answers at once and /ready reports 503 until the database does.
    Serve,
    /// Apply pending database migrations (or revert the latest with --revert).
    Migrate {
        /// Revert the most recently applied migration instead of applying pending ones.
        #[arg(long)]
        revert: bool,
    },
    /// Print a ready-to-paste .env block of fresh secrets from the operating system's RNG.
    ///
    /// Includes a valid Fernet ENCRYPTION_KEY. Redirect it into your secret store or
    /// `rampart keygen >> .env`; never commit the output.
    Keygen,
    /// Check the configuration for weak, missing or unsafe settings and list every problem.
    ///
    /// Exits 1 when there are problems in production (or with --strict in any environment),
    /// 2 when the configuration cannot be loaded at all. Secret values are never printed.
    CheckConfig {
        /// Treat problems as errors whatever the environment.
        #[arg(long)]
        strict: bool,
    },
    /// Inspect the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create an administrator account.
    ///
    /// The password is read from stdin with --password-stdin (first line, used exactly as typed),
    /// or generated and printed once. With --if-no-admin nothing happens when an admin exists
    /// (used by `make run` to bootstrap the first admin once).
    ///
    /// With --promote USER (a username or email), an existing account is made an admin instead:
    /// the way to grant admin to someone who registered an ADMIN_EMAILS address themselves
    /// (registration never grants it). Example: `rampart create-admin --promote alice`.
    CreateAdmin {
        #[arg(long, required_unless_present = "promote", conflicts_with = "promote")]
        username: Option<String>,
        #[arg(long, required_unless_present = "promote", conflicts_with = "promote")]
        email: Option<String>,
        /// Make this existing account (username or email) an admin.
        #[arg(long, value_name = "USER", conflicts_with_all = ["password_stdin", "if_no_admin"])]
        promote: Option<String>,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Do nothing (successfully) if any admin account already exists.
        #[arg(long)]
        if_no_admin: bool,
    },
    /// Verify or prune the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage user accounts from the command line.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Maintain the webhook inbox (Stripe, Clerk).
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Maintain conversations (message retention).
    Conversations {
        #[command(subcommand)]
        command: ConversationsCommand,
    },
    /// Encryption at rest: the master keys that wrap the per-user data keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// Delete messages and attachments older than MESSAGE_RETENTION_DAYS (also done hourly by a
    /// running service). Each batch of 1000 is deleted and audited (`message.pruned`) together.
    ///
    /// Example: `MESSAGE_RETENTION_DAYS=365 rampart conversations prune`
    Prune,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Live data keys per master key id (configured or not, which one is current) and how many
    /// were destroyed. Master keys are shown by id (a fingerprint), never by value.
    Status {
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-wrap every data key still under a key in ENCRYPTION_KEYS_PREVIOUS under ENCRYPTION_KEY.
    ///
    /// Works in batches, each its own audited transaction (`encryption.rotated`): interrupted at
    /// any point it loses nothing, and running it again continues. A progress bar on a terminal,
    /// `rewrapped N/M` lines otherwise; then what is left under which key. Exit 0 when every live
    /// data key is under ENCRYPTION_KEY, 1 when some are left (corrupt wraps, listed by id, or keys
    /// under a master key that is not configured).
    RotateEncryption {
        /// Data keys re-wrapped per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
        /// Print one JSON document at the end (progress goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Delete deliveries older than WEBHOOK_RETENTION_DAYS (also done at every start).
    Prune,
    /// Re-run the processing of a delivery whose processing failed.
    ///
    /// Uses the stored, already verified body (no new signature check). Only `failed` deliveries
    /// are replayed; the replay is audited. Exit 0 when it is processed (or ignored) now, 1 when it
    /// failed again (the reason is printed) or cannot be replayed.
    Replay {
        /// The delivery's id (a UUID, as shown in the console).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain and report the first row that does not verify.
    ///
    /// Prints `OK: N rows verified` (exit 0), or the first bad row and why — edited, deleted,
    /// reordered, inserted — (exit 1). Needs SECRET_KEY (the chain's key is derived from it).
    /// Appends an `audit.verified` row recording the result.
    Verify,
    /// Remove audit rows older than a date, keeping the rest verifiable.
    ///
    /// Removes the oldest rows that occurred before DATE, records a checkpoint (the last removed
    /// row's hash, authenticated with the audit key) and an `audit.pruned` row. Refuses, removing
    /// nothing, when the chain does not verify.
    Prune {
        /// YYYY-MM-DD (midnight UTC) or an RFC 3339 timestamp.
        #[arg(long)]
        before: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Import accounts from an older system, keeping their password hashes.
    ///
    /// FILE is CSV: username,email,password_hash[,role] (an optional header line is skipped).
    /// Hashes may be argon2 (PHC strings) or bcrypt ($2a$/$2b$/$2y$, cost 10–14); they are
    /// upgraded to argon2id at each user's next successful login. The whole file is checked
    /// first: if any row is bad, nothing is imported, every bad row is listed with its line
    /// number, and the exit status is 1.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
    /// Erase an account for good (crypto-shredding): its sessions end, its keys are revoked, its
    /// data key is destroyed (its messages become unreadable everywhere), its username and email
    /// become a `deleted-…` tombstone. Audited as `user.erased`. Cannot be undone.
    ///
    /// Example: rampart users erase alice --reason "GDPR request #1234" --yes
    Erase {
        /// The user's id or username.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Remove a user's second factor (TOTP and recovery codes) when they lost it: their API and
    /// console sessions end, and they sign in with their password alone until they enrol again.
    /// Audited as `mfa.reset` with the reason, the OS user and the host. The console cannot do
    /// this.
    ///
    /// Example: rampart users reset-mfa alice --reason "lost phone, identity checked by ticket #88"
    ResetMfa {
        /// The user's id or username.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// What remains about a user (rows by table, all pseudonymous after erasure): the evidence
    /// for an erasure request.
    ///
    /// Example: rampart users erasure-report 0192f0c4-…-7c1e --json
    ErasureReport {
        /// The user's id or username.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, each secret shown as ***REDACTED***, with where each
    /// non-default value came from.
    Show,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => keygen(),
        Command::Serve => with_settings(|settings| match crate::serve::serve(settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }),
        Command::Migrate { revert } => with_settings(|settings| migrate(&settings, revert)),
        Command::CheckConfig { strict } => {
            with_settings(|settings| check_config(&settings, strict))
        }
        Command::CreateAdmin {
            username,
            email,
            promote,
            password_stdin,
            if_no_admin,
        } => with_settings(|settings| match (promote, username, email) {
            (Some(login), _, _) => promote_admin(&settings, &login),
            (None, Some(username), Some(email)) => {
                create_admin(&settings, &username, &email, password_stdin, if_no_admin)
            }
            _ => {
                eprintln!("error: create-admin needs --username and --email, or --promote USER");
                ExitCode::from(2)
            }
        }),
        Command::Users {
            command: UsersCommand::Import { file },
        } => with_settings(|settings| import_users(&settings, &file)),
        Command::Users {
            command: UsersCommand::Erase { id, reason, yes },
        } => with_settings(|settings| {
            let (Some(mut conn), Some(auditor)) = (connect(&settings), auditor(&settings)) else {
                return ExitCode::FAILURE;
            };
            crate::privacy::cli::cli_erase(&settings, &auditor, &mut conn, &id, &reason, yes)
        }),
        Command::Users {
            command: UsersCommand::ResetMfa { id, reason },
        } => with_settings(|settings| {
            let (Some(mut conn), Some(auditor)) = (connect(&settings), auditor(&settings)) else {
                return ExitCode::FAILURE;
            };
            crate::accounts::cli::cli_reset_mfa(&settings, &auditor, &mut conn, &id, &reason)
        }),
        Command::Users {
            command: UsersCommand::ErasureReport { id, json },
        } => with_settings(|settings| {
            let Some(mut conn) = connect(&settings) else {
                return ExitCode::FAILURE;
            };
            crate::privacy::cli::cli_erasure_report(&mut conn, &id, json)
        }),
        Command::Audit { command } => with_settings(|settings| audit(&settings, command)),
        Command::Webhooks { command } => with_settings(|settings| webhooks(&settings, command)),
        Command::Conversations { command } => {
            with_settings(|settings| conversations(&settings, command))
        }
        Command::Keys { command } => with_settings(|settings| keys(&settings, command)),
        Command::Config {
            command: ConfigCommand::Show,
        } => with_settings(|settings| {
            println!("# effective configuration ({})", settings.environment);
            for line in settings.redacted_lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }),
    }
}

fn with_settings(f: impl FnOnce(Settings) -> ExitCode) -> ExitCode {
    match Settings::load() {
        Ok(settings) => f(settings),
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            ExitCode::from(2)
        }
    }
}

fn keygen() -> ExitCode {
    match crate::crypto::random::env_block() {
        Ok(block) => {
            print!("{block}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: the operating system's random number generator failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(settings: &Settings, strict: bool) -> ExitCode {
    let problems = crate::serve::report_problems(settings);
    // Data keys under a master key that is no longer configured are unreadable whatever the
    // environment: an error, not a warning.
    let lost = unconfigured_master_key_problems(settings);
    for problem in &lost {
        eprintln!("error: {problem}");
    }
    if !lost.is_empty() {
        eprintln!(
            "{} master key(s) missing: content encrypted under them cannot be read",
            lost.len()
        );
        return ExitCode::FAILURE;
    }
    let fatal = strict || settings.environment == Environment::Production;
    if problems == 0 {
        println!("configuration OK ({})", settings.environment);
        ExitCode::SUCCESS
    } else if fatal {
        eprintln!(
            "{problems} problem(s): {} would refuse to start",
            settings.environment
        );
        ExitCode::FAILURE
    } else {
        eprintln!(
            "{problems} warning(s) in {}; production would refuse to start with them",
            settings.environment
        );
        ExitCode::SUCCESS
    }
}

/// One direct connection for an operator command, or a printed error.
fn connect(settings: &Settings) -> Option<PgConnection> {
    let url = settings.database.url.expose_secret();
    match PgConnection::establish(url) {
        Ok(conn) => Some(conn),
        Err(error) => {
            eprintln!(
                "error: cannot connect to {}: {error}",
                redact_url_password(url)
            );
            None
        }
    }
}

fn auditor(settings: &Settings) -> Option<crate::audit::Auditor> {
    // Operator commands chain audit rows with the real key: SECRET_KEY is required here.
    match crate::audit::Auditor::for_operator(settings) {
        Ok(a) => Some(a),
        Err(error) => {
            eprintln!("error: audit log: {error}");
            None
        }
    }
}

fn create_admin(
    settings: &Settings,
    username: &str,
    email: &str,
    password_stdin: bool,
    if_no_admin: bool,
) -> ExitCode {
    let (Some(mut conn), Some(auditor)) = (connect(settings), auditor(settings)) else {
        return ExitCode::FAILURE;
    };
    if if_no_admin {
        match crate::accounts::cli::any_admin(&mut conn) {
            Ok(true) => {
                println!("an admin account already exists; nothing to do");
                return ExitCode::SUCCESS;
            }
            Ok(false) => {}
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let password = if password_stdin {
        match crate::accounts::cli::read_password_stdin() {
            Ok(p) => Some(p),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    match crate::accounts::cli::create_admin(
        &mut conn, settings, &auditor, username, email, password,
    ) {
        Ok(created) => {
            println!("created admin {} <{}>", created.username, created.email);
            if let Some(password) = created.generated_password {
                println!("password (shown once, store it now): {password}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            print_app_error(&error);
            ExitCode::FAILURE
        }
    }
}

fn promote_admin(settings: &Settings, login: &str) -> ExitCode {
    let (Some(mut conn), Some(auditor)) = (connect(settings), auditor(settings)) else {
        return ExitCode::FAILURE;
    };
    match crate::accounts::cli::promote_admin(&mut conn, &auditor, login) {
        Ok(promoted) => {
            println!(
                "{} <{}> is now an admin (was {})",
                promoted.username, promoted.email, promoted.previous_role
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            print_app_error(&error);
            ExitCode::FAILURE
        }
    }
}

fn import_users(settings: &Settings, file: &std::path::Path) -> ExitCode {
    let (Some(mut conn), Some(auditor)) = (connect(settings), auditor(settings)) else {
        return ExitCode::FAILURE;
    };
    match crate::accounts::cli::import_users(&mut conn, &auditor, file) {
        Ok(Ok(count)) => {
            println!("imported {count} user(s)");
            ExitCode::SUCCESS
        }
        Ok(Err(problems)) => {
            for p in &problems {
                eprintln!("line {}: {}", p.line, p.message);
            }
            eprintln!("{} problem(s); nothing was imported", problems.len());
            ExitCode::FAILURE
        }
        Err(error) => {
            print_app_error(&error);
            ExitCode::FAILURE
        }
    }
}

/// Field errors one per line; other errors as their message.
fn print_app_error(error: &crate::error::AppError) {
    use crate::error::AppError;
    match error {
        AppError::Validation(errors) | AppError::Conflict(errors) => {
            for e in errors {
                eprintln!("error: {} {}", e.field, e.message);
            }
        }
        other => eprintln!("error: {other}"),
    }
}

fn audit(settings: &Settings, command: AuditCommand) -> ExitCode {
    let auditor = match crate::audit::Auditor::for_operator(settings) {
        Ok(auditor) => auditor,
        Err(error) => {
            eprintln!("error: audit log: {error}");
            return ExitCode::FAILURE;
        }
    };
    let before = match &command {
        AuditCommand::Prune { before } => match crate::audit::parse_timestamp(before) {
            Ok(at) => Some(at),
            Err(error) => {
                eprintln!("error: --before {:?} {error}", before.trim());
                return ExitCode::from(2);
            }
        },
        AuditCommand::Verify => None,
    };
    let Some(mut conn) = connect(settings) else {
        return ExitCode::FAILURE;
    };
    match before {
        None => crate::audit::cli_verify(&auditor, &mut conn),
        Some(before) => crate::audit::cli_prune(&auditor, &mut conn, before),
    }
}

fn webhooks(settings: &Settings, command: WebhooksCommand) -> ExitCode {
    let (Some(mut conn), Some(auditor)) = (connect(settings), auditor(settings)) else {
        return ExitCode::FAILURE;
    };
    match command {
        WebhooksCommand::Prune => crate::webhooks::cli::cli_prune(settings, &auditor, &mut conn),
        WebhooksCommand::Replay { id } => {
            crate::webhooks::cli::cli_replay(settings, &auditor, &mut conn, &id)
        }
    }
}

fn conversations(settings: &Settings, command: ConversationsCommand) -> ExitCode {
    let (Some(mut conn), Some(auditor)) = (connect(settings), auditor(settings)) else {
        return ExitCode::FAILURE;
    };
    match command {
        ConversationsCommand::Prune => {
            crate::conversations::cli::cli_prune(settings, &auditor, &mut conn)
        }
    }
}

fn migrate(settings: &Settings, revert: bool) -> ExitCode {
    let Some(mut conn) = connect(settings) else {
        return ExitCode::FAILURE;
    };
    let result = if revert {
        migrations::revert_last(&mut conn).map(|v| vec![v])
    } else {
        migrations::run_pending(&mut conn)
    };
    match result {
        Ok(versions) if versions.is_empty() => {
            println!("no pending migrations");
            ExitCode::SUCCESS
        }
        Ok(versions) => {
            let verb = if revert { "reverted" } else { "applied" };
            for version in versions {
                println!("{verb} {version}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: migration failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The database probe of `check-config`: live data keys under master keys the configuration does
/// not hold. Skipped (with a note) when the key ring is invalid — already reported — or the
/// database does not answer within a few seconds.
fn unconfigured_master_key_problems(settings: &Settings) -> Vec<crate::config::validate::Problem> {
    let Some(encryption_key) = &settings.secrets.encryption_key else {
        return Vec::new();
    };
    let Ok(ring) = KeyRing::new(encryption_key, &settings.secrets.encryption_keys_previous) else {
        return Vec::new();
    };
    let url = settings.database.url.expose_secret().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = PgConnection::establish(&url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| data_keys::counts(&mut conn).map_err(|e| e.to_string()));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(Ok(counts)) => {
            crate::config::validate::unconfigured_master_keys(&counts.unconfigured(&ring))
        }
        Ok(Err(error)) => {
            eprintln!("note: data keys not checked (the database did not answer: {error})");
            Vec::new()
        }
        Err(_) => {
            eprintln!("note: data keys not checked (the database did not answer within 5 s)");
            Vec::new()
        }
    }
}

/// The configured master key ring, or a printed error. The key commands need the real
/// ENCRYPTION_KEY: an ephemeral one would report every key as unconfigured.
fn configured_ring(settings: &Settings) -> Option<KeyRing> {
    let Some(key) = &settings.secrets.encryption_key else {
        eprintln!("error: ENCRYPTION_KEY is not set (generate one with `rampart keygen`)");
        return None;
    };
    match KeyRing::new(key, &settings.secrets.encryption_keys_previous) {
        Ok(ring) => Some(ring),
        Err(error) => {
            eprintln!("error: {error}");
            None
        }
    }
}

/// The variable each configured master key comes from, by id.
fn key_variable(ring: &KeyRing, id: &str) -> Option<String> {
    ring.ids().position(|k| k == id).map(|i| {
        if i == 0 {
            "ENCRYPTION_KEY".to_string()
        } else {
            format!("ENCRYPTION_KEYS_PREVIOUS[{i}]")
        }
    })
}

/// Every master key id worth a line: the configured ones (newest first), then the others that
/// still wrap live keys.
fn key_rows(ring: &KeyRing, counts: &data_keys::KeyCounts) -> Vec<serde_json::Value> {
    let count_of = |id: &str| {
        counts
            .by_master_key
            .iter()
            .find(|(k, _)| k == id)
            .map_or(0, |(_, n)| *n)
    };
    let mut ids: Vec<String> = ring.ids().map(str::to_string).collect();
    for (id, _) in &counts.by_master_key {
        if !ring.contains(id) {
            ids.push(id.clone());
        }
    }
    ids.iter()
        .map(|id| {
            serde_json::json!({
                "id": id,
                "data_keys": count_of(id),
                "configured": ring.contains(id),
                "current": id == ring.current_id(),
                "variable": key_variable(ring, id),
            })
        })
        .collect()
}

fn print_key_table(rows: &[serde_json::Value]) {
    println!("{:<20} {:>10}  status", "master key", "data keys");
    for row in rows {
        let status = match (row["current"].as_bool(), row["variable"].as_str()) {
            (Some(true), Some(var)) => format!("current ({var})"),
            (_, Some(var)) => format!("previous ({var})"),
            _ => "NOT CONFIGURED".to_string(),
        };
        println!(
            "{:<20} {:>10}  {status}",
            row["id"].as_str().unwrap_or_default(),
            row["data_keys"].as_i64().unwrap_or_default()
        );
    }
}

fn keys(settings: &Settings, command: KeysCommand) -> ExitCode {
    let Some(ring) = configured_ring(settings) else {
        return ExitCode::FAILURE;
    };
    let Some(mut conn) = connect(settings) else {
        return ExitCode::FAILURE;
    };
    match command {
        KeysCommand::Status { json } => keys_status(&mut conn, &ring, json),
        KeysCommand::RotateEncryption { batch_size, json } => {
            let Some(auditor) = auditor(settings) else {
                return ExitCode::FAILURE;
            };
            rotate_encryption(&mut conn, &ring, &auditor, batch_size, json)
        }
    }
}

fn keys_status(conn: &mut PgConnection, ring: &KeyRing, json: bool) -> ExitCode {
    let counts = match data_keys::counts(conn) {
        Ok(counts) => counts,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = key_rows(ring, &counts);
    let pending = data_keys::pending_rewrap(&counts, ring);
    let unconfigured: i64 = counts.unconfigured(ring).iter().map(|(_, n)| n).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "current": ring.current_id(),
                "master_keys": rows,
                "destroyed": counts.destroyed,
                "pending_rewrap": pending,
                "unconfigured": unconfigured,
            })
        );
        return ExitCode::SUCCESS;
    }
    print_key_table(&rows);
    println!("destroyed data keys: {}", counts.destroyed);
    if pending > 0 {
        println!("{pending} data key(s) to re-wrap: run `rampart keys rotate-encryption`");
    }
    if unconfigured > 0 {
        println!(
            "{unconfigured} data key(s) under master keys that are not configured: their content cannot be read"
        );
    }
    ExitCode::SUCCESS
}

/// How `rotate-encryption` shows its progress: a bar on a terminal, plain lines otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { to_stderr: bool },
}

impl Progress {
    fn new(json: bool) -> Progress {
        use std::io::IsTerminal;
        if !json && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "re-wrapping {bar:40} {pos}/{len} data keys ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style);
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines { to_stderr: json }
        }
    }

    fn update(&self, done: usize, total: i64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(u64::try_from(total).unwrap_or(0).max(done as u64));
                bar.set_position(done as u64);
            }
            Progress::Lines { to_stderr: true } => eprintln!("rewrapped {done}/{total}"),
            Progress::Lines { to_stderr: false } => println!("rewrapped {done}/{total}"),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn rotate_encryption(
    conn: &mut PgConnection,
    ring: &KeyRing,
    auditor: &crate::audit::Auditor,
    batch_size: i64,
    json: bool,
) -> ExitCode {
    let progress = Progress::new(json);
    let result = data_keys::rotate(
        conn,
        ring,
        auditor,
        batch_size,
        time::OffsetDateTime::now_utc(),
        |done, total| progress.update(done, total),
    );
    progress.finish();
    let rotation = match result {
        Ok(rotation) => rotation,
        Err(error) => {
            eprintln!(
                "error: rotation stopped: {error}; every committed batch is kept, run the command again to continue"
            );
            return ExitCode::FAILURE;
        }
    };
    let left: Vec<serde_json::Value> = key_rows(ring, &rotation.after)
        .into_iter()
        .filter(|row| row["current"] != true && row["data_keys"].as_i64().unwrap_or(0) > 0)
        .collect();
    let done = left.is_empty() && rotation.failed.is_empty();
    if json {
        let failed: Vec<String> = rotation.failed.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            serde_json::json!({
                "current": ring.current_id(),
                "rewrapped": rotation.rewrapped,
                "batches": rotation.batches,
                "failed": failed,
                "left": left,
                "done": done,
            })
        );
    } else {
        println!(
            "rewrapped {} data key(s) under {} (ENCRYPTION_KEY) in {} batch(es)",
            rotation.rewrapped,
            ring.current_id(),
            rotation.batches
        );
        for id in &rotation.failed {
            println!("corrupt wrap, left as it was: data key {id}");
        }
        if done {
            println!(
                "every live data key is under {}: ENCRYPTION_KEYS_PREVIOUS can be emptied",
                ring.current_id()
            );
        } else {
            println!("left:");
            for row in &left {
                let under = match row["variable"].as_str() {
                    Some(var) => var.to_string(),
                    None => "NOT CONFIGURED".to_string(),
                };
                println!(
                    "  {} data key(s) under {} ({under})",
                    row["data_keys"].as_i64().unwrap_or_default(),
                    row["id"].as_str().unwrap_or_default()
                );
            }
        }
    }
    if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
