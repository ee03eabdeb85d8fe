//! One declaration per setting: its name, type, default, whether it is secret, a doc line, and how
//! `config show` prints it.
//!
//! Everything else is derived from `SETTINGS`: the keys the loader accepts (`KNOWN_KEYS`), the
//! secrets `check-config` requires (`SECRET_KEYS`, `Secrets::iter`), the defaults the loader falls
//! back to (`default_of`), the lines of `config show` and their redaction (`show`). Tests check
//! README's configuration table and `.env.example` against it (tests/cli/config.rs), so a key
//! missing there, or a wrong default, fails the build's tests. `config/default.toml` repeats none of
//! the defaults: it stays for an operator's overrides.
//!
//! Why not figment (or `config`): neither is a dependency today, and both would need their errors
//! mapped back onto today's messages (`PORT: must be a non-negative whole number in range`, an
//! unknown key named with its file, `.env` filling in only what the environment does not set, the
//! `BACKEND_CORS_ORIGINS` alias decided per layer), which `check-config`, `serve` and the golden
//! tests in tests/cli/golden/ keep byte for byte. That mapping would be about as long as the
//! hand-written layering in `layers.rs` (under 300 lines), so the layering stays hand-written; only
//! the declarations moved here.

use secrecy::{ExposeSecret, SecretString};

use super::settings::{REDACTED, Secrets, Settings, redact_url_password};

/// What a setting holds (the type the loader parses it as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A non-negative whole number.
    Int,
    /// Text.
    Str,
    /// Comma-separated, or a JSON array / TOML list.
    List,
    /// A whole number or `unlimited`.
    Quota,
    /// A secret: never printed, checked by `check-config`.
    Secret,
}

/// The value a setting has when no layer sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Unset (empty).
    None,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    List(&'static [&'static str]),
    /// Worked out when loading; the text says how, as README shows it.
    Computed(&'static str),
}

impl DefaultValue {
    /// The default as `config show` and `.env.example` write it, or `None` when there is no single
    /// value to write (unset, empty, or computed).
    pub fn text(&self) -> Option<String> {
        match self {
            DefaultValue::None | DefaultValue::Computed(_) => None,
            DefaultValue::Bool(b) => Some(b.to_string()),
            DefaultValue::Int(i) => Some(i.to_string()),
            DefaultValue::Str(s) => (!s.is_empty()).then(|| s.to_string()),
            DefaultValue::List(items) => (!items.is_empty()).then(|| items.join(",")),
        }
    }
}

/// Reads one secret out of `Secrets`.
pub type SecretGetter = fn(&Secrets) -> Option<&SecretString>;

/// How `config show` prints a setting.
#[derive(Debug, Clone, Copy)]
pub enum Show {
    /// As this function renders the typed value.
    Plain(fn(&Settings) -> String),
    /// A required secret: `***REDACTED***` when set, `(unset)` when not.
    Secret(SecretGetter),
    /// An optional secret (unset: its feature is off), shown like a required one; not in
    /// `SECRET_KEYS`, checked by `check-config` only when set.
    OptionalSecret(SecretGetter),
    /// A URL that may carry a password: shown with the password masked.
    Url(fn(&Settings) -> Option<&SecretString>),
    /// A list of secrets: only how many there are.
    SecretList(fn(&Settings) -> usize),
    /// No line of its own (a part of DATABASE_URL, an alias, a value folded into another).
    Hidden,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// The environment variable; the TOML key is the same in lower case.
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    /// Never printed as is (secrets, passwords, URLs that may carry one).
    pub secret: bool,
    pub doc: &'static str,
    pub show: Show,
    /// Read from the process environment only (ENVIRONMENT picks the files, so no file sets it).
    pub env_only: bool,
}

pub(super) const fn setting(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    doc: &'static str,
    show: fn(&Settings) -> String,
) -> SettingSpec {
    SettingSpec {
        name,
        kind,
        default,
        secret: false,
        doc,
        show: Show::Plain(show),
        env_only: false,
    }
}

/// A setting with no line of its own in `config show`.
pub(super) const fn hidden(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    secret: bool,
    doc: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        kind,
        default,
        secret,
        doc,
        show: Show::Hidden,
        env_only: false,
    }
}

/// One of the required secrets (`check-config` checks each).
pub(super) const fn secret(
    name: &'static str,
    doc: &'static str,
    get: SecretGetter,
) -> SettingSpec {
    SettingSpec {
        name,
        kind: Kind::Secret,
        default: DefaultValue::None,
        secret: true,
        doc,
        show: Show::Secret(get),
        env_only: false,
    }
}

pub use super::table::SETTINGS;

const fn layered_count() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < SETTINGS.len() {
        if !SETTINGS[i].env_only {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn layered_names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < SETTINGS.len() {
        if !SETTINGS[i].env_only {
            out[n] = SETTINGS[i].name;
            n += 1;
        }
        i += 1;
    }
    out
}

const fn secret_count() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < SETTINGS.len() {
        if let Show::Secret(_) = SETTINGS[i].show {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The required secrets' names and accessors, in `SETTINGS` order.
pub(crate) const SECRET_COUNT: usize = secret_count();

const fn secret_specs() -> [(&'static str, SecretGetter); SECRET_COUNT] {
    let mut out: [(&'static str, SecretGetter); SECRET_COUNT] = [("", |_| None); SECRET_COUNT];
    let (mut i, mut n) = (0, 0);
    while i < SETTINGS.len() {
        if let Show::Secret(get) = SETTINGS[i].show {
            out[n] = (SETTINGS[i].name, get);
            n += 1;
        }
        i += 1;
    }
    out
}

pub(crate) const SECRETS: [(&str, SecretGetter); SECRET_COUNT] = secret_specs();

const fn secret_names() -> [&'static str; SECRET_COUNT] {
    let mut out = [""; SECRET_COUNT];
    let mut i = 0;
    while i < SECRET_COUNT {
        out[i] = SECRETS[i].0;
        i += 1;
    }
    out
}

const LAYERED: [&str; layered_count()] = layered_names();
const SECRET_NAMES: [&str; SECRET_COUNT] = secret_names();

/// Every key the layers may set, as its environment variable name.
pub const KNOWN_KEYS: &[&str] = &LAYERED;

/// The secrets `check-config` requires, by variable name, in the order they are reported.
pub const SECRET_KEYS: &[&str] = &SECRET_NAMES;

/// The declaration of `name`, if rampart knows it.
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The declared default of `name` (`Unset` for a name rampart does not know).
pub fn default_of(name: &str) -> DefaultValue {
    spec(name).map_or(DefaultValue::None, |s| s.default)
}

impl SettingSpec {
    /// This setting's value in `settings` as `config show` prints it (secrets redacted), or `None`
    /// when it has no line of its own.
    pub fn shown(&self, settings: &Settings) -> Option<String> {
        Some(match self.show {
            Show::Plain(render) => render(settings),
            Show::Secret(get) | Show::OptionalSecret(get) => {
                let shown = if get(&settings.secrets).is_some() {
                    REDACTED
                } else {
                    "(unset)"
                };
                shown.to_string()
            }
            Show::Url(get) => get(settings)
                .map(|u| redact_url_password(u.expose_secret()))
                .unwrap_or_default(),
            Show::SecretList(count) => match count(settings) {
                0 => String::new(),
                n => format!("{REDACTED} ({n} secret(s))"),
            },
            Show::Hidden => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Sources;

    #[test]
    fn names_are_unique_upper_case_and_defaults_fit_their_kind() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name), "{} declared twice", s.name);
            assert_eq!(s.name, s.name.to_ascii_uppercase());
            let fits = match (s.kind, s.default) {
                (_, DefaultValue::None | DefaultValue::Computed(_)) => true,
                (Kind::Bool, DefaultValue::Bool(_)) => true,
                (Kind::Int | Kind::Quota, DefaultValue::Int(i)) => i >= 0,
                (Kind::Str, DefaultValue::Str(_)) => true,
                (Kind::List, DefaultValue::List(_)) => true,
                _ => false,
            };
            assert!(
                fits,
                "{}: default {:?} is not a {:?}",
                s.name, s.default, s.kind
            );
            assert!(!s.doc.is_empty(), "{} has no doc line", s.name);
            if s.kind == Kind::Secret {
                assert!(
                    s.secret,
                    "{} is a secret kind but not marked secret",
                    s.name
                );
            }
            // A secret is never printed as is: only redacted, masked or not at all.
            if s.secret {
                assert!(
                    !matches!(s.show, Show::Plain(_)),
                    "{} is shown in clear",
                    s.name
                );
            }
        }
    }

    #[test]
    fn derived_lists_follow_the_table() {
        assert_eq!(KNOWN_KEYS.len() + 1, SETTINGS.len());
        assert!(!KNOWN_KEYS.contains(&"ENVIRONMENT"));
        assert_eq!(
            SECRET_KEYS,
            [
                "SECRET_KEY",
                "JWT_SECRET",
                "ENCRYPTION_KEY",
                "SESSION_SECRET",
                "API_KEY_HASH_SECRET",
                "STRIPE_WEBHOOK_SECRET",
                "CLERK_WEBHOOK_SECRET",
            ]
        );
    }

    /// Nothing set anywhere (empty files, no environment): every value is its declared default,
    /// and `config show` prints exactly that.
    #[test]
    fn every_declared_default_loads_and_is_shown_as_declared() {
        let dir = std::env::temp_dir().join(format!("rampart-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("default.toml"), "").unwrap();
        std::fs::write(dir.join("test.toml"), "").unwrap();
        let env = BTreeMap::from([("ENVIRONMENT".to_string(), "test".to_string())]);
        let settings = Settings::load_from(&Sources {
            config_dir: dir,
            env,
            dotenv: None,
        })
        .unwrap();
        let lines = settings.redacted_lines();
        for s in SETTINGS.iter().filter(|s| !s.env_only) {
            let Some(shown) = s.shown(&settings) else {
                continue;
            };
            assert!(lines.contains(&format!("{}={shown}", s.name)), "{}", s.name);
            match (s.default, s.default.text()) {
                (_, Some(text)) => assert_eq!(shown, text, "{}", s.name),
                (DefaultValue::Computed(_), None) => {}
                (_, None) if s.kind == Kind::Secret => assert_eq!(shown, "(unset)", "{}", s.name),
                (_, None) => assert_eq!(shown, "", "{}", s.name),
            }
        }
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/rampart?sslmode=prefer"
        );
    }
}
