//! The service's notion of "now". Production uses the system clock; tests inject a manual clock
//! so time-dependent rules (lockout schedule, session expiry, key grace periods) are tested
//! without sleeping. Every rule that depends on time takes its `now` from here, never from the
//! database's `now()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Offset in milliseconds added to the system time (0 in production).
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward. Test use only: production never calls it.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// RFC 3339 text of `at` (its Unix timestamp in the impossible case that formatting fails).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// `at + by`, saturating instead of panicking on absurd configured durations.
pub fn after(at: OffsetDateTime, by: std::time::Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|d| at.checked_add(d))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// `at - by`, saturating.
pub fn before(at: OffsetDateTime, by: std::time::Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|d| at.checked_sub(d))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}
