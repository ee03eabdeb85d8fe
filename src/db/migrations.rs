//! Embedded migrations: `rampart migrate`, migrate-at-start, and the `/ready` currency check.

use diesel::PgConnection;
use diesel::migration::MigrationVersion;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Changes whenever any file under migrations/ changes (computed by build.rs).
pub const FINGERPRINT: &str = env!("RAMPART_MIGRATIONS_FINGERPRINT");

pub type MigrationError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Applies every pending migration; returns the versions applied.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    let applied: Vec<MigrationVersion<'_>> = conn.run_pending_migrations(MIGRATIONS)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Reverts the most recent migration; returns its version.
pub fn revert_last(conn: &mut PgConnection) -> Result<String, MigrationError> {
    Ok(conn.revert_last_migration(MIGRATIONS)?.to_string())
}

/// Reverts every applied migration (used by the up → down → up test).
pub fn revert_all(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    Ok(conn
        .revert_all_migrations(MIGRATIONS)?
        .iter()
        .map(ToString::to_string)
        .collect())
}

pub fn has_pending(conn: &mut PgConnection) -> Result<bool, MigrationError> {
    conn.has_pending_migration(MIGRATIONS)
}
