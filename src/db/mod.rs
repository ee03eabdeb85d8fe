//! The Postgres pool and the one helper every query goes through.
//!
//! `run` takes a pooled connection and executes a closure on the runtime's blocking thread pool, carrying
//! the current tracing span, so Diesel never blocks an async worker. Broken connections are
//! recognised from their errors and discarded (see `Manager`), which lets the pool skip r2d2's
//! per-checkout `SELECT 1` by default and still recover after a Postgres restart.

pub mod migrations;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{self, ConnectionManager, ManageConnection, R2D2Connection};
use secrecy::ExposeSecret;

use crate::config::settings::DatabaseSettings;
use crate::error::AppError;

/// A pooled connection plus what the pool needs to know about its health.
pub struct Conn {
    pub conn: PgConnection,
    broken: bool,
    /// The pool's `suspect_epoch` when this connection was last known good.
    checked_epoch: u64,
}

/// Wraps Diesel's manager so a connection that failed with a connection-level error is dropped
/// instead of being handed to the next request.
pub struct Manager {
    inner: ConnectionManager<PgConnection>,
    suspect_epoch: Arc<AtomicU64>,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        Ok(Conn {
            conn: self.inner.connect()?,
            broken: false,
            checked_epoch: self.suspect_epoch.load(Ordering::Acquire),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), r2d2::Error> {
        conn.conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || self.inner.has_broken(&mut conn.conn)
    }
}

/// Cheap to clone; shared by every worker.
#[derive(Clone)]
pub struct Pool {
    inner: r2d2::Pool<Manager>,
    /// Bumped whenever a connection is found broken: every idle connection older than the bump is
    /// pinged once at its next checkout, so one Postgres restart costs one failed request, not one
    /// per pooled connection.
    suspect_epoch: Arc<AtomicU64>,
}

/// Logs r2d2's background connection failures through tracing (never the URL).
#[derive(Debug)]
struct PoolErrorLogger;

impl r2d2::HandleError<r2d2::Error> for PoolErrorLogger {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

impl Pool {
    /// Builds the pool without connecting: `serve` must bind and answer `/health` while the
    /// database is still down.
    pub fn new(settings: &DatabaseSettings) -> Pool {
        let suspect_epoch = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            inner: ConnectionManager::new(settings.url.expose_secret()),
            suspect_epoch: suspect_epoch.clone(),
        };
        let inner = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(settings.pool_timeout)
            .test_on_check_out(settings.test_on_checkout)
            .error_handler(Box::new(PoolErrorLogger))
            .build_unchecked(manager);
        Pool {
            inner,
            suspect_epoch,
        }
    }

    /// A connection, checked against the suspect epoch. Blocking: call it from `run` or from
    /// CLI code, never on an async worker.
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>, AppError> {
        // Bounded: each broken connection found is discarded, so at most max_size + 1 rounds.
        for _ in 0..=self.inner.max_size() {
            let mut conn = self.inner.get().map_err(|e| {
                tracing::warn!(error = %e, "no database connection available");
                AppError::Unavailable {
                    retry_after: 1,
                    reason: "database",
                }
            })?;
            let epoch = self.suspect_epoch.load(Ordering::Acquire);
            if conn.checked_epoch >= epoch {
                return Ok(conn);
            }
            if conn.conn.ping().is_ok() {
                conn.checked_epoch = epoch;
                return Ok(conn);
            }
            conn.broken = true;
        }
        Err(AppError::Unavailable {
            retry_after: 1,
            reason: "database",
        })
    }

    /// Records that `conn` failed at the connection level.
    fn mark_broken(&self, conn: &mut Conn) {
        conn.broken = true;
        self.suspect_epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn timeout(&self) -> Duration {
        self.inner.connection_timeout()
    }

    /// Runs `f` with a pooled connection on the blocking pool, inside the caller's tracing span.
    pub async fn run<F, T>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get()?;
                let result = f(&mut conn.conn);
                if matches!(
                    result,
                    Err(AppError::Unavailable {
                        reason: "database",
                        ..
                    })
                ) {
                    pool.mark_broken(&mut conn);
                }
                result
            })
        })
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("blocking task failed: {e}")))?
    }
}
