//! Password hashing: argon2id for every new hash, verification of argon2 PHC strings and of bcrypt
//! hashes imported from older systems, all on a bounded blocking pool.
//!
//! Must not: run a hash on an async worker, let more than `concurrency` hashes run (argon2id holds
//! ~19 MiB each) or more than `queue` wait, truncate/trim/normalise a password, or log a password or
//! a stored hash.

use std::fmt;
use std::sync::{Arc, Mutex};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _,
    PasswordVerifier as _, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Argon2id cost parameters for new hashes (and the floor below which a hash is upgraded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Both the running slots and the waiting queue are full: the caller answers 503 + Retry-After.
    #[error("password hashing is busy")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of a verification. `needs_rehash` is only ever true when `matches` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash is bcrypt, not argon2id, or weaker than the configured parameters: store a
    /// fresh `hash` of the password that just matched.
    pub needs_rehash: bool,
}

impl Verification {
    const MISMATCH: Verification = Verification {
        matches: false,
        needs_rehash: false,
    };
}

/// Length of the random salt of a new hash (the PHC recommendation).
const SALT_LEN: usize = 16;
/// Output length of a new hash; a shorter stored output is upgraded.
const OUTPUT_LEN: usize = 32;
/// Ceilings on the parameters of a *stored* argon2 hash: the parameters come from the string, so a
/// crafted import must not make one verification allocate gigabytes or run for minutes.
const MAX_STORED_M_COST: u32 = 262_144; // 256 MiB
const MAX_STORED_T_COST: u32 = 16;
const MAX_STORED_P_COST: u32 = 16;
/// bcrypt costs accepted from imports (10 is the usual default of older systems; 14 is already
/// ~1 s per verification).
const BCRYPT_IMPORT_COSTS: std::ops::RangeInclusive<u32> = 10..=14;
/// bcrypt costs verified at login: anything cheap enough to check (a lower cost is upgraded on the
/// next login anyway), but never a cost that would tie up a slot for minutes.
const BCRYPT_VERIFY_COSTS: std::ops::RangeInclusive<u32> = 4..=14;
/// The 64 characters of bcrypt's own base64 alphabet.
const BCRYPT_ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Hashes and verifies passwords on its own `concurrency` threads — started with a lowered
/// scheduling priority (nice +10) so a login flood yields the CPU to the HTTP workers and the
/// database — with at most `queue` more jobs waiting; anything beyond is refused at once with
/// [`HashError::Busy`]. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    config: PasswordParams,
    /// An argon2id hash of a random password, made at start with the configured parameters: an
    /// unknown user costs exactly one real verification too.
    dummy_hash: String,
    /// `concurrency` permits: held while a hash runs on the blocking pool.
    running: Arc<Semaphore>,
    /// `concurrency + queue` permits: held from admission until the hash has finished.
    admitted: Arc<Semaphore>,
    capacity: usize,
    concurrency: usize,
    queue: usize,
    /// Hands jobs to the hashing threads; they stop when the hasher is dropped.
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Starts the hashing threads. Each lowers its own priority first: on Linux the nice value is per
/// thread, and a lowered one needs no privilege.
fn start_workers(count: usize) -> Result<std::sync::mpsc::Sender<Job>, HashError> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..count {
        let receiver = Arc::clone(&receiver);
        std::thread::Builder::new()
            .name(format!("rampart-hash-{index}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = {
                        let guard = receiver.lock().unwrap_or_else(|p| p.into_inner());
                        guard.recv()
                    };
                    match job {
                        // A panicking job must not take the thread (and a slot) with it.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| HashError::Internal(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(sender)
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling thread on
    // Linux. Failure (e.g. a seccomp filter) leaves the default priority, which is still correct.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.config)
            .field("concurrency", &self.inner.concurrency)
            .field("queue", &self.inner.queue)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl PasswordHasher {
    /// `concurrency` ≈ the number of cores (at least 1); `queue` = the most jobs allowed to wait.
    /// Computes the dummy hash, so it takes as long as one hash.
    pub fn new(
        params: PasswordParams,
        concurrency: usize,
        queue: usize,
    ) -> Result<Self, HashError> {
        if concurrency == 0 {
            return Err(HashError::Internal(
                "password hashing concurrency must be at least 1".into(),
            ));
        }
        let capacity = concurrency
            .checked_add(queue)
            .filter(|capacity| *capacity <= Semaphore::MAX_PERMITS)
            .ok_or_else(|| HashError::Internal("password hashing queue is too large".into()))?;
        let argon_params = Params::new(
            params.m_cost,
            params.t_cost,
            params.p_cost,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| HashError::Internal(format!("invalid argon2 parameters: {e}")))?;
        let mut inner = Inner {
            params: argon_params,
            config: params,
            dummy_hash: String::new(),
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(capacity)),
            capacity,
            concurrency,
            queue,
            jobs: Mutex::new(start_workers(concurrency)?),
        };
        let dummy_password = hex::encode(crate::crypto::random::bytes(32).map_err(rng_error)?);
        inner.dummy_hash = inner.hash_now(dummy_password.as_bytes())?;
        Ok(PasswordHasher {
            inner: Arc::new(inner),
        })
    }

    /// An argon2id PHC string of `password` (used exactly as given) with a fresh 16-byte salt from
    /// the OS RNG.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let inner = Arc::clone(&self.inner);
        self.run_bounded(move || inner.hash_now(password.expose_secret().as_bytes()))
            .await?
    }

    /// Checks `password` against `stored` (argon2 PHC or bcrypt). `stored` None (unknown user), or a
    /// hash in no supported format, verifies against the dummy hash instead — the same cost as a
    /// real verification — and never matches.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let inner = Arc::clone(&self.inner);
        self.run_bounded(move || {
            inner.verify_now(password.expose_secret().as_bytes(), stored.as_deref())
        })
        .await
    }

    /// Jobs admitted and not yet finished (running + waiting).
    pub fn in_flight(&self) -> usize {
        self.inner
            .capacity
            .saturating_sub(self.inner.admitted.available_permits())
    }

    /// Admits the job or refuses it with `Busy`, waits for a running slot, then runs it on the
    /// blocking pool. The permits move into the blocking closure: if the caller gives up (request
    /// cancelled) the job still counts until it has really finished, so the memory bound holds.
    async fn run_bounded<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let admitted = Arc::clone(&self.inner.admitted)
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = Arc::clone(&self.inner.running)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("password hashing pool is closed".into()))?;
        let span = tracing::Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Job = Box::new(move || {
            let outcome = span.in_scope(job);
            // Free the slots before answering, so the caller never sees its own job in flight.
            drop((admitted, running));
            let _ = done.send(outcome);
        });
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(task)
            .map_err(|_| HashError::Internal("password hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| HashError::Internal("password hashing task failed".into()))
    }
}

impl Inner {
    fn argon2id(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(rng_error)?;
        let hash = self
            .argon2id()
            .hash_password_with_salt(password, &salt)
            .map_err(|e| HashError::Internal(format!("argon2 hashing failed: {e}")))?;
        Ok(hash.to_string())
    }

    fn verify_now(&self, password: &[u8], stored: Option<&str>) -> Verification {
        let Some(stored) = stored else {
            self.burn_dummy(password);
            return Verification::MISMATCH;
        };
        match classify(stored, &BCRYPT_VERIFY_COSTS) {
            Stored::Argon2(hash) => self.verify_argon2(password, &hash),
            Stored::Bcrypt => match bcrypt::non_truncating_verify(password, stored) {
                Ok(matches) => Verification {
                    matches,
                    // bcrypt is only ever an import: upgrade it on the first successful login.
                    needs_rehash: matches,
                },
                // 72 bytes or more cannot be checked against bcrypt without truncating: a
                // mismatch, at the cost of a real verification.
                Err(bcrypt::BcryptError::Truncation(_)) => {
                    self.burn_dummy(password);
                    Verification::MISMATCH
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stored bcrypt hash could not be verified; treated as a mismatch");
                    self.burn_dummy(password);
                    Verification::MISMATCH
                }
            },
            Stored::Unsupported => {
                tracing::warn!(
                    "stored password hash is in no supported format; treated as a mismatch"
                );
                self.burn_dummy(password);
                Verification::MISMATCH
            }
        }
    }

    fn verify_argon2(&self, password: &[u8], hash: &PasswordHash) -> Verification {
        // `Argon2::default()` only supplies the (absent) secret: algorithm, version and parameters
        // all come from the stored string.
        match Argon2::default().verify_password(password, hash) {
            Ok(()) => Verification {
                matches: true,
                needs_rehash: self.is_outdated(hash),
            },
            Err(argon2::password_hash::Error::PasswordInvalid) => Verification::MISMATCH,
            Err(e) => {
                tracing::warn!(error = %e, "stored argon2 hash could not be verified; treated as a mismatch");
                Verification::MISMATCH
            }
        }
    }

    /// Weaker than what we would write today: another variant, an older (or unstated) version,
    /// lower costs, or a shorter output.
    fn is_outdated(&self, hash: &PasswordHash) -> bool {
        if hash.algorithm != ARGON2ID_IDENT || hash.version != Some(Version::V0x13.into()) {
            return true;
        }
        let Ok(params) = Params::try_from(hash) else {
            return true;
        };
        params.m_cost() < self.config.m_cost
            || params.t_cost() < self.config.t_cost
            || params.p_cost() < self.config.p_cost
            || hash
                .hash
                .as_ref()
                .is_none_or(|output| output.len() < OUTPUT_LEN)
    }

    /// One verification against the dummy hash; its result is irrelevant, its cost is the point.
    fn burn_dummy(&self, password: &[u8]) {
        if let Ok(hash) = PasswordHash::new(&self.dummy_hash) {
            let _ = Argon2::default().verify_password(password, &hash);
        }
    }
}

enum Stored {
    Argon2(Box<PasswordHash>),
    Bcrypt,
    Unsupported,
}

fn classify(stored: &str, bcrypt_costs: &std::ops::RangeInclusive<u32>) -> Stored {
    if stored.starts_with("$argon2") {
        return match parse_argon2(stored) {
            Some(hash) => Stored::Argon2(Box::new(hash)),
            None => Stored::Unsupported,
        };
    }
    if is_bcrypt(stored, bcrypt_costs) {
        return Stored::Bcrypt;
    }
    Stored::Unsupported
}

/// An argon2 PHC string with salt and output, a known variant and version, and parameters within
/// the ceilings.
fn parse_argon2(stored: &str) -> Option<PasswordHash> {
    let hash = PasswordHash::new(stored).ok()?;
    Algorithm::try_from(hash.algorithm.as_str()).ok()?;
    if let Some(version) = hash.version {
        Version::try_from(version).ok()?;
    }
    hash.salt.as_ref()?;
    hash.hash.as_ref()?;
    let params = Params::try_from(&hash).ok()?;
    let within = params.m_cost() <= MAX_STORED_M_COST
        && params.t_cost() <= MAX_STORED_T_COST
        && params.p_cost() <= MAX_STORED_P_COST;
    within.then_some(hash)
}

/// `$2a$`, `$2b$` or `$2y$`, a two-digit cost in `costs`, then 53 characters of bcrypt base64
/// (22 of salt, 31 of hash): 60 ASCII characters in all.
fn is_bcrypt(stored: &str, costs: &std::ops::RangeInclusive<u32>) -> bool {
    let bytes = stored.as_bytes();
    if bytes.len() != 60 {
        return false;
    }
    let prefix_ok = matches!(&bytes[..4], b"$2a$" | b"$2b$" | b"$2y$");
    let cost_ok = bytes[4].is_ascii_digit()
        && bytes[5].is_ascii_digit()
        && bytes[6] == b'$'
        && costs.contains(&(u32::from(bytes[4] - b'0') * 10 + u32::from(bytes[5] - b'0')));
    let body_ok = bytes[7..].iter().all(|b| BCRYPT_ALPHABET.contains(b));
    prefix_ok && cost_ok && body_ok
}

/// For imports: an argon2 PHC string (`$argon2id$`, `$argon2i$`, `$argon2d$`) that parses, with
/// parameters within sane ceilings, or a well-formed 60-character bcrypt hash (`$2a$`, `$2b$`,
/// `$2y$`) with cost 10–14.
pub fn is_supported_hash(stored: &str) -> bool {
    !matches!(classify(stored, &BCRYPT_IMPORT_COSTS), Stored::Unsupported)
}

fn rng_error(e: getrandom::Error) -> HashError {
    HashError::Internal(format!("the OS random number generator failed: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(PasswordParams::default(), 2, 16).expect("hasher")
    }

    fn argon2_hash(algorithm: Algorithm, m: u32, t: u32, p: u32, password: &str) -> String {
        Argon2::new(
            algorithm,
            Version::V0x13,
            Params::new(m, t, p, None).expect("params"),
        )
        .hash_password_with_salt(password.as_bytes(), b"0123456789abcdef")
        .expect("hash")
        .to_string()
    }

    fn bcrypt_hash(password: &str, version: bcrypt::Version) -> String {
        bcrypt::non_truncating_hash_with_salt(password, 10, *b"fixed-salt-16byt")
            .expect("bcrypt")
            .format_for_version(version)
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hasher();
        let stored = h
            .hash(secret("correct horse battery staple"))
            .await
            .expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        let ok = h
            .verify(secret("correct horse battery staple"), Some(stored.clone()))
            .await
            .expect("verify");
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = h
            .verify(secret("correct horse battery stapl"), Some(stored.clone()))
            .await
            .expect("verify");
        assert_eq!(bad, Verification::MISMATCH);
        // Used exactly as received: no trimming.
        let padded = h
            .verify(secret(" correct horse battery staple "), Some(stored))
            .await
            .expect("verify");
        assert!(!padded.matches);
    }

    #[tokio::test]
    async fn salts_are_random() {
        let h = hasher();
        let a = h.hash(secret("same password")).await.expect("hash");
        let b = h.hash(secret("same password")).await.expect("hash");
        assert_ne!(a, b);
        let salt = PasswordHash::new(&a).expect("phc").salt.expect("salt");
        assert_eq!(salt.len(), SALT_LEN);
    }

    #[tokio::test]
    async fn emoji_password() {
        let h = hasher();
        let password = "🔐".repeat(64); // 256 bytes
        let stored = h.hash(secret(&password)).await.expect("hash");
        assert!(
            h.verify(secret(&password), Some(stored.clone()))
                .await
                .expect("verify")
                .matches
        );
        let shorter = "🔐".repeat(63);
        assert!(
            !h.verify(secret(&shorter), Some(stored))
                .await
                .expect("verify")
                .matches
        );
    }

    #[tokio::test]
    async fn unicode_is_not_normalised() {
        let h = hasher();
        let composed = "caf\u{e9} au lait, s'il vous pla\u{ee}t";
        let decomposed = "cafe\u{301} au lait, s'il vous pla\u{ee}t";
        let stored = h.hash(secret(composed)).await.expect("hash");
        assert!(
            !h.verify(secret(decomposed), Some(stored))
                .await
                .expect("verify")
                .matches
        );
    }

    #[tokio::test]
    async fn bcrypt_imports_verify_and_need_rehash() {
        let h = hasher();
        for (version, prefix) in [
            (bcrypt::Version::TwoA, "$2a$10$"),
            (bcrypt::Version::TwoB, "$2b$10$"),
            (bcrypt::Version::TwoY, "$2y$10$"),
        ] {
            let stored = bcrypt_hash("legacy password 1", version);
            assert!(stored.starts_with(prefix), "{stored}");
            assert!(is_supported_hash(&stored));
            let ok = h
                .verify(secret("legacy password 1"), Some(stored.clone()))
                .await
                .expect("verify");
            assert_eq!(
                ok,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{prefix}"
            );
            let bad = h
                .verify(secret("legacy password 2"), Some(stored))
                .await
                .expect("verify");
            assert_eq!(bad, Verification::MISMATCH, "{prefix}");
        }
    }

    #[tokio::test]
    async fn bcrypt_known_vector() {
        // A $2y$ hash from PHP's password_hash("rasmuslerdorf", PASSWORD_BCRYPT, ["cost" => 10]).
        let stored = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
        assert!(is_supported_hash(stored));
        let h = hasher();
        let v = h
            .verify(secret("rasmuslerdorf"), Some(stored.to_string()))
            .await
            .expect("verify");
        assert!(v.matches && v.needs_rehash);
    }

    #[tokio::test]
    async fn bcrypt_cost_bounds() {
        let h = hasher();
        // Below the import floor: still verified at login (and upgraded), never imported.
        let cheap = bcrypt::non_truncating_hash_with_salt("cheap legacy", 4, *b"fixed-salt-16byt")
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        assert!(!is_supported_hash(&cheap));
        let v = h
            .verify(secret("cheap legacy"), Some(cheap))
            .await
            .expect("verify");
        assert!(v.matches && v.needs_rehash);
        // Above the ceiling: never run (cost 31 would take days), just a mismatch.
        let php = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
        let costly = php.replacen("$2y$10$", "$2y$31$", 1);
        let started = Instant::now();
        let v = h
            .verify(secret("rasmuslerdorf"), Some(costly))
            .await
            .expect("verify");
        assert_eq!(v, Verification::MISMATCH);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn long_password_against_bcrypt_is_a_mismatch_never_truncated() {
        let h = hasher();
        let first_72 = "a".repeat(72);
        // What a truncating bcrypt would have stored for any password starting with these 72 bytes.
        let stored = bcrypt::hash_with_salt(&first_72, 10, *b"fixed-salt-16byt")
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        let longer = format!("{first_72}-and-then-some");
        let v = h
            .verify(secret(&longer), Some(stored))
            .await
            .expect("verify");
        assert_eq!(v, Verification::MISMATCH);
    }

    #[tokio::test]
    async fn weaker_argon2_params_need_rehash() {
        let h = hasher();
        for stored in [
            argon2_hash(Algorithm::Argon2id, 8_192, 2, 1, "pw-weaker-params"),
            argon2_hash(Algorithm::Argon2id, 19_456, 1, 1, "pw-weaker-params"),
            argon2_hash(Algorithm::Argon2i, 19_456, 2, 1, "pw-weaker-params"),
            argon2_hash(Algorithm::Argon2d, 19_456, 2, 1, "pw-weaker-params"),
        ] {
            assert!(is_supported_hash(&stored), "{stored}");
            let v = h
                .verify(secret("pw-weaker-params"), Some(stored.clone()))
                .await
                .expect("verify");
            assert_eq!(
                v,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{stored}"
            );
            let bad = h
                .verify(secret("pw-other"), Some(stored))
                .await
                .expect("verify");
            assert_eq!(bad, Verification::MISMATCH);
        }
        // Stronger than configured is fine as it is.
        let stronger = argon2_hash(Algorithm::Argon2id, 19_456, 3, 1, "pw-stronger");
        let v = h
            .verify(secret("pw-stronger"), Some(stronger))
            .await
            .expect("verify");
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn older_argon2_version_needs_rehash() {
        let stored = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x10,
            Params::new(19_456, 2, 1, None).expect("params"),
        )
        .hash_password_with_salt(b"old version", b"0123456789abcdef")
        .expect("hash")
        .to_string();
        assert!(stored.starts_with("$argon2id$v=16$"), "{stored}");
        let v = hasher()
            .verify(secret("old version"), Some(stored))
            .await
            .expect("verify");
        assert!(v.matches && v.needs_rehash);
    }

    #[tokio::test]
    async fn unknown_user_costs_a_real_verification_and_never_matches() {
        let h = hasher();
        let stored = h.hash(secret("some password")).await.expect("hash");

        let started = Instant::now();
        let real = h
            .verify(secret("some password"), Some(stored))
            .await
            .expect("verify");
        let real_time = started.elapsed();

        let started = Instant::now();
        let dummy = h
            .verify(secret("some password"), None)
            .await
            .expect("verify");
        let dummy_time = started.elapsed();

        assert!(real.matches);
        assert_eq!(dummy, Verification::MISMATCH);
        // Loose bounds only: both must really run argon2id at 19 MiB (a few ms at the very least).
        assert!(real_time > Duration::from_millis(3), "{real_time:?}");
        assert!(dummy_time > Duration::from_millis(3), "{dummy_time:?}");
    }

    #[tokio::test]
    async fn garbage_hashes_never_match_nor_panic() {
        let h = hasher();
        for stored in [
            "",
            "plaintext-password",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$AAAA",
            "$argon2id$v=19$m=99999999,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$5xV8Ll5ac1+0KcfXAIVBJrjq9yXYDKS7bR7zG/FbYrQ",
            "$argon2x$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$5xV8Ll5ac1+0KcfXAIVBJrjq9yXYDKS7bR7zG/FbYrQ",
            "$2b$10$short",
            "$2x$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
            "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1\u{e9}",
            "$1$saltsalt$hash",
            "pbkdf2_sha256$600000$salt$hash",
            "\u{0}\u{0}\u{0}",
        ] {
            let v = h
                .verify(secret("plaintext-password"), Some(stored.to_string()))
                .await
                .expect("verify");
            assert_eq!(v, Verification::MISMATCH, "{stored:?}");
        }
    }

    #[tokio::test]
    async fn busy_when_the_queue_is_full() {
        let h = PasswordHasher::new(PasswordParams::default(), 1, 1).expect("hasher");
        let jobs: Vec<_> = (0..5)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(secret(&format!("password number {i}"))).await })
            })
            .collect();
        let mut ok = 0;
        let mut busy = 0;
        for job in jobs {
            match tokio::time::timeout(Duration::from_secs(30), job)
                .await
                .expect("no job hangs")
                .expect("join")
            {
                Ok(_) => ok += 1,
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(ok >= 1, "ok={ok}");
        assert!(busy >= 1, "busy={busy}");
        assert_eq!(ok + busy, 5);
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test]
    async fn never_more_than_concurrency_plus_queue_admitted() {
        let h = PasswordHasher::new(PasswordParams::default(), 1, 2).expect("hasher");
        let mut futures = Vec::new();
        for i in 0..3 {
            let h = h.clone();
            futures.push(tokio::spawn(async move {
                h.hash(secret(&format!("password number {i}"))).await
            }));
        }
        // Let all three be admitted (one running, two waiting).
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.in_flight() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(h.in_flight(), 3);
        assert!(matches!(
            h.verify(secret("x"), None).await,
            Err(HashError::Busy)
        ));
        for f in futures {
            f.await.expect("join").expect("hash");
        }
        assert_eq!(h.in_flight(), 0);
    }

    #[test]
    fn rejects_zero_concurrency_and_bad_params() {
        assert!(PasswordHasher::new(PasswordParams::default(), 0, 4).is_err());
        let bad = PasswordParams {
            m_cost: 1,
            t_cost: 0,
            p_cost: 0,
        };
        assert!(PasswordHasher::new(bad, 1, 1).is_err());
        assert!(PasswordHasher::new(PasswordParams::default(), 1, usize::MAX).is_err());
    }

    #[test]
    fn supported_hash_table() {
        let php = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
        let argon_id = argon2_hash(Algorithm::Argon2id, 19_456, 2, 1, "x");
        let argon_i = argon2_hash(Algorithm::Argon2i, 4_096, 3, 1, "x");
        let argon_d = argon2_hash(Algorithm::Argon2d, 4_096, 3, 1, "x");
        let cases: Vec<(String, bool)> = vec![
            (argon_id.clone(), true),
            (argon_i, true),
            (argon_d, true),
            (php.to_string(), true),
            (php.replacen("$2y$", "$2a$", 1), true),
            (php.replacen("$2y$", "$2b$", 1), true),
            (php.replacen("$2y$10$", "$2y$14$", 1), true),
            (php.replacen("$2y$", "$2x$", 1), false),
            (php.replacen("$2y$10$", "$2y$09$", 1), false),
            (php.replacen("$2y$10$", "$2y$15$", 1), false),
            (php.replacen("$2y$10$", "$2y$1a$", 1), false),
            (php[..59].to_string(), false),
            (format!("{php}a"), false),
            (php.replacen('.', "!", 1), false),
            (argon_id.replacen("$argon2id$", "$argon2x$", 1), false),
            (argon_id.replacen("m=19456", "m=999999999", 1), false),
            (argon_id.replacen("t=2", "t=1000", 1), false),
            (argon_id.replacen("v=19", "v=42", 1), false),
            ("$argon2id$v=19$m=19456,t=2,p=1".to_string(), false),
            (String::new(), false),
            ("hunter2".to_string(), false),
            ("$6$rounds=5000$salt$hash".to_string(), false),
        ];
        for (stored, expected) in cases {
            assert_eq!(is_supported_hash(&stored), expected, "{stored:?}");
        }
    }
}
