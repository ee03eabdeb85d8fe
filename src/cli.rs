//! The `rampart` command line. Each command loads the configuration and calls one function of the
//! module that owns the work; nothing here decides policy.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};
use secrecy::ExposeSecret;

use crate::config::settings::redact_url_password;
use crate::config::{Environment, Settings};
use crate::db::migrations;

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
        Command::Audit { command } => with_settings(|settings| audit(&settings, command)),
        Command::Webhooks { command } => with_settings(|settings| webhooks(&settings, command)),
        Command::Conversations { command } => {
            with_settings(|settings| conversations(&settings, command))
        }
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
