//! A browser-like HTTP client for the console: keeps cookies, reads CSRF tokens out of pages,
//! sends forms with the page's Origin.

use std::collections::BTreeMap;

use crate::support::{PASSWORD, TestApp};

pub struct Console<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    /// The Origin header sent with POSTs (`None`: none at all).
    pub origin: Option<String>,
}

/// One `Set-Cookie` header, parsed.
#[derive(Debug, Clone, Default)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub attributes: Vec<String>,
}

impl SetCookie {
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes.iter().find_map(|a| {
            let (k, v) = a.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn is_removal(&self) -> bool {
        self.value.is_empty() || self.attribute("Max-Age").as_deref() == Some("0")
    }
}

pub fn set_cookies(res: &reqwest::Response) -> Vec<SetCookie> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            SetCookie {
                name: name.to_string(),
                value: value.to_string(),
                attributes: parts.map(str::to_string).collect(),
            }
        })
        .collect()
}

/// The value of the first `name="csrf_token"` input in `html`.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")?;
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

pub fn location(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
}

impl<'a> Console<'a> {
    pub fn new(app: &'a TestApp) -> Console<'a> {
        Console {
            app,
            cookies: BTreeMap::new(),
            origin: Some(app.address.clone()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, res: &reqwest::Response) {
        for c in set_cookies(res) {
            if c.is_removal() {
                self.cookies.remove(&c.name);
            } else {
                self.cookies.insert(c.name, c.value);
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let res = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&res);
        res
    }

    pub async fn get_text(&mut self, path: &str) -> (u16, String) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .form(fields);
        if let Some(origin) = &self.origin {
            req = req.header("origin", origin);
        }
        let res = req.send().await.unwrap();
        self.remember(&res);
        res
    }

    /// The sign-in form's nonce (and its cookie).
    pub async fn login_nonce(&mut self) -> String {
        let (status, html) = self.get_text("/admin/login").await;
        assert_eq!(status, 200, "{html}");
        csrf_in(&html).expect("the sign-in form has a token")
    }

    pub async fn sign_in_as(&mut self, login: &str, password: &str) -> reqwest::Response {
        let nonce = self.login_nonce().await;
        self.post(
            "/admin/login",
            &[
                ("login", login),
                ("password", password),
                ("csrf_token", &nonce),
            ],
        )
        .await
    }

    /// Signs in with the test password; panics unless it works.
    pub async fn sign_in(&mut self, login: &str) {
        let res = self.sign_in_as(login, PASSWORD).await;
        assert_eq!(res.status(), 303, "sign-in of {login}");
        assert_eq!(location(&res).as_deref(), Some("/admin"));
    }

    /// The session's CSRF token, read from a page's sign-out form.
    pub async fn csrf(&mut self) -> String {
        let (status, html) = self.get_text("/admin").await;
        assert_eq!(status, 200);
        csrf_in(&html).expect("pages carry the session's token")
    }
}

/// An app whose SUPER_ADMIN_EMAIL is root's (ADMIN_EMAILS lists root and ops, which no longer
/// grants anything at registration: tests make admins with `register_admin`, as an operator would).
pub fn admin_app() -> crate::support::AppBuilder {
    crate::support::app()
        .env("ADMIN_EMAILS", "root@example.org, ops@example.org")
        .env("SUPER_ADMIN_EMAIL", "root@example.org")
}

/// The id of a registered user, by username.
pub fn user_id(app: &TestApp, username: &str) -> String {
    use diesel::prelude::*;
    use rampart::db::schema::users;
    let mut conn = app.db.as_ref().unwrap().connect();
    users::table
        .filter(users::username.eq(username))
        .select(users::id)
        .first::<uuid::Uuid>(&mut conn)
        .unwrap()
        .to_string()
}

/// (active, role) of a user, read straight from the database.
pub fn user_state(app: &TestApp, username: &str) -> (bool, String) {
    use diesel::prelude::*;
    use rampart::db::schema::users;
    let mut conn = app.db.as_ref().unwrap().connect();
    users::table
        .filter(users::username.eq(username))
        .select((users::active, users::role))
        .first(&mut conn)
        .unwrap()
}

/// How many audit rows of `action` exist.
pub fn audit_count(app: &TestApp, action: rampart::audit::Action) -> usize {
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(action),
            limit: 500,
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .len()
}
