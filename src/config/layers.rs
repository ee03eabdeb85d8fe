//! The layers (`config/default.toml` → `config/<ENVIRONMENT>.toml` → `.env` in development →
//! process environment) merged into raw values with their source, and the typed getters that fall
//! back to each key's declared default (`spec::SETTINGS`). `settings.rs` turns them into `Settings`.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use secrecy::SecretString;

use super::settings::{ConfigError, Sources};
use super::spec::{self, DefaultValue, KNOWN_KEYS};

/// A raw value from one layer, before typing. TOML values keep their type; environment values are
/// strings and are parsed per key.
#[derive(Debug, Clone)]
pub(super) enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) struct Layered {
    pub(super) values: BTreeMap<&'static str, (Raw, String)>,
}

pub(super) fn read_layer(
    sources: &Sources,
    file: &str,
    embedded: &str,
) -> Result<(String, String), ConfigError> {
    let path = sources.config_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path.display().to_string(), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((format!("{file} (built in)"), embedded.to_string()))
        }
        Err(e) => Err(ConfigError::File {
            file: path.display().to_string(),
            message: format!("cannot be read: {e}"),
        }),
    }
}

fn known_key(name: &str) -> Option<&'static str> {
    KNOWN_KEYS.iter().copied().find(|k| *k == name)
}

impl Layered {
    pub(super) fn merge_toml(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                file: file.to_string(),
                message: format!("is not valid TOML: {}", e.message()),
            })?;
        for (key, value) in table {
            let upper = key.to_ascii_uppercase();
            let Some(name) = known_key(&upper).filter(|_| key == key.to_ascii_lowercase()) else {
                return Err(ConfigError::File {
                    file: file.to_string(),
                    message: format!(
                        "unknown key `{key}` (keys are lower-case environment variable names; see .env.example)"
                    ),
                });
            };
            let raw = match value {
                toml::Value::String(s) => Raw::Str(s),
                toml::Value::Integer(i) => Raw::Int(i),
                toml::Value::Boolean(b) => Raw::Bool(b),
                toml::Value::Array(items) => {
                    let mut list = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            toml::Value::String(s) => list.push(s),
                            _ => {
                                return Err(ConfigError::File {
                                    file: file.to_string(),
                                    message: format!("`{key}` must be a list of strings"),
                                });
                            }
                        }
                    }
                    Raw::List(list)
                }
                _ => {
                    return Err(ConfigError::File {
                        file: file.to_string(),
                        message: format!("`{key}` must be a string, integer, boolean or list"),
                    });
                }
            };
            self.values.insert(name, (raw, file.to_string()));
        }
        self.apply_cors_alias();
        Ok(())
    }

    /// `.env` fills in what the real environment does not set (the usual dotenv rule).
    pub(super) fn merge_dotenv(
        &mut self,
        path: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ConfigError::File {
                    file: path.display().to_string(),
                    message: format!("cannot be read: {e}"),
                });
            }
        };
        for item in iter {
            let (key, value) = item.map_err(|e| ConfigError::File {
                file: path.display().to_string(),
                message: format!("has a line that does not parse: {e}"),
            })?;
            if env.contains_key(&key) {
                continue;
            }
            if let Some(name) = known_key(&key) {
                self.values
                    .insert(name, (Raw::Str(value), path.display().to_string()));
            }
        }
        self.apply_cors_alias();
        Ok(())
    }

    /// BACKEND_CORS_ORIGINS (the FastAPI templates' name) stands for CORS_ORIGINS from the layer
    /// that set it, unless that layer also set CORS_ORIGINS.
    fn apply_cors_alias(&mut self) {
        if let Some((raw, source)) = self.values.remove("BACKEND_CORS_ORIGINS") {
            let same_layer_has_primary = self
                .values
                .get("CORS_ORIGINS")
                .is_some_and(|(_, primary_source)| *primary_source == source);
            if !same_layer_has_primary {
                self.values.insert("CORS_ORIGINS", (raw, source));
            }
        }
    }

    pub(super) fn merge_env(&mut self, env: &BTreeMap<String, String>) {
        for name in KNOWN_KEYS {
            if let Some(value) = env.get(*name) {
                self.values
                    .insert(name, (Raw::Str(value.clone()), "environment".to_string()));
            }
        }
        self.apply_cors_alias();
    }

    pub(super) fn get(&self, key: &str) -> Option<&Raw> {
        self.values.get(key).map(|(raw, _)| raw)
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Raw::Str(s)) => Ok(Some(s.clone())),
            Some(Raw::Int(i)) => Ok(Some(i.to_string())),
            Some(Raw::Bool(b)) => Ok(Some(b.to_string())),
            Some(Raw::List(_)) => Err(ConfigError::invalid(key, "must be a single value")),
        }
    }

    /// A non-empty string; an empty one counts as unset.
    pub(super) fn nonempty(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.string(key)?.filter(|s| !s.trim().is_empty()))
    }

    pub(super) fn secret(&self, key: &str) -> Result<Option<SecretString>, ConfigError> {
        // Secrets are used exactly as written: no trimming, so what is validated is what is used.
        Ok(self
            .string(key)?
            .filter(|s| !s.is_empty())
            .map(SecretString::from))
    }

    /// A string, or its declared default when unset or empty.
    pub(super) fn text(&self, key: &str) -> Result<String, ConfigError> {
        match (self.nonempty(key)?, spec::default_of(key)) {
            (Some(value), _) => Ok(value),
            (None, DefaultValue::Str(default)) => Ok(default.to_string()),
            (None, _) => Err(undeclared(key)),
        }
    }

    pub(super) fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match spec::default_of(key) {
            DefaultValue::Bool(default) => self.boolean_or(key, default),
            _ => Err(undeclared(key)),
        }
    }

    /// A boolean whose default is worked out at load time.
    pub(super) fn boolean_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Raw::Bool(b)) => Ok(*b),
            Some(Raw::Str(s)) => parse_bool(key, s),
            Some(_) => Err(ConfigError::invalid(key, "must be true or false")),
        }
    }

    pub(super) fn number<T: TryFrom<i64> + FromStr>(&self, key: &str) -> Result<T, ConfigError> {
        let default = self.number_default(key)?;
        self.number_or(key, default)
    }

    pub(super) fn number_default<T: TryFrom<i64>>(&self, key: &str) -> Result<T, ConfigError> {
        match spec::default_of(key) {
            DefaultValue::Int(default) => T::try_from(default).map_err(|_| undeclared(key)),
            _ => Err(undeclared(key)),
        }
    }

    /// A number whose default is worked out at load time.
    pub(super) fn number_or<T: TryFrom<i64> + FromStr>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        let parsed = match self.get(key) {
            None => return Ok(default),
            Some(Raw::Int(i)) => T::try_from(*i).ok(),
            Some(Raw::Str(s)) => s.trim().parse::<T>().ok(),
            Some(_) => None,
        };
        parsed.ok_or_else(|| {
            ConfigError::invalid(key, "must be a non-negative whole number in range")
        })
    }

    pub(super) fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items = match self.get(key) {
            None => match spec::default_of(key) {
                DefaultValue::List(items) => items.iter().map(|s| s.to_string()).collect(),
                _ => Vec::new(),
            },
            Some(Raw::List(items)) => items.clone(),
            Some(Raw::Str(s)) => parse_list(s),
            Some(_) => return Err(ConfigError::invalid(key, "must be a comma-separated list")),
        };
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }
}

/// A key read with a getter its declaration does not fit: a bug in rampart, reported instead of
/// panicking (a unit test loads every default, so it cannot ship).
pub(super) fn undeclared(key: &str) -> ConfigError {
    ConfigError::invalid(
        key,
        "has no declared default of this type (a bug in rampart)",
    )
}

fn parse_bool(key: &str, s: &str) -> Result<bool, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::invalid(
            key,
            format!("`{other}` is not a boolean (use true or false)"),
        )),
    }
}

/// Comma-separated, or a JSON array as FastAPI settings write it (`["https://a","https://b"]`).
fn parse_list(s: &str) -> Vec<String> {
    let trimmed = s.trim();
    if trimmed.starts_with('[')
        && let Ok(items) = serde_json::from_str::<Vec<String>>(trimmed)
    {
        return items;
    }
    trimmed.split(',').map(|p| p.trim().to_string()).collect()
}
