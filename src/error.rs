//! The error types every layer shares, with no HTTP in them.
//!
//! - **Stores** return diesel's `QueryResult`; the `From<diesel::result::Error>` below classifies
//!   infrastructure failures (a lost connection is `Unavailable`, so the pool never imports HTTP).
//! - **Services** return their feature's own error enum where a caller must tell cases apart
//!   (e.g. `accounts::admin::AdminError`), or [`AppError`], which names what the client did wrong
//!   (or that the server failed) without deciding how it is shown.
//! - **The edge** renders [`AppError`]: problem+json for the API and an HTML page for the console
//!   (`http::error`), a one-line message for the CLI (`cli`).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A field-level validation message.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    /// A valid identity-provider token for an identity rampart cannot map to a local user (not
    /// provisioned and not provisionable, or its email belongs to an unlinked local account).
    #[error("identity unknown: {0}")]
    IdentityUnknown(String),
    /// A sensitive operation on a credential whose last authentication is older than the step-up
    /// window (401 `step-up-required`: `POST /api/v1/auth/step-up` and try again).
    #[error("recent authentication required")]
    StepUpRequired,
    /// An admin-only operation on a one-factor session while admins must use two (403
    /// `mfa-required`).
    #[error("second factor required")]
    MfaRequired,
    /// EMAIL_VERIFICATION_REQUIRED and the account's address is not verified yet (403
    /// `email-unverified`).
    #[error("email address not verified")]
    EmailUnverified,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("conflict")]
    Conflict(Vec<FieldError>),
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    /// More files in one upload than allowed (413, like a body over its limit).
    #[error("too many files")]
    TooManyFiles { max: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    #[error("{period}ly quota {quota} exhausted")]
    QuotaExceeded {
        quota: &'static str,
        /// `day` or `month`: the window the quota counts in.
        period: &'static str,
        limit: u32,
        reset_at: time::OffsetDateTime,
        /// Seconds from the refusal to `reset_at`.
        retry_after: u64,
    },
    #[error("{reason} unavailable")]
    Unavailable {
        retry_after: u64,
        reason: &'static str,
    },
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(error.into())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        if is_connection_error(&error) {
            tracing::warn!(error = %error, "database connection lost");
            AppError::Unavailable {
                retry_after: 1,
                reason: "database",
            }
        } else {
            AppError::internal(error)
        }
    }
}

/// True for errors that mean the connection itself is gone (server restart, terminated backend,
/// network cut), as opposed to an error in the query.
pub fn is_connection_error(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)
            | DieselError::BrokenTransactionManager
    )
}
