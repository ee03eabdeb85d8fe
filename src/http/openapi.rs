//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 description of every API route, generated from the
//! route registrar's table (so it cannot drift from what is mounted), with each route's access
//! rule as its security requirement. Served only when DOCS_ENABLED (off in production unless set).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{Access, RouteInfo, api_routes};
use crate::http::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/openapi.json").route(web::get().to(openapi)));
}

async fn openapi(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if !state.settings.docs_enabled {
        return Err(AppError::NotFound);
    }
    Ok(HttpResponse::Ok().json(document(api_routes().table())))
}

/// The document for `table`.
pub fn document(table: &[RouteInfo]) -> Value {
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    for route in table {
        let (security, description, mut responses) = match route.access {
            Access::Public => (json!([]), "Public.".to_string(), json!({})),
            Access::Authenticated => (
                json!([{ "bearer": [] }, { "apiKey": [] }]),
                "Any authenticated caller.".to_string(),
                json!({ "401": { "$ref": "#/components/responses/Problem" } }),
            ),
            Access::Permission(p) => (
                json!([{ "bearer": [] }, { "apiKey": [] }]),
                format!("Requires the `{p}` permission."),
                json!({
                    "401": { "$ref": "#/components/responses/Problem" },
                    "403": { "$ref": "#/components/responses/Problem" },
                }),
            ),
        };
        if let Some(map) = responses.as_object_mut() {
            map.insert("2XX".into(), json!({ "description": "Success." }));
            map.insert(
                "4XX".into(),
                json!({ "$ref": "#/components/responses/Problem" }),
            );
            map.insert(
                "5XX".into(),
                json!({ "$ref": "#/components/responses/Problem" }),
            );
        }
        let mut operation = json!({
            "description": description,
            "security": security,
            "responses": responses,
        });
        if route.path.contains("{id}") {
            operation["parameters"] = json!([{
                "name": "id", "in": "path", "required": true,
                "schema": { "type": "string", "format": "uuid" }
            }]);
        }
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
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "request_id": { "type": "string" },
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": { "field": { "type": "string" }, "message": { "type": "string" } }
                            }
                        }
                    }
                }
            }
        }
    })
}
