//! Layering (default.toml → <ENV>.toml → .env → environment) and every check-config rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rampart::config::settings::REDACTED;
use rampart::config::{Environment, Settings, Sources, check};
use secrecy::ExposeSecret;

use crate::support::{base_env, config_dir};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-cfg-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(env: BTreeMap<String, String>) -> Settings {
    Settings::load_from(&Sources {
        config_dir: config_dir(),
        env,
        dotenv: None,
    })
    .unwrap()
}

fn good_env() -> BTreeMap<String, String> {
    base_env("postgres://postgres@127.0.0.1:5432/rampart")
}

fn variables(settings: &Settings) -> Vec<&'static str> {
    check(settings).iter().map(|p| p.variable).collect()
}

#[test]
fn layers_apply_in_order() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("default.toml"),
        "port = 1000\nhost = \"0.0.0.0\"\nlog_level = \"info\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("development.toml"),
        "port = 2000\nlog_level = \"debug\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "PORT=3000\nCORS_ORIGINS=http://a.test,http://b.test\nHOST=10.0.0.1\n",
    )
    .unwrap();
    let mut env = BTreeMap::new();
    env.insert("HOST".to_string(), "127.0.0.2".to_string());
    let sources = Sources {
        config_dir: dir.clone(),
        env,
        dotenv: Some(dir.join(".env")),
    };
    let s = Settings::load_from(&sources).unwrap();
    assert_eq!(s.environment, Environment::Development);
    assert_eq!(
        s.log_level, "debug",
        "environment file overrides default.toml"
    );
    assert_eq!(s.port, 3000, ".env overrides the TOML files");
    assert_eq!(s.host, "127.0.0.2", "the real environment overrides .env");
    assert_eq!(s.cors.origins, vec!["http://a.test", "http://b.test"]);
}

#[test]
fn dotenv_is_ignored_outside_development() {
    let dir = temp_dir();
    std::fs::write(dir.join(".env"), "PORT=3000\n").unwrap();
    let mut env = BTreeMap::new();
    env.insert("ENVIRONMENT".to_string(), "production".to_string());
    let sources = Sources {
        config_dir: config_dir(),
        env,
        dotenv: Some(dir.join(".env")),
    };
    let s = Settings::load_from(&sources).unwrap();
    assert_eq!(s.environment, Environment::Production);
    assert_eq!(s.port, 8080);
}

#[test]
fn unknown_toml_key_is_an_error_naming_file_and_key() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("default.toml"),
        "port = 1\nrate_limit_per_minit = 5\n",
    )
    .unwrap();
    let err = Settings::load_from(&Sources {
        config_dir: dir.clone(),
        env: BTreeMap::new(),
        dotenv: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("rate_limit_per_minit"), "{err}");
    assert!(err.contains("default.toml"), "{err}");
}

#[test]
fn bad_values_are_errors_naming_the_variable() {
    for (key, value) in [
        ("PORT", "eighty"),
        ("DEBUG", "maybe"),
        ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ("ENVIRONMENT", "staging"),
        ("LOG_FORMAT", "xml"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RATE_LIMIT_LOGIN_PER_MINUTE", "-1"),
        ("RATE_LIMIT_MAX_TRACKED_CLIENTS", "10"),
        ("REDIS_URL", "http://cache.internal:6379"),
        ("QUOTA_EXPORTS_PER_DAY", "lots"),
        ("QUOTA_OVERRIDES", "admin:data_exports"),
        ("QUOTA_OVERRIDES", "root:data_exports=3"),
        ("QUOTA_OVERRIDES", "admin:downloads=3"),
    ] {
        let mut env = good_env();
        env.insert(key.into(), value.into());
        let err = Settings::load_from(&Sources {
            config_dir: config_dir(),
            env,
            dotenv: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn rate_limit_and_quota_settings_have_the_documented_defaults_and_parse_overrides() {
    let mut env = good_env();
    env.retain(|k, _| !k.starts_with("RATE_LIMIT_"));
    let s = load(env);
    let r = &s.rate_limit;
    assert!(r.enabled);
    assert_eq!(
        (
            r.per_minute,
            r.per_hour,
            r.login_per_minute,
            r.register_per_minute
        ),
        (60, 1000, 10, 5)
    );
    assert_eq!((r.refresh_per_minute, r.password_per_minute), (30, 5));
    assert!(r.redis_url.is_none());
    let q = &s.quotas;
    assert_eq!(
        (
            q.messages_sent_per_day,
            q.api_keys_created_per_day,
            q.data_exports_per_day
        ),
        (Some(100), Some(20), Some(5))
    );
    let mut env = good_env();
    env.insert("QUOTA_MESSAGES_PER_DAY".into(), "unlimited".into());
    env.insert(
        "QUOTA_OVERRIDES".into(),
        "demo:messages_sent=10, api_key:data_exports=unlimited".into(),
    );
    let s = load(env);
    assert_eq!(s.quotas.messages_sent_per_day, None);
    assert_eq!(s.quotas.overrides.len(), 2);
    assert_eq!(s.quotas.overrides[0].limit, Some(10));
    assert_eq!(s.quotas.overrides[1].limit, None);
    let shown = s.redacted_lines().join("\n");
    assert!(
        shown.contains("QUOTA_MESSAGES_PER_DAY=unlimited"),
        "{shown}"
    );
    assert!(
        shown.contains("QUOTA_OVERRIDES=demo:messages_sent=10,api_key:data_exports=unlimited"),
        "{shown}"
    );
}

#[test]
fn database_url_is_built_from_parts_when_unset() {
    let mut env = good_env();
    env.remove("DATABASE_URL");
    for (k, v) in [
        ("DATABASE_HOST", "db.internal"),
        ("DATABASE_PORT", "6543"),
        ("DATABASE_NAME", "app"),
        ("DATABASE_USER", "svc"),
        ("DATABASE_PASSWORD", "p@ss:w/rd"),
        ("DATABASE_SSLMODE", "verify-full"),
    ] {
        env.insert(k.into(), v.into());
    }
    let s = load(env);
    let url = url::Url::parse(s.database.url.expose_secret()).unwrap();
    assert_eq!(url.host_str(), Some("db.internal"));
    assert_eq!(url.port(), Some(6543));
    assert_eq!(url.path(), "/app");
    assert_eq!(url.username(), "svc");
    assert_eq!(url.password(), Some("p%40ss%3Aw%2Frd"));
    assert!(url.query().unwrap().contains("sslmode=verify-full"));
}

#[test]
fn backend_cors_origins_alias_and_json_lists() {
    let mut env = good_env();
    env.insert(
        "BACKEND_CORS_ORIGINS".into(),
        r#"["https://a.example","https://b.example"]"#.into(),
    );
    assert_eq!(
        load(env.clone()).cors.origins,
        vec!["https://a.example", "https://b.example"]
    );
    env.insert("CORS_ORIGINS".into(), "https://c.example".into());
    assert_eq!(
        load(env).cors.origins,
        vec!["https://c.example"],
        "CORS_ORIGINS wins over the alias"
    );
}

#[test]
fn generated_secrets_pass() {
    assert!(
        check(&load(good_env())).is_empty(),
        "{:?}",
        check(&load(good_env()))
    );
}

#[test]
fn each_weak_secret_is_rejected() {
    let weak = [
        ("missing", None),
        ("short", Some("Zx8#kq2LmP9v")),
        (
            "placeholder changeme",
            Some("changeme-changeme-changeme-changeme-1"),
        ),
        (
            "contains secret",
            Some("my-Secret-value-aB3dE5gH7jK9mN1pQ3rS5"),
        ),
        (
            "contains password",
            Some("passwordpasswordXk29sj3kd93jd83hd7"),
        ),
        (
            "your-secret-key",
            Some("your-secret-key-aZ81kq02mX7vB4nC6dE8"),
        ),
        (
            "dev-specific-key-here",
            Some("dev-specific-key-here-9a8b7c6d5e4f3a2b"),
        ),
        (
            "repeated character",
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ),
        (
            "repeated pattern",
            Some("ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"),
        ),
        (
            "few distinct characters",
            Some("abababababcabababababcabababababcabababab"),
        ),
        ("words", Some("correct-horse-battery-staple-correct-horse")),
        (
            "keyboard walk",
            Some("qwertyuiopasdfghjklzxcvbnm1234567890"),
        ),
        ("digits only", Some("31415926535897932384626433832795")),
    ];
    for (what, value) in weak {
        let mut env = good_env();
        match value {
            Some(v) => env.insert("JWT_SECRET".into(), v.into()),
            None => env.remove("JWT_SECRET"),
        };
        let problems = check(&load(env));
        assert!(
            problems.iter().any(|p| p.variable == "JWT_SECRET"),
            "{what} should be rejected; got {problems:?}"
        );
        // The message never repeats the value.
        if let Some(v) = value {
            assert!(
                problems.iter().all(|p| !p.to_string().contains(v)),
                "{what}: value leaked"
            );
        }
    }
}

#[test]
fn env_example_values_are_rejected() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let mut env = good_env();
    for line in example.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.split_once('=')
            && rampart::config::settings::SECRET_KEYS.contains(&k)
        {
            env.insert(k.into(), v.into());
        }
    }
    let vars = variables(&load(env));
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(
            vars.contains(key),
            "{key} from .env.example accepted: {vars:?}"
        );
    }
}

#[test]
fn encryption_key_must_be_fernet() {
    let mut env = good_env();
    // Long and random-looking, but not 32 bytes of url-safe base64.
    env.insert(
        "ENCRYPTION_KEY".into(),
        "Zk3q9XvB2mN8pL4rT6yW1cD5fG7hJ0kM2nQ4sU6wY8a".into(),
    );
    let problems = check(&load(env));
    assert!(
        problems
            .iter()
            .any(|p| p.variable == "ENCRYPTION_KEY" && p.message.contains("Fernet")),
        "{problems:?}"
    );
}

#[test]
fn two_equal_secrets_are_rejected() {
    let mut env = good_env();
    let jwt = env["JWT_SECRET"].clone();
    env.insert("SESSION_SECRET".into(), jwt);
    let problems = check(&load(env));
    assert!(
        problems
            .iter()
            .any(|p| p.variable == "SESSION_SECRET" && p.message.contains("JWT_SECRET")),
        "{problems:?}"
    );
}

#[test]
fn production_lists_every_problem_at_once() {
    let mut env = good_env();
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("DEBUG".into(), "true".into());
    env.insert("ALLOW_ALL_ORIGINS".into(), "true".into());
    env.insert("CORS_ORIGINS".into(), "http://app.example.org".into());
    env.insert(
        "DATABASE_URL".into(),
        "postgres://u:p@db.example.org:5432/app?sslmode=prefer".into(),
    );
    env.insert("ENABLE_AUDIT_LOGGING".into(), "false".into());
    env.insert("RATE_LIMIT_ENABLED".into(), "false".into());
    env.insert("SECRET_KEY".into(), "short".into());
    let vars = variables(&load(env));
    for expected in [
        "SECRET_KEY",
        "DEBUG",
        "ALLOW_ALL_ORIGINS",
        "CORS_ORIGINS",
        "DATABASE_URL",
        "ENABLE_AUDIT_LOGGING",
        "RATE_LIMIT_ENABLED",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
    }
}

#[test]
fn production_needs_cors_origins_and_tls_to_remote_databases() {
    let mut env = good_env();
    env.insert("ENVIRONMENT".into(), "production".into());
    let vars = variables(&load(env.clone()));
    assert!(
        vars.contains(&"CORS_ORIGINS"),
        "empty CORS_ORIGINS accepted"
    );

    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    env.insert(
        "SMTP_URL".into(),
        "smtps://mailer:pw@smtp.example.org:465".into(),
    );
    env.insert("PUBLIC_BASE_URL".into(), "https://app.example.org".into());
    // Loopback and sockets need no TLS.
    for url in [
        "postgres://u@127.0.0.1/app",
        "postgres://u@localhost/app",
        "postgres://u@[::1]/app",
        "postgres:///app?host=/var/run/postgresql",
    ] {
        env.insert("DATABASE_URL".into(), url.into());
        assert!(
            check(&load(env.clone())).is_empty(),
            "{url}: {:?}",
            check(&load(env.clone()))
        );
    }
    for (url, ok) in [
        ("postgres://u@db.example.org/app", false),
        ("postgres://u@db.example.org/app?sslmode=disable", false),
        ("postgres://u@db.example.org/app?sslmode=require", true),
        ("postgres://u@db.example.org/app?sslmode=verify-full", true),
    ] {
        env.insert("DATABASE_URL".into(), url.into());
        assert_eq!(check(&load(env.clone())).is_empty(), ok, "{url}");
    }
}

#[test]
fn docs_are_off_in_production_unless_asked_for() {
    let mut env = good_env();
    env.insert("ENVIRONMENT".into(), "production".into());
    assert!(!load(env.clone()).docs_enabled);
    env.insert("DOCS_ENABLED".into(), "true".into());
    assert!(load(env).docs_enabled);
    assert!(
        load(good_env()).docs_enabled,
        "on by default outside production"
    );
}

#[test]
fn redacted_lines_hide_every_secret_and_the_database_password() {
    let mut env = good_env();
    env.insert(
        "DATABASE_URL".into(),
        "postgres://svc:hunter2-db-pass@db.example.org/app".into(),
    );
    env.insert(
        "REDIS_URL".into(),
        "redis://:hunter3-redis-pass@cache.internal:6379/0".into(),
    );
    let s = load(env.clone());
    assert!(!s.redacted_lines().join("\n").contains("hunter3-redis-pass"));
    assert!(!format!("{s:?}").contains("hunter3-redis-pass"));
    let text = s.redacted_lines().join("\n");
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(
            text.contains(&format!("{key}={REDACTED}")),
            "{key} not redacted"
        );
        assert!(!text.contains(env[*key].as_str()), "{key} value leaked");
    }
    assert!(!text.contains("hunter2-db-pass"));
    // Debug formatting of the whole Settings is also safe.
    let debug = format!("{s:?}");
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(
            !debug.contains(env[*key].as_str()),
            "{key} leaked through Debug"
        );
    }
    assert!(
        !debug.contains("hunter2-db-pass"),
        "database password leaked through Debug"
    );
}

#[test]
fn token_settings_are_checked() {
    let mut env = good_env();
    env.insert("JWT_ALGORITHM".into(), "RS256".into());
    assert!(variables(&load(env.clone())).contains(&"JWT_ALGORITHM"));
    env.insert("JWT_ALGORITHM".into(), "EdDSA".into());
    let vars = variables(&load(env.clone()));
    assert!(
        vars.contains(&"JWT_PRIVATE_KEY_FILE") && vars.contains(&"JWT_PUBLIC_KEY_FILES"),
        "{vars:?}"
    );
    env.insert("JWT_ALGORITHM".into(), "HS256".into());
    env.insert("ACCESS_TOKEN_TTL_SECONDS".into(), "86400".into());
    assert!(variables(&load(env)).contains(&"ACCESS_TOKEN_TTL_SECONDS"));
}

#[test]
fn identity_provider_settings_are_optional_and_checked_when_set() {
    // Unset: every provider is off and nothing is reported (SUPABASE_JWT_SECRET is optional).
    let vars = variables(&load(good_env()));
    assert!(
        !vars
            .iter()
            .any(|v| v.starts_with("SUPABASE") || v.starts_with("CLERK_")),
        "{vars:?}"
    );
    let s = load(good_env());
    assert!(s.identity.auto_provision && !s.identity.supabase_allow_anonymous);
    assert!(s.secrets.supabase_jwt_secret.is_none());

    let with = |pairs: &[(&str, &str)]| {
        let mut env = good_env();
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        env
    };
    // Loopback http is fine outside production; https anywhere; plain http elsewhere is not.
    let ok = with(&[
        ("SUPABASE_URL", "http://127.0.0.1:54321/"),
        ("CLERK_ISSUER", "https://clerk.example.org"),
        (
            "CLERK_AUTHORIZED_PARTIES",
            "https://app.example.org,http://localhost:3000",
        ),
        ("SUPABASE_JWT_SECRET", "q8Zr2mX5vL0tN7bP4cW9yK3hF6jD1sGa"),
    ]);
    let s = load(ok.clone());
    assert_eq!(
        s.identity.supabase_url.as_deref(),
        Some("http://127.0.0.1:54321")
    );
    assert_eq!(s.identity.clerk_authorized_parties.len(), 2);
    let vars = variables(&s);
    assert!(
        !vars
            .iter()
            .any(|v| v.starts_with("SUPABASE") || v.starts_with("CLERK_")),
        "{vars:?}"
    );
    // Production refuses plain http, loopback included.
    let mut prod = ok.clone();
    prod.insert("ENVIRONMENT".into(), "production".into());
    let vars = variables(&load(prod));
    assert!(vars.contains(&"SUPABASE_URL"), "{vars:?}");
    assert!(vars.contains(&"CLERK_AUTHORIZED_PARTIES"), "{vars:?}");
    for (pairs, variable) in [
        (
            &[("SUPABASE_URL", "http://supabase.example.org")][..],
            "SUPABASE_URL",
        ),
        (&[("SUPABASE_URL", "not a url")][..], "SUPABASE_URL"),
        (
            &[("CLERK_ISSUER", "ftp://clerk.example.org")][..],
            "CLERK_ISSUER",
        ),
        (
            &[
                ("CLERK_ISSUER", "https://c.example.org"),
                ("CLERK_JWT_KEY", "nope"),
            ][..],
            "CLERK_JWT_KEY",
        ),
        (&[("CLERK_JWT_KEY", "nope")][..], "CLERK_JWT_KEY"),
        (
            &[("CLERK_AUTHORIZED_PARTIES", "https://app.example.org")][..],
            "CLERK_AUTHORIZED_PARTIES",
        ),
        (
            &[
                ("SUPABASE_URL", "https://abc.supabase.co"),
                ("SUPABASE_JWT_SECRET", "short"),
            ][..],
            "SUPABASE_JWT_SECRET",
        ),
        (
            &[("SUPABASE_JWT_SECRET", "q8Zr2mX5vL0tN7bP4cW9yK3hF6jD1sGa")][..],
            "SUPABASE_JWT_SECRET",
        ),
    ] {
        let vars = variables(&load(with(pairs)));
        assert!(vars.contains(&variable), "{pairs:?}: {vars:?}");
    }
    // The optional secret must differ from every other secret (good_env makes fresh ones).
    let mut env = good_env();
    let jwt = env["JWT_SECRET"].clone();
    env.insert("SUPABASE_URL".into(), "https://abc.supabase.co".into());
    env.insert("SUPABASE_JWT_SECRET".into(), jwt);
    let vars = variables(&load(env));
    assert!(vars.contains(&"SUPABASE_JWT_SECRET"), "{vars:?}");
    // Redacted like every secret.
    let text = load(ok).redacted_lines().join("\n");
    assert!(text.contains("SUPABASE_JWT_SECRET=***REDACTED***"));
    assert!(!text.contains("q8Zr2mX5vL0tN7bP4cW9yK3hF6jD1sGa"));
}

#[test]
fn http_timing_settings_have_the_documented_defaults_parse_overrides_and_are_shown() {
    use std::time::Duration;
    let s = load(good_env());
    // Keep-alive outlives a load balancer's usual 60 s idle timeout.
    assert_eq!(s.http.keep_alive, Duration::from_secs(75));
    assert!(s.http.keep_alive > Duration::from_secs(60));
    assert_eq!(s.http.client_timeout, Duration::from_secs(5));
    assert_eq!(s.http.body_read_timeout, Duration::from_secs(10));
    assert_eq!(s.http.shutdown_timeout, Duration::from_secs(30));
    let mut env = good_env();
    for (key, value) in [
        ("HTTP_KEEP_ALIVE_SECONDS", "0"),
        ("HTTP_CLIENT_TIMEOUT_SECONDS", "3"),
        ("BODY_READ_TIMEOUT_SECONDS", "2"),
        ("HTTP_SHUTDOWN_TIMEOUT_SECONDS", "5"),
    ] {
        env.insert(key.into(), value.into());
    }
    let s = load(env);
    assert_eq!(s.http.keep_alive, Duration::ZERO);
    assert_eq!(s.http.client_timeout, Duration::from_secs(3));
    assert_eq!(s.http.body_read_timeout, Duration::from_secs(2));
    assert_eq!(s.http.shutdown_timeout, Duration::from_secs(5));
    let shown = s.redacted_lines().join("\n");
    for line in [
        "HTTP_KEEP_ALIVE_SECONDS=0",
        "HTTP_CLIENT_TIMEOUT_SECONDS=3",
        "BODY_READ_TIMEOUT_SECONDS=2",
        "HTTP_SHUTDOWN_TIMEOUT_SECONDS=5",
    ] {
        assert!(shown.contains(line), "{line} not in:\n{shown}");
    }
    for (key, value) in [
        ("HTTP_KEEP_ALIVE_SECONDS", "soon"),
        ("HTTP_CLIENT_TIMEOUT_SECONDS", "0"),
        ("BODY_READ_TIMEOUT_SECONDS", "0"),
        ("BODY_READ_TIMEOUT_SECONDS", "-1"),
        ("HTTP_SHUTDOWN_TIMEOUT_SECONDS", "100000"),
    ] {
        let mut env = good_env();
        env.insert(key.into(), value.into());
        let err = Settings::load_from(&Sources {
            config_dir: config_dir(),
            env,
            dotenv: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{key}={value}: {err}");
    }
}

// --- README's configuration table and .env.example against the declarations (src/config/spec.rs)

mod declared {
    use rampart::config::spec::{DefaultValue, SETTINGS};

    fn repo_file(name: &str) -> String {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
            .unwrap()
    }

    /// A markdown table row's cells (`\|` is a pipe inside a cell).
    fn cells(row: &str) -> Vec<String> {
        let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
        let mut out = vec![String::new()];
        let mut prev = ' ';
        for ch in inner.chars() {
            if ch == '|' && prev != '\\' {
                out.push(String::new());
            } else if let Some(last) = out.last_mut() {
                last.push(ch);
            }
            prev = ch;
        }
        out.into_iter().map(|c| c.trim().to_string()).collect()
    }

    /// Every way README's configuration table differs from the declarations.
    pub fn readme_problems(readme: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let section = readme
            .split("\n## Configuration")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let c = cells(line);
            let spans: Vec<&str> = c[0].split('`').skip(1).step_by(2).collect();
            if spans.len() != 1 || c[0] != format!("`{}`", spans[0]) {
                problems.push(format!("row {:?} must name exactly one variable", c[0]));
                continue;
            }
            rows.push((spans[0].to_string(), c.get(1).cloned().unwrap_or_default()));
        }
        for (name, _) in &rows {
            if !SETTINGS.iter().any(|s| s.name == name) {
                problems.push(format!("README lists {name}, which rampart does not know"));
            }
        }
        for s in SETTINGS {
            let found: Vec<&String> = rows
                .iter()
                .filter(|(n, _)| n == s.name)
                .map(|(_, d)| d)
                .collect();
            let [cell] = found.as_slice() else {
                problems.push(format!("README has {} rows for {}", found.len(), s.name));
                continue;
            };
            let ok = match (s.default, s.default.text()) {
                (_, Some(text)) => cell.starts_with(&format!("`{text}`")),
                (DefaultValue::Computed(how), None) => cell.starts_with(how),
                (_, None) => cell.starts_with('–') || cell.starts_with("empty"),
            };
            if !ok {
                problems.push(format!(
                    "README shows {}'s default as {cell:?}; declared: {:?}",
                    s.name, s.default
                ));
            }
        }
        problems
    }

    /// `.env.example` is the development template: a key with a declared default shows it (or
    /// the value config/development.toml gives it); keys without one show an example value.
    pub fn env_example_problems(example: &str, development_toml: &str) -> Vec<String> {
        let development: toml::Table = development_toml.parse().unwrap();
        let mut problems = Vec::new();
        let lines: Vec<(&str, &str)> = example
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        for (key, _) in &lines {
            if !SETTINGS.iter().any(|s| s.name == *key) {
                problems.push(format!(
                    ".env.example sets {key}, which rampart does not know"
                ));
            }
        }
        for s in SETTINGS {
            let values: Vec<&str> = lines
                .iter()
                .filter(|(k, _)| *k == s.name)
                .map(|(_, v)| *v)
                .collect();
            let [value] = values.as_slice() else {
                problems.push(format!(
                    ".env.example sets {} {} times",
                    s.name,
                    values.len()
                ));
                continue;
            };
            let Some(default) = s.default.text() else {
                continue;
            };
            let dev = development
                .get(&s.name.to_ascii_lowercase())
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().unwrap_or_default().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                });
            if *value != default && Some(value.to_string()) != dev {
                problems.push(format!(
                    ".env.example sets {}={value}; its default is {default}",
                    s.name
                ));
            }
        }
        problems
    }

    #[test]
    fn readme_table_lists_every_setting_with_its_declared_default() {
        let problems = readme_problems(&repo_file("README.md"));
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn env_example_lists_every_setting_with_its_declared_default() {
        let problems = env_example_problems(
            &repo_file(".env.example"),
            &repo_file("config/development.toml"),
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_doc_checks_catch_a_missing_key_a_wrong_default_and_an_unknown_key() {
        let readme = repo_file("README.md");
        let drifted = readme
            .replace("| `CORS_MAX_AGE` | `600` |", "| `CORS_MAX_AGE` | `300` |")
            .replace("| `LOCKOUT_MAX_SECONDS` |", "| `LOCKOUT_MAXIMUM` |")
            .replace(
                "| `API_KEY_MAX_PER_USER` |",
                "| `API_KEY_MAX_PER_USER`, `X` |",
            );
        assert_eq!(
            readme_problems(&drifted),
            [
                r#"row "`API_KEY_MAX_PER_USER`, `X`" must name exactly one variable"#,
                "README lists LOCKOUT_MAXIMUM, which rampart does not know",
                r#"README shows CORS_MAX_AGE's default as "`300`"; declared: Int(600)"#,
                "README has 0 rows for LOCKOUT_MAX_SECONDS",
                "README has 0 rows for API_KEY_MAX_PER_USER",
            ],
        );

        let example = repo_file(".env.example");
        let dev = repo_file("config/development.toml");
        let drifted = example
            .replace("\nCORS_MAX_AGE=600\n", "\nCORS_MAX_AGE=60\n")
            .replace("\nPORT=8080\n", "\n")
            .replace("\nDEBUG=false\n", "\nDEBUG=false\nDEBUGGING=1\n")
            .replace("\nLOG_FORMAT=auto\n", "\nLOG_FORMAT=json\n");
        assert_eq!(
            env_example_problems(&drifted, &dev),
            [
                ".env.example sets DEBUGGING, which rampart does not know",
                ".env.example sets PORT 0 times",
                ".env.example sets CORS_MAX_AGE=60; its default is 600",
                ".env.example sets LOG_FORMAT=json; its default is auto",
            ]
        );
        // The development value is accepted as well as the default (pretty, from development.toml).
        let dev_value = example.replace("\nLOG_FORMAT=auto\n", "\nLOG_FORMAT=pretty\n");
        assert!(env_example_problems(&dev_value, &dev).is_empty());
    }

    #[test]
    fn shipped_default_toml_repeats_no_declared_default() {
        let table: toml::Table = repo_file("config/default.toml").parse().unwrap();
        for (key, value) in table {
            let declared = SETTINGS
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&key))
                .and_then(|s| s.default.text());
            let value = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            assert_ne!(Some(value), declared, "{key} repeats its declared default");
        }
    }
}

// --- `config show` and `check-config` print exactly what they printed before the settings were
// declared in one table (tests/cli/golden/ was recorded with the binary of commit b72afcb; the
// identity-provider lines, issue 14, were added since).

mod unchanged_output {
    use std::collections::BTreeMap;

    use crate::commands::rampart;
    use crate::support::config_dir;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn golden(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cli/golden")
            .join(name);
        std::fs::read_to_string(path)
            .unwrap()
            .replace("{config}", &config_dir().display().to_string())
    }

    #[test]
    fn config_show_prints_the_development_defaults_as_before() {
        let out = rampart(&["config", "show"], &BTreeMap::new());
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            golden("config_show_development.txt")
        );
    }

    #[test]
    fn config_show_prints_a_production_configuration_as_before() {
        let out = rampart(
            &["config", "show"],
            &env(&[
                ("ENVIRONMENT", "production"),
                ("SECRET_KEY", "Zq3vX9kT2mL8pR4wN7yB1cF6hJ0dG5sA"),
                ("JWT_SECRET", "Hn4Kp8Rt2Wy6Bv0Cx3Mz7Qf1Lj5Dg9Sa"),
                (
                    "ENCRYPTION_KEY",
                    "n1Y8dI9fJ3o7Q9m7sZbH5xQ2vT6rK0pWcEuLgAaNfY4=",
                ),
                ("SESSION_SECRET", "Tb6Yn1Wq5Ep9Ru3Io7Pa2Sd6Fg0Hj4Kl"),
                ("API_KEY_HASH_SECRET", "Vc2Xz6Bn0Mq4We8Rt3Yu7Io1Pa5Sd9Fg"),
                (
                    "STRIPE_WEBHOOK_SECRET",
                    "whsec_Gh3Jk7Lz1Xc5Vb9Nm2Qw6Er0Ty4Ui8Op",
                ),
                (
                    "CLERK_WEBHOOK_SECRET",
                    "whsec_Kp0Lm4Nq8Rs2Tu6Vw1Xy5Za9Bc3De7Fg",
                ),
                ("CORS_ORIGINS", "https://a.example"),
                ("ALLOWED_HOSTS", "api.example"),
                (
                    "DATABASE_URL",
                    "postgres://u:pw@db.example/x?sslmode=require",
                ),
                ("REDIS_URL", "redis://:pw@r:6379/0"),
                ("JWT_PREVIOUS_SECRETS", "a,b"),
                (
                    "QUOTA_OVERRIDES",
                    "admin:messages_sent=unlimited,api_key:data_exports=3",
                ),
                ("TRUSTED_PROXIES", "10.0.0.0/8,::1"),
                ("BACKEND_CORS_ORIGINS", "https://b.example"),
                ("PASSWORD_HASH_CONCURRENCY", "3"),
                ("QUOTA_EXPORTS_PER_DAY", "unlimited"),
                ("LOG_FORMAT", "text"),
                ("DOCS_ENABLED", "yes"),
            ]),
        );
        assert_eq!(out.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout, golden("config_show_production.txt"));
        for secret in ["Zq3vX9kT2m", "pw@", "whsec_"] {
            assert!(!stdout.contains(secret), "{secret} printed");
        }
    }

    #[test]
    fn check_config_lists_the_same_problems_as_before() {
        let out = rampart(
            &["check-config"],
            &env(&[
                ("ENVIRONMENT", "production"),
                (
                    "SECRET_KEY",
                    "your-secret-key-change-me-in-production-please",
                ),
                (
                    "JWT_SECRET",
                    "your-jwt-secret-change-me-in-production-please",
                ),
                (
                    "ENCRYPTION_KEY",
                    "your-fernet-key-change-me-in-production-please",
                ),
                ("SESSION_SECRET", "short"),
                ("API_KEY_HASH_SECRET", "Vc2Xz6Bn0Mq4We8Rt3Yu7Io1Pa5Sd9Fg"),
                ("STRIPE_WEBHOOK_SECRET", "Vc2Xz6Bn0Mq4We8Rt3Yu7Io1Pa5Sd9Fg"),
                ("DEBUG", "true"),
                ("ALLOW_ALL_ORIGINS", "true"),
                ("CORS_ALLOW_CREDENTIALS", "true"),
                ("CORS_ORIGINS", "http://localhost:3000"),
                (
                    "DATABASE_URL",
                    "postgres://rampart:pw@db.internal:5432/rampart?sslmode=prefer",
                ),
                ("ENABLE_AUDIT_LOGGING", "false"),
                ("RATE_LIMIT_ENABLED", "false"),
                ("JWT_ALGORITHM", "RS256"),
                ("ACCESS_TOKEN_TTL_SECONDS", "30"),
            ]),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            golden("check_config_production.txt")
        );
    }

    #[test]
    fn bad_values_give_the_same_messages_as_before() {
        let cases = [
            (
                "PORT",
                "abc",
                "PORT: must be a non-negative whole number in range",
            ),
            (
                "DEBUG",
                "maybe",
                "DEBUG: `maybe` is not a boolean (use true or false)",
            ),
            (
                "ENVIRONMENT",
                "staging",
                "ENVIRONMENT: `staging` is not one of development, test, production",
            ),
            (
                "QUOTA_MESSAGES_PER_DAY",
                "-1",
                "QUOTA_MESSAGES_PER_DAY: must be a whole number or `unlimited`",
            ),
            (
                "HTTP_CLIENT_TIMEOUT_SECONDS",
                "0",
                "HTTP_CLIENT_TIMEOUT_SECONDS: must be between 1 and 86400 seconds",
            ),
            (
                "RATE_LIMIT_PER_MINUTE",
                "0",
                "RATE_LIMIT_PER_MINUTE: must be at least 1 (use RATE_LIMIT_ENABLED=false to switch limits off)",
            ),
            (
                "DATABASE_POOL_SIZE",
                "0",
                "DATABASE_POOL_SIZE: must be at least 1",
            ),
        ];
        for (key, value, message) in cases {
            for args in [&["config", "show"][..], &["check-config"][..]] {
                let out = rampart(args, &env(&[(key, value)]));
                assert_eq!(out.status.code(), Some(2), "{key}={value}");
                assert!(out.stdout.is_empty(), "{key}={value}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stderr),
                    format!("error: invalid configuration: {message}\n")
                );
            }
        }
    }

    #[test]
    fn an_unknown_file_key_gives_the_same_message_as_before() {
        let dir = super::temp_dir();
        for key in ["bogus_key", "Port"] {
            std::fs::write(dir.join("default.toml"), format!("port = 1\n{key} = 2\n")).unwrap();
            // A later RAMPART_CONFIG_DIR in the map wins over the helper's default one.
            let dir_text = dir.display().to_string();
            let out = rampart(
                &["config", "show"],
                &env(&[("RAMPART_CONFIG_DIR", dir_text.as_str())]),
            );
            assert_eq!(out.status.code(), Some(2));
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                format!(
                    "error: invalid configuration: {}: unknown key `{key}` (keys are lower-case environment variable names; see .env.example)\n",
                    dir.join("default.toml").display()
                )
            );
        }
    }
}

/// An operator's own config/default.toml that sets only a few keys leaves every other key at its
/// declared default. (Before the declarations, ALLOWED_HOSTS' default lived only in the shipped
/// default.toml, so such a file left it empty and every request got 400.)
#[test]
fn an_operators_default_toml_keeps_the_declared_defaults_for_what_it_does_not_set() {
    let dir = temp_dir();
    std::fs::write(dir.join("default.toml"), "port = 9000\n").unwrap();
    let s = Settings::load_from(&Sources {
        config_dir: dir,
        env: BTreeMap::from([("ENVIRONMENT".to_string(), "production".to_string())]),
        dotenv: None,
    })
    .unwrap();
    assert_eq!(s.port, 9000);
    assert_eq!(s.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
    assert_eq!(s.rate_limit.per_minute, 60);
    assert_eq!(s.auth.jwt_audience, "rampart-api");
    assert!(s.enable_audit_logging);
}
