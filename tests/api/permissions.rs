//! Every API route declares its access rule (the registrar makes it impossible not to); this test
//! enumerates them all and checks each role against each route.

use actix_web::http::Method;
use rampart::auth::{Access, Role};
use rampart::web::api_routes;

use crate::support::{TestApp, spawn_app};

async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> u16 {
    let path = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
    let mut req = app.client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        app.url(&path),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if *method != Method::GET && *method != Method::DELETE {
        req = req.json(&serde_json::json!({}));
    }
    req.send().await.unwrap().status().as_u16()
}

#[actix_web::test]
async fn route_permission_matrix() {
    let app = spawn_app().await;
    let table = api_routes().table().to_vec();
    assert!(table.len() >= 10, "routes: {table:?}");
    let mut tokens = Vec::new();
    for role in [Role::Admin, Role::TeamMember, Role::Demo] {
        let name = format!("matrix_{}", role.as_str());
        app.register(&name).await;
        app.sql(&format!(
            "UPDATE users SET role = '{}' WHERE username = '{name}'",
            role.as_str()
        ));
        tokens.push((role, app.login(&name).await));
    }
    for route in &table {
        let anonymous = call(&app, &route.method, route.path, None).await;
        match route.access {
            Access::Public => {
                assert_ne!(anonymous, 401, "{} {} is public", route.method, route.path)
            }
            _ => assert_eq!(
                anonymous, 401,
                "{} {} without a token",
                route.method, route.path
            ),
        }
        for (role, t) in &mut tokens {
            // Logout would end the session the next rows use: log in again for it.
            let token = if route.path.ends_with("/logout") || route.path.ends_with("/revoke-others")
            {
                app.login(&format!("matrix_{}", role.as_str())).await.access
            } else {
                t.access.clone()
            };
            let status = call(&app, &route.method, route.path, Some(&token)).await;
            if route.path.ends_with("/revoke-others") {
                // Every other session of this user is gone now, the fresh one survives: later
                // rows (routes registered after this one) continue with it.
                t.access = token;
            }
            let allowed = match route.access {
                Access::Public | Access::Authenticated => true,
                Access::Permission(p) => role.has(p),
            };
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{role} on {} {}: {status}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(status, 403, "{role} on {} {}", route.method, route.path);
            }
        }
    }
}

/// The same matrix for API-key principals: a key may do what its owner's role AND its scopes
/// allow, and never anything admin-only — even when its scopes claim it.
#[actix_web::test]
async fn route_permission_matrix_with_api_keys() {
    use rampart::auth::Permission;

    let app = spawn_app().await;
    let table = api_routes().table().to_vec();
    let scopes = [Permission::ProfileRead, Permission::KeysManage];
    let mut keys = Vec::new();
    for role in [Role::Admin, Role::TeamMember] {
        let name = format!("keymatrix_{}", role.as_str());
        app.register(&name).await;
        app.sql(&format!(
            "UPDATE users SET role = '{}' WHERE username = '{name}'",
            role.as_str()
        ));
        let jwt = app.login(&name).await.access;
        let res = app
            .client
            .post(app.url("/api/v1/api-keys"))
            .bearer_auth(&jwt)
            .json(&serde_json::json!({
                "name": "matrix",
                "scopes": scopes.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: serde_json::Value = res.json().await.unwrap();
        let mut granted = scopes.to_vec();
        if role == Role::Admin {
            // Admin scopes written behind the API's back must still not open admin routes.
            let admin_only: Vec<Permission> = Permission::ALL
                .into_iter()
                .filter(|p| p.is_admin_only())
                .collect();
            let list = scopes
                .iter()
                .chain(&admin_only)
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(",");
            app.sql(&format!(
                "UPDATE api_keys SET scopes = ARRAY[{list}] WHERE id = '{}'",
                created["id"].as_str().unwrap()
            ));
            granted.extend(admin_only);
        }
        keys.push((role, granted, created["key"].as_str().unwrap().to_string()));
    }
    for route in &table {
        for (role, granted, key) in &keys {
            let status = call(&app, &route.method, route.path, Some(key)).await;
            let label = format!(
                "{role} API key on {} {}: {status}",
                route.method, route.path
            );
            match route.access {
                Access::Public => assert!(status != 401 && status != 403, "{label}"),
                // Authenticated, but a route may still need a session (logout: 403).
                Access::Authenticated => assert_ne!(status, 401, "{label}"),
                Access::Permission(p) => {
                    let allowed = role.has(p) && granted.contains(&p) && !p.is_admin_only();
                    if allowed {
                        assert!(status != 401 && status != 403, "{label}");
                    } else {
                        assert_eq!(status, 403, "{label}");
                    }
                }
            }
        }
    }
}
