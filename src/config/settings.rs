//! Loads the layered configuration into one typed, immutable `Settings`.
//!
//! Layers, later wins: `config/default.toml` → `config/<ENVIRONMENT>.toml` → (development only)
//! `.env` → process environment (merged in `layers.rs`). Keys are the environment variable names in
//! lower case. Each key's type, default, secrecy and `config show` form are declared once, in
//! `spec.rs`. This module only parses and types values; whether they are *safe* is `validate.rs`'s
//! job.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use super::layers::{Layered, read_layer};
use super::spec;

/// The embedded copies are used when the config directory (or one of its files) is absent, so the
/// binary runs from any working directory.
const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");
const EMBEDDED_DEVELOPMENT: &str = include_str!("../../config/development.toml");
const EMBEDDED_TEST: &str = include_str!("../../config/test.toml");
const EMBEDDED_PRODUCTION: &str = include_str!("../../config/production.toml");

/// Every key the layers may set, and the required secrets: both derived from `spec::SETTINGS`.
pub use super::spec::{KNOWN_KEYS, SECRET_KEYS};

pub const REDACTED: &str = "***REDACTED***";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Ok(Environment::Development),
            "test" | "testing" => Ok(Environment::Test),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(ConfigError::invalid(
                "ENVIRONMENT",
                format!("`{other}` is not one of development, test, production"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON in production, human-readable elsewhere.
    Auto,
    Json,
    Pretty,
}

/// A failure to load or type the configuration. Always fatal, in every environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Whole connection URL (may contain a password, so it is a secret).
    pub url: SecretString,
    pub pool_size: u32,
    pub pool_timeout: Duration,
    pub test_on_checkout: bool,
    pub migrate_on_start: bool,
    pub startup_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct Secrets {
    pub secret_key: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
    pub encryption_key: Option<SecretString>,
    /// Former master keys (newest first), still used to unwrap data keys until `rampart keys
    /// rotate-encryption` has re-wrapped everything under ENCRYPTION_KEY.
    pub encryption_keys_previous: Vec<SecretString>,
    pub session_secret: Option<SecretString>,
    pub api_key_hash_secret: Option<SecretString>,
    pub stripe_webhook_secret: Option<SecretString>,
    pub clerk_webhook_secret: Option<SecretString>,
    /// Supabase's legacy HS256 JWT secret. Optional (unset: the legacy mode is off), so it is not
    /// one of the required `SECRET_KEYS`; when set, `check-config` applies the strength checks.
    pub supabase_jwt_secret: Option<SecretString>,
}

impl Secrets {
    /// (variable name, value) for every secret, in `SECRET_KEYS` order.
    pub fn iter(&self) -> [(&'static str, Option<&SecretString>); 7] {
        spec::SECRETS.map(|(name, get)| (name, get(self)))
    }

    /// (variable name, value) for every optional secret (unset means the feature is off).
    pub fn optional(&self) -> [(&'static str, Option<&SecretString>); 1] {
        [("SUPABASE_JWT_SECRET", self.supabase_jwt_secret.as_ref())]
    }
}

/// External identity providers (Supabase, Clerk). Each provider is off unless configured.
#[derive(Debug, Clone, Default)]
pub struct IdentitySettings {
    /// The Supabase project URL; the issuer is `<url>/auth/v1`. No trailing slash.
    pub supabase_url: Option<String>,
    /// Whether Supabase anonymous sign-ins (`is_anonymous: true`) are accepted.
    pub supabase_allow_anonymous: bool,
    /// Clerk's Frontend API URL (the `iss` of its session tokens). No trailing slash.
    pub clerk_issuer: Option<String>,
    /// Clerk's PEM public key (verification without the network).
    pub clerk_jwt_key: Option<String>,
    /// The accepted `azp` values of Clerk tokens (empty: `azp` is not checked).
    pub clerk_authorized_parties: Vec<String>,
    /// Whether the first sight of an unknown identity creates a local user.
    pub auto_provision: bool,
}

#[derive(Debug, Clone)]
pub struct CorsSettings {
    pub origins: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: usize,
    pub allow_all_origins: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// ASVS 5.0 / NIST 800-63B: 12–128 characters, no composition rules.
    Modern,
    /// Additionally the source documents' rule: 8–128 with upper + lower + digit.
    Classic,
}

/// Accounts, tokens and sessions.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// HS256 | EdDSA | ES256.
    pub jwt_algorithm: String,
    pub jwt_private_key_file: Option<PathBuf>,
    /// `kid=path` pairs, newest first; for HS256 rotation use JWT_PREVIOUS_SECRETS instead.
    pub jwt_public_key_files: Vec<(String, PathBuf)>,
    pub jwt_previous_secrets: Vec<SecretString>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_token_idle: Duration,
    pub password_policy: PasswordPolicy,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    pub lockout_threshold: i32,
    pub lockout_base: Duration,
    pub lockout_max: Duration,
    /// How recent an authentication must be for a sensitive operation (step-up).
    pub step_up_max_age: Duration,
    /// Admins need a second factor (admin JSON routes refuse an aal1 session; the console lets
    /// an admin without one in only to enrol).
    pub mfa_required_for_admins: bool,
}

/// API keys (DESIGN §3).
#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    /// Live (not revoked, expired or rotated out) keys a user may hold.
    pub max_per_user: u32,
    /// How long a rotated key keeps working next to its replacement (zero: not at all).
    pub rotation_grace: Duration,
}

/// Per-IP limits (DESIGN §3). Every limit is a count per window; the per-route ones apply on top of
/// the global ones.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_minute: u32,
    pub per_hour: u32,
    pub login_per_minute: u32,
    pub register_per_minute: u32,
    pub refresh_per_minute: u32,
    pub password_per_minute: u32,
    /// Webhook deliveries per sender IP (instead of the global budgets).
    pub webhook_per_minute: u32,
    /// Client keys the in-memory limiter tracks before it coarsens keys (IPv4 /24, IPv6 /48).
    pub max_tracked_clients: usize,
    /// When set, the per-IP limits are shared by every instance through this Redis.
    pub redis_url: Option<SecretString>,
    pub redis_key_prefix: String,
}

/// The webhook inbox (the signing secrets are in [`Secrets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Seconds a signed timestamp may differ from now, in either direction.
    pub timestamp_tolerance: u64,
    /// Days a delivery is kept in the inbox (longer than the providers' retry horizon).
    pub retention_days: u32,
    /// The webhook routes' body limit (instead of MAX_BODY_BYTES).
    pub max_body_bytes: usize,
}

/// The attachment types rampart can recognise from content (ATTACHMENT_TYPES picks among them).
pub const ATTACHMENT_TYPE_NAMES: &[&str] = &["png", "jpeg", "webp", "gif", "pdf", "text"];

/// Conversations, messages and attachments (issue 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Members of one conversation, the creator included.
    pub max_members: usize,
    /// How long after sending its author may edit or delete a message.
    pub edit_window: time::Duration,
    /// The largest attachment, in bytes.
    pub attachment_max_bytes: usize,
    /// The attachment types accepted (sniffed from the content): names from
    /// [`ATTACHMENT_TYPE_NAMES`].
    pub attachment_types: Vec<String>,
    /// Days messages are kept; `None`: forever.
    pub retention_days: Option<u32>,
}

/// Which bus carries live events between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveBus {
    /// Postgres `LISTEN/NOTIFY` (nothing else to run).
    Postgres,
    /// Redis pub/sub on REDIS_URL.
    Redis,
}

impl LiveBus {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveBus::Postgres => "postgres",
            LiveBus::Redis => "redis",
        }
    }
}

/// Where mails go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailBackend {
    /// SMTP_URL (lettre; STARTTLS or implicit TLS).
    Smtp,
    /// The log and EMAIL_LOG_DIR (development; refused in production: links would be logged).
    Log,
}

impl EmailBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailBackend::Smtp => "smtp",
            EmailBackend::Log => "log",
        }
    }
}

/// Mail: the outbox's sender and what mails say.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub backend: EmailBackend,
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (implicit TLS), with
    /// credentials in the URL.
    pub smtp_url: Option<SecretString>,
    pub from: String,
    /// Where the links in mails point: the client app that handles `/verify-email?token=` and
    /// `/reset-password?token=` by calling the API.
    pub public_base_url: String,
    pub product_name: String,
    pub log_dir: PathBuf,
    /// Unverified users reach only `GET /api/v1/me`, the resend endpoint and logout.
    pub verification_required: bool,
    /// Notification kinds the operator switched off (`password_changed`, `new_device` …).
    pub notifications_off: Vec<String>,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub poll_interval: Duration,
    /// Link mails of one kind to one address per hour (password reset, verification resend).
    pub links_per_hour: u32,
}

impl EmailSettings {
    /// Whether the notification kind `name` was switched off.
    pub fn is_off(&self, name: &str) -> bool {
        self.notifications_off.iter().any(|n| n == name)
    }
}

/// The notification kinds EMAIL_NOTIFICATIONS_OFF may name.
pub const NOTIFICATION_KINDS: &[&str] = &[
    "password_changed",
    "email_changed",
    "email_change_requested",
    "mfa_enabled",
    "mfa_disabled",
    "recovery_code_used",
    "api_key_created",
    "new_device",
    "account_locked",
];

/// Live delivery over WebSocket.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub bus: LiveBus,
    pub max_per_user: u32,
    pub max_per_ip: u32,
    pub max_frame_bytes: usize,
    pub allow_no_origin: bool,
    pub ping_interval: Duration,
}

/// The HTTP server's connection timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// How long an idle keep-alive connection stays open (zero: no keep-alive). Must be longer
    /// than the idle timeout of any load balancer in front (60 s on common ones), or the balancer
    /// reuses connections the server is closing and answers 502s now and then.
    pub keep_alive: Duration,
    /// How long a client may take to send a request's head (actix's client request timeout).
    pub client_timeout: Duration,
    /// How long a request's body may take to arrive once its head is in (408 after).
    pub body_read_timeout: Duration,
    /// How long a stopping server lets requests in flight finish.
    pub shutdown_timeout: Duration,
}

/// The admin console's server-side sessions.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// A session unused this long is over.
    pub idle: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute: Duration,
}

/// Daily per-principal quotas (`None`: unlimited).
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    pub messages_sent_per_day: Option<u32>,
    pub api_keys_created_per_day: Option<u32>,
    pub data_exports_per_day: Option<u32>,
    pub attachments_uploaded_per_day: Option<u32>,
    /// A monthly quota (UTC calendar months): conversations started.
    pub conversations_created_per_month: Option<u32>,
    /// `scope:kind=n|unlimited` entries: a role's own limit, or (`api_key:`) a limit each API key
    /// has in addition to its owner's.
    pub overrides: Vec<QuotaOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaOverride {
    /// `admin`, `team_member`, `demo` or `api_key`.
    pub scope: String,
    /// `messages_sent`, `api_keys_created` or `data_exports`.
    pub kind: String,
    pub limit: Option<u32>,
}

pub const QUOTA_SCOPES: &[&str] = &["admin", "team_member", "demo", "api_key"];
pub const QUOTA_KINDS: &[&str] = &[
    "messages_sent",
    "api_keys_created",
    "data_exports",
    "attachments_uploaded",
    "conversations_created",
];

/// The effective configuration. Built once at start and shared read-only.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub debug: bool,
    pub host: String,
    pub port: u16,
    pub database: DatabaseSettings,
    pub secrets: Secrets,
    pub webhooks: WebhookSettings,
    pub conversations: ConversationSettings,
    pub live: LiveSettings,
    pub email: EmailSettings,
    pub admin_emails: Vec<String>,
    pub super_admin_email: Option<String>,
    /// Whether an ADMIN_EMAILS address makes a provider-provisioned user an admin (only when
    /// the provider says the address is verified).
    pub identity_admin_by_email: bool,
    pub identity: IdentitySettings,
    pub cors: CorsSettings,
    pub allowed_hosts: Vec<String>,
    pub security_headers_enabled: bool,
    pub max_body_bytes: usize,
    pub http: HttpSettings,
    pub rate_limit: RateLimitSettings,
    pub quotas: QuotaSettings,
    pub trusted_proxies: Vec<IpNet>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub enable_audit_logging: bool,
    pub docs_enabled: bool,
    pub auth: AuthSettings,
    pub api_keys: ApiKeySettings,
    pub console: ConsoleSettings,
    /// Whether DOCS_ENABLED was given explicitly (production keeps docs off unless it was).
    pub docs_explicit: bool,
    /// Where each non-default value came from, for `config show`.
    pub sources: BTreeMap<String, String>,
}

/// Where to read the layers from. `from_process()` for the real binary; tests build one by hand so
/// they never touch the process environment.
#[derive(Debug, Clone)]
pub struct Sources {
    pub config_dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub dotenv: Option<PathBuf>,
}

impl Sources {
    pub fn from_process() -> Self {
        let config_dir = std::env::var_os("RAMPART_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Sources {
            config_dir,
            env: std::env::vars().collect(),
            dotenv: Some(PathBuf::from(".env")),
        }
    }
}

impl Settings {
    /// Loads from the process environment and the files it names.
    pub fn load() -> Result<Settings, ConfigError> {
        Settings::load_from(&Sources::from_process())
    }

    pub fn load_from(sources: &Sources) -> Result<Settings, ConfigError> {
        let environment = match sources.env.get("ENVIRONMENT") {
            Some(v) if !v.trim().is_empty() => v.parse()?,
            _ => Environment::Development,
        };
        let mut layered = Layered {
            values: BTreeMap::new(),
        };
        let (default_name, default_text) = read_layer(sources, "default.toml", EMBEDDED_DEFAULT)?;
        layered.merge_toml(&default_name, &default_text)?;
        let embedded_env = match environment {
            Environment::Development => EMBEDDED_DEVELOPMENT,
            Environment::Test => EMBEDDED_TEST,
            Environment::Production => EMBEDDED_PRODUCTION,
        };
        let (env_name, env_text) = read_layer(
            sources,
            &format!("{}.toml", environment.as_str()),
            embedded_env,
        )?;
        layered.merge_toml(&env_name, &env_text)?;

        if environment == Environment::Development
            && let Some(path) = sources.dotenv.as_deref()
        {
            layered.merge_dotenv(path, &sources.env)?;
        }
        layered.merge_env(&sources.env);
        layered.into_settings(environment)
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// `host:port` to bind.
    pub fn bind_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The effective configuration as `KEY=value` lines, every secret shown as `***REDACTED***`
    /// and the database password masked inside DATABASE_URL.
    pub fn redacted_lines(&self) -> Vec<String> {
        spec::SETTINGS
            .iter()
            .filter_map(|setting| {
                let value = setting.shown(self)?;
                let k = setting.name;
                Some(match self.sources.get(k) {
                    Some(src) => format!("{k}={value}    # from {src}"),
                    None => format!("{k}={value}"),
                })
            })
            .collect()
    }
}

impl Layered {
    fn into_settings(self, environment: Environment) -> Result<Settings, ConfigError> {
        let database_url = match self.nonempty("DATABASE_URL")? {
            Some(url) => url,
            None => self.database_url_from_parts()?,
        };
        let cors_origins = self.list("CORS_ORIGINS")?;
        let log_format = match self.text("LOG_FORMAT")?.to_ascii_lowercase().as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "pretty" | "text" | "human" => LogFormat::Pretty,
            other => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    format!("`{other}` is not one of auto, json, pretty"),
                ));
            }
        };
        let mut trusted_proxies = Vec::new();
        for item in self.list("TRUSTED_PROXIES")? {
            trusted_proxies.push(parse_net(&item)?);
        }
        let docs_explicit = self.get("DOCS_ENABLED").is_some();
        let docs_enabled =
            self.boolean_or("DOCS_ENABLED", environment != Environment::Production)?;
        let port: u16 = self.number("PORT")?;
        let pool_size: u32 = self.number("DATABASE_POOL_SIZE")?;
        if pool_size == 0 {
            return Err(ConfigError::invalid(
                "DATABASE_POOL_SIZE",
                "must be at least 1",
            ));
        }
        let max_body_bytes: usize = self.number("MAX_BODY_BYTES")?;
        if max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "MAX_BODY_BYTES",
                "must be at least 1024",
            ));
        }

        let sources = self
            .values
            .iter()
            .filter(|(_, (_, src))| !src.contains("default.toml"))
            .map(|(k, (_, src))| (k.to_string(), src.clone()))
            .collect();

        Ok(Settings {
            environment,
            debug: self.boolean("DEBUG")?,
            host: self.text("HOST")?,
            port,
            database: DatabaseSettings {
                url: SecretString::from(database_url),
                pool_size,
                pool_timeout: Duration::from_millis(self.number("DATABASE_POOL_TIMEOUT_MS")?),
                test_on_checkout: self.boolean("DATABASE_TEST_ON_CHECKOUT")?,
                migrate_on_start: self.boolean("DATABASE_MIGRATE_ON_START")?,
                startup_wait: Duration::from_secs(self.number("DATABASE_STARTUP_WAIT_SECONDS")?),
            },
            secrets: Secrets {
                secret_key: self.secret("SECRET_KEY")?,
                jwt_secret: self.secret("JWT_SECRET")?,
                encryption_key: self.secret("ENCRYPTION_KEY")?,
                encryption_keys_previous: self
                    .list("ENCRYPTION_KEYS_PREVIOUS")?
                    .into_iter()
                    .map(SecretString::from)
                    .collect(),
                session_secret: self.secret("SESSION_SECRET")?,
                api_key_hash_secret: self.secret("API_KEY_HASH_SECRET")?,
                stripe_webhook_secret: self.secret("STRIPE_WEBHOOK_SECRET")?,
                clerk_webhook_secret: self.secret("CLERK_WEBHOOK_SECRET")?,
                supabase_jwt_secret: self.secret("SUPABASE_JWT_SECRET")?,
            },
            webhooks: WebhookSettings {
                timestamp_tolerance: self.number("WEBHOOK_TIMESTAMP_TOLERANCE")?,
                retention_days: self.number("WEBHOOK_RETENTION_DAYS")?,
                max_body_bytes: self.number("WEBHOOK_MAX_BODY_BYTES")?,
            },
            conversations: self.conversation_settings()?,
            live: self.live_settings()?,
            email: self.email_settings(environment)?,
            admin_emails: self
                .list("ADMIN_EMAILS")?
                .into_iter()
                .map(|e| e.to_lowercase())
                .collect(),
            super_admin_email: self
                .nonempty("SUPER_ADMIN_EMAIL")?
                .map(|e| e.trim().to_lowercase()),
            identity_admin_by_email: self.boolean("IDENTITY_ADMIN_BY_EMAIL")?,
            identity: IdentitySettings {
                supabase_url: self
                    .nonempty("SUPABASE_URL")?
                    .map(|u| u.trim().trim_end_matches('/').to_string()),
                supabase_allow_anonymous: self.boolean("SUPABASE_ALLOW_ANONYMOUS")?,
                clerk_issuer: self
                    .nonempty("CLERK_ISSUER")?
                    .map(|u| u.trim().trim_end_matches('/').to_string()),
                clerk_jwt_key: self
                    .nonempty("CLERK_JWT_KEY")?
                    .map(|k| k.trim().replace("\\n", "\n")),
                clerk_authorized_parties: self.list("CLERK_AUTHORIZED_PARTIES")?,
                auto_provision: self.boolean("IDENTITY_AUTO_PROVISION")?,
            },
            cors: CorsSettings {
                origins: cors_origins,
                allow_credentials: self.boolean("CORS_ALLOW_CREDENTIALS")?,
                max_age: self.number("CORS_MAX_AGE")?,
                allow_all_origins: self.boolean("ALLOW_ALL_ORIGINS")?,
            },
            allowed_hosts: self
                .list("ALLOWED_HOSTS")?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            security_headers_enabled: self.boolean("SECURITY_HEADERS_ENABLED")?,
            max_body_bytes,
            http: self.http_settings()?,
            rate_limit: self.rate_limit_settings()?,
            quotas: self.quota_settings()?,
            trusted_proxies,
            log_level: self.text("LOG_LEVEL")?,
            log_format,
            enable_audit_logging: self.boolean("ENABLE_AUDIT_LOGGING")?,
            docs_enabled,
            auth: self.auth_settings(environment)?,
            api_keys: self.api_key_settings()?,
            console: self.console_settings()?,
            docs_explicit,
            sources,
        })
    }

    fn auth_settings(&self, environment: Environment) -> Result<AuthSettings, ConfigError> {
        let policy = match self.text("PASSWORD_POLICY")?.to_ascii_lowercase().as_str() {
            "modern" | "nist" | "asvs" => PasswordPolicy::Modern,
            "classic" => PasswordPolicy::Classic,
            other => {
                return Err(ConfigError::invalid(
                    "PASSWORD_POLICY",
                    format!("`{other}` is not one of modern, classic"),
                ));
            }
        };
        let mut public_keys = Vec::new();
        for item in self.list("JWT_PUBLIC_KEY_FILES")? {
            let Some((kid, path)) = item.split_once('=') else {
                return Err(ConfigError::invalid(
                    "JWT_PUBLIC_KEY_FILES",
                    "entries must be kid=path",
                ));
            };
            public_keys.push((kid.trim().to_string(), PathBuf::from(path.trim())));
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let days = |key: &str| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(self.number::<u64>(key)? * 86_400))
        };
        Ok(AuthSettings {
            jwt_algorithm: self.text("JWT_ALGORITHM")?,
            jwt_private_key_file: self.nonempty("JWT_PRIVATE_KEY_FILE")?.map(PathBuf::from),
            jwt_public_key_files: public_keys,
            jwt_previous_secrets: self
                .list("JWT_PREVIOUS_SECRETS")?
                .into_iter()
                .map(SecretString::from)
                .collect(),
            jwt_issuer: self.text("JWT_ISSUER")?,
            jwt_audience: self.text("JWT_AUDIENCE")?,
            access_token_ttl: Duration::from_secs(self.number("ACCESS_TOKEN_TTL_SECONDS")?),
            refresh_token_ttl: days("REFRESH_TOKEN_TTL_DAYS")?,
            refresh_token_idle: days("REFRESH_TOKEN_IDLE_DAYS")?,
            password_policy: policy,
            argon2_memory_kib: self.number("ARGON2_MEMORY_KIB")?,
            argon2_iterations: self.number("ARGON2_ITERATIONS")?,
            argon2_parallelism: self.number("ARGON2_PARALLELISM")?,
            // One core is left to the async workers: argon2 on every core starves `/health` and
            // every other request (measured: /health p99 ×3.7 under a login flood on 2 cores).
            hash_concurrency: self
                .number_or("PASSWORD_HASH_CONCURRENCY", cores.saturating_sub(1).max(1))?
                .max(1),
            hash_queue: self.number("PASSWORD_HASH_QUEUE")?,
            lockout_threshold: self.number::<i32>("LOCKOUT_THRESHOLD")?.max(1),
            lockout_base: Duration::from_secs(self.number("LOCKOUT_BASE_SECONDS")?),
            lockout_max: Duration::from_secs(self.number("LOCKOUT_MAX_SECONDS")?),
            step_up_max_age: Duration::from_secs(
                self.number::<u64>("STEP_UP_MAX_AGE_MINUTES")?
                    .clamp(1, 24 * 60)
                    * 60,
            ),
            mfa_required_for_admins: self.boolean_or(
                "MFA_REQUIRED_FOR_ADMINS",
                environment == Environment::Production,
            )?,
        })
    }

    fn console_settings(&self) -> Result<ConsoleSettings, ConfigError> {
        let idle: u64 = self.number("ADMIN_SESSION_IDLE_MINUTES")?;
        let absolute: u64 = self.number("ADMIN_SESSION_ABSOLUTE_HOURS")?;
        if idle == 0 || absolute == 0 {
            return Err(ConfigError::invalid(
                "ADMIN_SESSION_IDLE_MINUTES",
                "ADMIN_SESSION_IDLE_MINUTES and ADMIN_SESSION_ABSOLUTE_HOURS must be at least 1",
            ));
        }
        Ok(ConsoleSettings {
            idle: Duration::from_secs(idle.saturating_mul(60)),
            absolute: Duration::from_secs(absolute.saturating_mul(3600)),
        })
    }

    fn http_settings(&self) -> Result<HttpSettings, ConfigError> {
        let seconds = |key: &str, min: u64| -> Result<Duration, ConfigError> {
            let n: u64 = self.number(key)?;
            if n < min || n > 86_400 {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between {min} and 86400 seconds"),
                ));
            }
            Ok(Duration::from_secs(n))
        };
        Ok(HttpSettings {
            keep_alive: seconds("HTTP_KEEP_ALIVE_SECONDS", 0)?,
            client_timeout: seconds("HTTP_CLIENT_TIMEOUT_SECONDS", 1)?,
            body_read_timeout: seconds("BODY_READ_TIMEOUT_SECONDS", 1)?,
            shutdown_timeout: seconds("HTTP_SHUTDOWN_TIMEOUT_SECONDS", 0)?,
        })
    }

    fn rate_limit_settings(&self) -> Result<RateLimitSettings, ConfigError> {
        let limit = |key: &str| -> Result<u32, ConfigError> {
            let n: u32 = self.number(key)?;
            if n == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be at least 1 (use RATE_LIMIT_ENABLED=false to switch limits off)",
                ));
            }
            Ok(n)
        };
        let max_tracked_clients: usize = self.number("RATE_LIMIT_MAX_TRACKED_CLIENTS")?;
        if max_tracked_clients < 1000 {
            return Err(ConfigError::invalid(
                "RATE_LIMIT_MAX_TRACKED_CLIENTS",
                "must be at least 1000",
            ));
        }
        let redis_url = self.secret("REDIS_URL")?;
        if let Some(url) = &redis_url {
            let scheme_ok = url::Url::parse(url.expose_secret())
                .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix"));
            if !scheme_ok {
                return Err(ConfigError::invalid(
                    "REDIS_URL",
                    "must be a redis://, rediss:// or redis+unix:// URL",
                ));
            }
        }
        Ok(RateLimitSettings {
            enabled: self.boolean("RATE_LIMIT_ENABLED")?,
            per_minute: limit("RATE_LIMIT_PER_MINUTE")?,
            per_hour: limit("RATE_LIMIT_PER_HOUR")?,
            login_per_minute: limit("RATE_LIMIT_LOGIN_PER_MINUTE")?,
            register_per_minute: limit("RATE_LIMIT_REGISTER_PER_MINUTE")?,
            refresh_per_minute: limit("RATE_LIMIT_REFRESH_PER_MINUTE")?,
            password_per_minute: limit("RATE_LIMIT_PASSWORD_PER_MINUTE")?,
            webhook_per_minute: limit("RATE_LIMIT_WEBHOOK_PER_MINUTE")?,
            max_tracked_clients,
            redis_url,
            redis_key_prefix: self.text("REDIS_KEY_PREFIX")?,
        })
    }

    /// A daily quota: a number, or `unlimited`.
    fn quota(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.string(key)? {
            None => Ok(Some(self.number_default(key)?)),
            Some(raw) => parse_quota(raw.trim())
                .ok_or_else(|| ConfigError::invalid(key, "must be a whole number or `unlimited`")),
        }
    }

    fn conversation_settings(&self) -> Result<ConversationSettings, ConfigError> {
        let max_members: usize = self.number("CONVERSATION_MAX_MEMBERS")?;
        if !(2..=1000).contains(&max_members) {
            return Err(ConfigError::invalid(
                "CONVERSATION_MAX_MEMBERS",
                "must be between 2 and 1000",
            ));
        }
        let minutes: u32 = self.number("MESSAGE_EDIT_WINDOW_MINUTES")?;
        let attachment_max_bytes: usize = self.number("ATTACHMENT_MAX_BYTES")?;
        if !(1..=100 * 1024 * 1024).contains(&attachment_max_bytes) {
            return Err(ConfigError::invalid(
                "ATTACHMENT_MAX_BYTES",
                "must be between 1 and 104857600 (100 MiB)",
            ));
        }
        let mut attachment_types = Vec::new();
        for name in self.list("ATTACHMENT_TYPES")? {
            let kind = name.trim().to_ascii_lowercase();
            if !ATTACHMENT_TYPE_NAMES.contains(&kind.as_str()) {
                return Err(ConfigError::invalid(
                    "ATTACHMENT_TYPES",
                    format!(
                        "`{name}` is not one of {}",
                        ATTACHMENT_TYPE_NAMES.join(", ")
                    ),
                ));
            }
            if !attachment_types.contains(&kind) {
                attachment_types.push(kind);
            }
        }
        let retention: u32 = self.number("MESSAGE_RETENTION_DAYS")?;
        Ok(ConversationSettings {
            max_members,
            edit_window: time::Duration::minutes(i64::from(minutes)),
            attachment_max_bytes,
            attachment_types,
            retention_days: (retention > 0).then_some(retention),
        })
    }

    fn email_settings(&self, environment: Environment) -> Result<EmailSettings, ConfigError> {
        let backend = match self.nonempty("EMAIL_BACKEND")? {
            None if environment == Environment::Production => EmailBackend::Smtp,
            None => EmailBackend::Log,
            Some(name) => match name.trim().to_ascii_lowercase().as_str() {
                "smtp" => EmailBackend::Smtp,
                "log" => EmailBackend::Log,
                _ => {
                    return Err(ConfigError::invalid("EMAIL_BACKEND", "must be smtp or log"));
                }
            },
        };
        let smtp_url = self.secret("SMTP_URL")?;
        if let Some(url) = &smtp_url {
            let parsed = url::Url::parse(url.expose_secret()).map_err(|_| {
                ConfigError::invalid("SMTP_URL", "is not a URL (smtp://host:587?tls=required)")
            })?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                return Err(ConfigError::invalid(
                    "SMTP_URL",
                    "must be smtp://host[:port][?tls=required] or smtps://host[:port]",
                ));
            }
        }
        let public_base_url = match self.nonempty("PUBLIC_BASE_URL")? {
            Some(url) => url.trim().trim_end_matches('/').to_string(),
            None => format!(
                "http://{}:{}",
                self.text("HOST")?,
                self.number::<u16>("PORT")?
            ),
        };
        let parsed = url::Url::parse(&public_base_url).map_err(|_| {
            ConfigError::invalid("PUBLIC_BASE_URL", "is not a URL (https://app.example.com)")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError::invalid(
                "PUBLIC_BASE_URL",
                "must be an http(s) URL",
            ));
        }
        let notifications_off = self.list("EMAIL_NOTIFICATIONS_OFF")?;
        if let Some(unknown) = notifications_off
            .iter()
            .find(|n| !NOTIFICATION_KINDS.contains(&n.as_str()))
        {
            return Err(ConfigError::invalid(
                "EMAIL_NOTIFICATIONS_OFF",
                format!(
                    "`{unknown}` is not a notification kind (one of {})",
                    NOTIFICATION_KINDS.join(", ")
                ),
            ));
        }
        let from = self.text("SMTP_FROM")?;
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::invalid(
                "SMTP_FROM",
                "is not an address (\"Name <user@host>\" or user@host)",
            ));
        }
        Ok(EmailSettings {
            backend,
            smtp_url,
            from,
            public_base_url,
            product_name: self.text("EMAIL_PRODUCT_NAME")?,
            log_dir: PathBuf::from(self.text("EMAIL_LOG_DIR")?),
            verification_required: self.boolean("EMAIL_VERIFICATION_REQUIRED")?,
            notifications_off,
            max_attempts: self.number::<u32>("EMAIL_MAX_ATTEMPTS")?.clamp(1, 100),
            retry_base: Duration::from_secs(
                self.number::<u64>("EMAIL_RETRY_BASE_SECONDS")?
                    .clamp(1, 86_400),
            ),
            poll_interval: Duration::from_millis(
                self.number::<u64>("EMAIL_POLL_INTERVAL_MS")?
                    .clamp(10, 60_000),
            ),
            links_per_hour: self.number::<u32>("EMAIL_LINKS_PER_HOUR")?.clamp(1, 1000),
        })
    }

    fn live_settings(&self) -> Result<LiveSettings, ConfigError> {
        let bus = match self.text("LIVE_BUS")?.trim().to_ascii_lowercase().as_str() {
            "postgres" => LiveBus::Postgres,
            "redis" => {
                if self.secret("REDIS_URL")?.is_none() {
                    return Err(ConfigError::invalid(
                        "LIVE_BUS",
                        "is redis but REDIS_URL is not set",
                    ));
                }
                LiveBus::Redis
            }
            _ => {
                return Err(ConfigError::invalid(
                    "LIVE_BUS",
                    "must be postgres or redis",
                ));
            }
        };
        let max_per_user: u32 = self.number("WS_MAX_PER_USER")?;
        let max_per_ip: u32 = self.number("WS_MAX_PER_IP")?;
        if !(1..=1000).contains(&max_per_user) {
            return Err(ConfigError::invalid(
                "WS_MAX_PER_USER",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=100_000).contains(&max_per_ip) {
            return Err(ConfigError::invalid(
                "WS_MAX_PER_IP",
                "must be between 1 and 100000",
            ));
        }
        let max_frame_bytes: usize = self.number("WS_MAX_FRAME_BYTES")?;
        if !(256..=1024 * 1024).contains(&max_frame_bytes) {
            return Err(ConfigError::invalid(
                "WS_MAX_FRAME_BYTES",
                "must be between 256 and 1048576",
            ));
        }
        let ping: u64 = self.number("WS_PING_INTERVAL_SECONDS")?;
        if !(1..=300).contains(&ping) {
            return Err(ConfigError::invalid(
                "WS_PING_INTERVAL_SECONDS",
                "must be between 1 and 300",
            ));
        }
        Ok(LiveSettings {
            bus,
            max_per_user,
            max_per_ip,
            max_frame_bytes,
            allow_no_origin: self.boolean("WS_ALLOW_NO_ORIGIN")?,
            ping_interval: Duration::from_secs(ping),
        })
    }

    fn quota_settings(&self) -> Result<QuotaSettings, ConfigError> {
        let mut overrides = Vec::new();
        for item in self.list("QUOTA_OVERRIDES")? {
            let parsed = item.split_once(':').and_then(|(scope, rest)| {
                let (kind, limit) = rest.split_once('=')?;
                let (scope, kind) = (scope.trim(), kind.trim());
                (QUOTA_SCOPES.contains(&scope) && QUOTA_KINDS.contains(&kind)).then_some(())?;
                Some(QuotaOverride {
                    scope: scope.to_string(),
                    kind: kind.to_string(),
                    limit: parse_quota(limit.trim())?,
                })
            });
            match parsed {
                Some(o) => overrides.push(o),
                None => {
                    return Err(ConfigError::invalid(
                        "QUOTA_OVERRIDES",
                        format!(
                            "`{item}` is not scope:kind=n|unlimited (scopes: {}; kinds: {})",
                            QUOTA_SCOPES.join(", "),
                            QUOTA_KINDS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(QuotaSettings {
            messages_sent_per_day: self.quota("QUOTA_MESSAGES_PER_DAY")?,
            api_keys_created_per_day: self.quota("QUOTA_API_KEYS_PER_DAY")?,
            data_exports_per_day: self.quota("QUOTA_EXPORTS_PER_DAY")?,
            attachments_uploaded_per_day: self.quota("QUOTA_ATTACHMENTS_PER_DAY")?,
            conversations_created_per_month: self.quota("QUOTA_CONVERSATIONS_PER_MONTH")?,
            overrides,
        })
    }

    fn api_key_settings(&self) -> Result<ApiKeySettings, ConfigError> {
        let max_per_user: u32 = self.number("API_KEY_MAX_PER_USER")?;
        if max_per_user == 0 {
            return Err(ConfigError::invalid(
                "API_KEY_MAX_PER_USER",
                "must be at least 1",
            ));
        }
        let grace_hours: u64 = self.number("API_KEY_ROTATION_GRACE_HOURS")?;
        Ok(ApiKeySettings {
            max_per_user,
            rotation_grace: Duration::from_secs(grace_hours.saturating_mul(3600)),
        })
    }

    fn database_url_from_parts(&self) -> Result<String, ConfigError> {
        let host = self.text("DATABASE_HOST")?;
        let port: u16 = self.number("DATABASE_PORT")?;
        let name = self.text("DATABASE_NAME")?;
        let user = self.text("DATABASE_USER")?;
        let password = self.string("DATABASE_PASSWORD")?.filter(|p| !p.is_empty());
        let sslmode = self.text("DATABASE_SSLMODE")?;
        let mut url = url::Url::parse("postgres://localhost/")
            .map_err(|e| ConfigError::invalid("DATABASE_URL", e.to_string()))?;
        let host_for_url = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        url.set_host(Some(&host_for_url)).map_err(|e| {
            ConfigError::invalid("DATABASE_HOST", format!("is not a valid host: {e}"))
        })?;
        let _ = url.set_port(Some(port));
        let _ = url.set_username(&user);
        if let Some(password) = password {
            let _ = url.set_password(Some(&password));
        }
        url.set_path(&name);
        url.query_pairs_mut().append_pair("sslmode", &sslmode);
        Ok(url.to_string())
    }
}

fn parse_quota(raw: &str) -> Option<Option<u32>> {
    if raw.eq_ignore_ascii_case("unlimited") {
        return Some(None);
    }
    raw.parse::<u32>().ok().map(Some)
}

pub(crate) fn quota_text(limit: Option<u32>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn parse_net(item: &str) -> Result<IpNet, ConfigError> {
    if let Ok(net) = item.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        ConfigError::invalid(
            "TRUSTED_PROXIES",
            format!("`{item}` is not an IP address or CIDR block"),
        )
    })
}

/// Replaces the password in a URL with `***REDACTED***`; a value that does not parse as a URL is
/// hidden entirely (it might be a connection string with the password inside).
pub fn redact_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(REDACTED));
            }
            url.to_string()
        }
        Err(_) => REDACTED.to_string(),
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
