//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 description of every API route, generated from the
//! route registrar's table (so it cannot drift from what is mounted), with each route's access
//! rule as its security requirement and the bodies, query parameters and responses each route
//! declared (`http::openapi::RouteDoc`). Served only when DOCS_ENABLED (off in production unless
//! set).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::auth::{Access, RouteInfo};
use crate::http::error::{AppError, PROBLEM_JSON};
use crate::http::openapi::*;
use crate::state::AppState;
use crate::web::api_routes;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/openapi.json").route(web::get().to(openapi)));
}

async fn openapi(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if !state.settings.docs_enabled {
        return Err(AppError::NotFound);
    }
    // The document depends only on the compiled route table: made once, served as bytes.
    static DOCUMENT: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        bytes::Bytes::from(document(api_routes().table()).to_string().into_bytes())
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone()))
}

fn problem() -> Value {
    json!({ "$ref": "#/components/responses/Problem" })
}

/// The operation object of one route.
fn operation(route: &RouteInfo, components: &mut BTreeMap<String, Value>) -> Value {
    let doc = &route.doc;
    let (security, access) = match route.access {
        Access::Public => (json!([]), "Public.".to_string()),
        Access::Authenticated => (
            json!([{ "bearer": [] }, { "apiKey": [] }]),
            "Any authenticated caller.".to_string(),
        ),
        Access::Permission(p) => (
            json!([{ "bearer": [] }, { "apiKey": [] }]),
            format!("Requires the `{p}` permission."),
        ),
    };
    let mut add_components = |schema: &SchemaDoc| {
        for (name, schema) in &schema.components {
            components
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
    };

    let mut responses = serde_json::Map::new();
    match &doc.success {
        Some(Success {
            status,
            body,
            links,
            download,
        }) => {
            let mut response = json!({ "description": "Success." });
            if let Some(body) = body {
                add_components(body);
                response["content"] = json!({ "application/json": { "schema": body.schema } });
            }
            if !download.is_empty() {
                let mut content: serde_json::Map<String, Value> = download
                    .iter()
                    .map(|t| {
                        let schema = json!({ "schema": { "type": "string", "format": "binary" } });
                        ((*t).to_string(), schema)
                    })
                    .collect();
                // A JSON body beside the files (`ok_or_download`) keeps its schema.
                if let Some(body) = body {
                    content.insert(
                        "application/json".into(),
                        json!({ "schema": body.schema.clone() }),
                    );
                }
                response["content"] = Value::Object(content);
            }
            if !links.is_empty() {
                let links: serde_json::Map<String, Value> = links
                    .iter()
                    .map(|(name, target, field)| {
                        let link = json!({
                            "operationId": target,
                            "parameters": { "id": format!("$response.body#/{field}") },
                        });
                        (name.clone(), link)
                    })
                    .collect();
                response["links"] = Value::Object(links);
            }
            responses.insert(status.to_string(), response);
        }
        None => {
            responses.insert("2XX".into(), json!({ "description": "Success." }));
        }
    }
    if route.access != Access::Public {
        responses.insert("401".into(), problem());
    }
    if matches!(route.access, Access::Permission(_)) {
        responses.insert("403".into(), problem());
    }
    responses.insert("4XX".into(), problem());
    // 503 while the database is unreachable; any other 5xx is a bug (schemathesis fails on it).
    responses.insert("5XX".into(), problem());

    let mut operation = json!({
        "operationId": operation_id(&route.method, route.path),
        "description": access,
        "security": security,
        "responses": responses,
    });
    if let Some(summary) = doc.summary {
        operation["summary"] = json!(summary);
    }
    // Every `{name}` segment: ids (`id`, `mid`, `aid`…) are UUIDs, `username` a username.
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "username" {
                json!({ "type": "string", "minLength": 1, "maxLength": 64 })
            } else {
                json!({ "type": "string", "format": "uuid" })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    parameters.extend(doc.query.iter().cloned());
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if let Some((body, required)) = &doc.body {
        add_components(body);
        operation["requestBody"] = json!({
            "required": required,
            "content": { "application/json": { "schema": body.schema } }
        });
        if let Some(form) = &doc.multipart {
            operation["requestBody"]["content"]["multipart/form-data"] = json!({ "schema": form });
        }
    }
    operation
}

/// The document for `table`.
pub fn document(table: &[RouteInfo]) -> Value {
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    schemas.insert("Problem".to_string(), problem_schema());
    for route in table {
        let operation = operation(route, &mut schemas);
        paths
            .entry(route.path)
            .or_default()
            .insert(route.method.as_str().to_ascii_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "rampart API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "Access token (JWT) or API key (rk_…)." },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details.",
                    "content": { PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            },
            "schemas": schemas,
        }
    })
}

/// `crate::http::error::Problem` as it is serialized.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string" },
            "request_id": { "type": "string" },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": { "field": { "type": "string" }, "message": { "type": "string" } }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document(api_routes().table());
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn every_link_names_an_operation_with_an_id() {
        let doc = document(api_routes().table());
        let mut ids = std::collections::BTreeMap::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for op in operations.as_object().unwrap().values() {
                ids.insert(
                    op["operationId"].as_str().unwrap().to_string(),
                    path.clone(),
                );
            }
        }
        assert_eq!(
            ids.len(),
            api_routes().table().len(),
            "operationIds are unique"
        );
        let mut links = 0;
        for operations in doc["paths"].as_object().unwrap().values() {
            for op in operations.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flatten() {
                        let target = link.1["operationId"].as_str().unwrap();
                        let path = ids.get(target).expect(target);
                        assert!(path.contains("{id}"), "{target}");
                        links += 1;
                    }
                }
            }
        }
        assert!(links > 0);
    }

    /// Two structs of one name (e.g. two `AdminRevokeBody`) would share one component and one
    /// of them would be described wrongly: names must be unique (`#[schema(as = …)]`).
    #[test]
    fn schema_names_are_unique() {
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        for route in api_routes().table() {
            let doc = &route.doc;
            let bodies = doc
                .body
                .iter()
                .map(|(b, _)| b)
                .chain(doc.success.iter().filter_map(|s| s.body.as_ref()));
            for body in bodies {
                for (name, schema) in &body.components {
                    let previous = seen.entry(name.clone()).or_insert_with(|| schema.clone());
                    assert_eq!(previous, schema, "two schemas named {name}");
                }
            }
        }
    }
}
