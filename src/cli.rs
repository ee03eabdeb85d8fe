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

fn migrate(settings: &Settings, revert: bool) -> ExitCode {
    let url = settings.database.url.expose_secret();
    let mut conn = match PgConnection::establish(url) {
        Ok(conn) => conn,
        Err(error) => {
            eprintln!(
                "error: cannot connect to {}: {error}",
                redact_url_password(url)
            );
            return ExitCode::FAILURE;
        }
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
