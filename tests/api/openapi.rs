//! The OpenAPI document as contract-fuzzing (scripts/schemathesis) needs it: every route of the
//! registrar's table describes the body it reads, the query it reads and the body it answers,
//! errors are problem+json, and the security of each operation is the route's access rule.

use serde_json::Value;

use crate::support::app_without_database;
use rampart::auth::Access;
use rampart::web::api_routes;

async fn document() -> Value {
    let app = app_without_database().spawn().await;
    let res = app.get("/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Follows a local `$ref` (one level is all the document uses for responses).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => value,
    }
}

#[actix_web::test]
async fn every_route_documents_the_body_and_query_it_reads_and_the_response_it_sends() {
    let doc = document().await;
    let routes = api_routes();
    assert!(routes.table().len() >= 28);
    for route in routes.table() {
        let name = format!("{} {}", route.method, route.path);
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{name}: no operation");
        let args = route.extractors;

        // A handler that reads a body (typed `Json<T>`, or raw `Bytes` for an optional one)
        // documents it as JSON, with a schema; one that reads none documents none.
        // `Payload`: a body read by the handler itself (JSON, or a streamed multipart form).
        let reads_body = args.contains("::Json<")
            || args.contains("bytes::Bytes")
            || args.contains("::RawBody")
            || args.contains("payload::Payload");
        let body = &op["requestBody"];
        assert_eq!(
            reads_body,
            body.is_object(),
            "{name}: request body ({args})"
        );
        if reads_body {
            let schema = &body["content"]["application/json"]["schema"];
            let schema = resolve(&doc, schema);
            assert_eq!(schema["type"], "object", "{name}: body schema {schema}");
            assert!(schema["properties"].is_object(), "{name}: body fields");
            // Unknown fields are refused (deny_unknown_fields), and the schema says so — except
            // in a provider's event (`RawBody`, verified on its exact bytes), which is open.
            if !args.contains("::RawBody") {
                assert_eq!(schema["additionalProperties"], false, "{name}");
            }
            // An optional body is `Bytes` (empty = defaults); `Json<T>` and `RawBody` are required.
            assert_eq!(
                body["required"],
                args.contains("::Json<")
                    || args.contains("::RawBody")
                    || args.contains("payload::Payload"),
                "{name}: body required?"
            );
        }

        // A handler that reads a query documents its parameters, typed, never as nullable.
        let reads_query = args.contains("::Query<");
        let query: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter(|p| p["in"] == "query").collect())
            .unwrap_or_default();
        assert_eq!(reads_query, !query.is_empty(), "{name}: query ({args})");
        for p in &query {
            assert_eq!(p["required"], false, "{name}: {p}");
            let ty = &p["schema"]["type"];
            assert!(ty == "string" || ty == "integer", "{name}: {p}");
        }
        if reads_query {
            let names: Vec<&str> = query.iter().map(|p| p["name"].as_str().unwrap()).collect();
            // Lists page with limit + cursor; a download may only choose its format.
            assert!(
                (names.contains(&"limit") && names.contains(&"cursor")) || names == ["format"],
                "{name}"
            );
        }

        // Exactly one success status, with a JSON schema unless it is 204.
        let responses = op["responses"].as_object().unwrap();
        let success: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{name}: {success:?}");
        let ok = &responses[success[0].as_str()];
        if success[0] == "204" {
            assert!(ok.get("content").is_none(), "{name}: 204 has no body");
        } else {
            assert!(
                ["200", "201", "202"].contains(&success[0].as_str()),
                "{name}: {success:?}"
            );
            // A download (an attachment) is a file, not JSON: every media type is binary.
            let content = ok["content"].as_object().unwrap();
            let download = content.values().all(|c| c["schema"]["format"] == "binary");
            if !content.contains_key("application/json") || download {
                assert!(!content.is_empty(), "{name}: no response content");
                for (media, c) in content {
                    assert_eq!(c["schema"]["format"], "binary", "{name}: {media}");
                }
                continue;
            }
            let schema = &ok["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{name}: no response schema");
            let schema = resolve(&doc, schema);
            // An object, or one of several objects (login: tokens, or the second step).
            let one_of_objects = schema["oneOf"].as_array().is_some_and(|all| {
                all.iter()
                    .all(|s| resolve(&doc, s)["properties"].is_object())
            });
            assert!(
                schema["properties"].is_object() || schema["allOf"].is_array() || one_of_objects,
                "{name}: response schema {schema}"
            );
        }

        // Errors: problem+json, with 401/403 exactly where the access rule can refuse.
        for status in ["4XX", "5XX"] {
            let problem = resolve(&doc, &responses[status]);
            assert!(
                problem["content"]["application/problem+json"]["schema"].is_object(),
                "{name}: {status}"
            );
        }
        assert_eq!(
            responses.contains_key("401"),
            route.access != Access::Public,
            "{name}"
        );
        assert_eq!(
            responses.contains_key("403"),
            matches!(route.access, Access::Permission(_)),
            "{name}"
        );
        let security = op["security"].as_array().unwrap();
        assert_eq!(
            security.is_empty(),
            route.access == Access::Public,
            "{name}"
        );
        if let Access::Permission(p) = route.access {
            let description = op["description"].as_str().unwrap();
            assert!(
                description.contains(&p.to_string()),
                "{name}: {description}"
            );
        }
    }
}

#[actix_web::test]
async fn lists_are_documented_as_keyset_pages_and_nullable_fields_as_nullable() {
    let doc = document().await;
    let page = &doc["paths"]["/api/v1/admin/users"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        page["required"],
        serde_json::json!(["items", "next_cursor"])
    );
    assert_eq!(
        page["properties"]["next_cursor"]["type"],
        serde_json::json!(["string", "null"])
    );
    let user = &doc["components"]["schemas"]["AdminUserView"];
    assert_eq!(
        user["properties"]["locked_until"]["type"],
        serde_json::json!(["string", "null"])
    );
    assert_eq!(user["properties"]["locked_until"]["format"], "date-time");
    // Secrets are documented as strings, never as the wrapper type's internals.
    let login = &doc["components"]["schemas"]["LoginBody"]["properties"];
    assert_eq!(login["password"]["type"], "string");
    assert_eq!(login["password"]["format"], "password");
    // The two revocation bodies keep their own names (one required reason, one optional).
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["AdminRevokeKeyBody"]["required"],
        serde_json::json!(["reason"])
    );
    assert!(schemas["AdminRevokeSessionBody"]["required"].is_null());
}
