//! What a route declares about itself for the OpenAPI document (the document and its endpoint are
//! `web::openapi`).
//!
//! Each route declares, when it is registered, a [`RouteDoc`]: its request body, query
//! parameters and success response, as JSON schemas that utoipa derives from the very structs the
//! handler deserializes and serializes (`ToSchema`, `IntoParams`). Every error is documented as
//! RFC 9457 problem+json. `scripts/schemathesis` fuzzes the server against this document.

use serde_json::{Value, json};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, ToSchema};

/// A JSON schema for a body, and the named schemas (`#/components/schemas/…`) it refers to.
#[derive(Debug, Clone)]
pub struct SchemaDoc {
    pub schema: Value,
    pub components: Vec<(String, Value)>,
}

/// utoipa's objects as JSON (they serialize infallibly: plain maps, strings and numbers).
fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl SchemaDoc {
    /// `T`'s schema, referred to by name.
    pub fn of<T: ToSchema>() -> SchemaDoc {
        let name = T::name().into_owned();
        let mut components = vec![(name.clone(), T::schema())];
        T::schemas(&mut components);
        SchemaDoc {
            schema: json!({ "$ref": format!("#/components/schemas/{name}") }),
            components: components
                .iter()
                .map(|(name, schema)| (name.clone(), to_json(schema)))
                .collect(),
        }
    }

    /// A keyset page of `T` (`crate::http::pagination::Page`): `{"items": [T…], "next_cursor"}`.
    pub fn page_of<T: ToSchema>() -> SchemaDoc {
        let item = SchemaDoc::of::<T>();
        SchemaDoc {
            schema: json!({
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": { "type": "array", "items": item.schema },
                    "next_cursor": {
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next (older) page; null on the last page."
                    }
                }
            }),
            components: item.components,
        }
    }
}

/// A query parameter from an `Option<T>` field is optional, not nullable: a query string has no
/// null, so `"type": ["string", "null"]` becomes `"type": "string"`.
fn not_null(mut parameter: Value) -> Value {
    if let Some(Value::Array(types)) = parameter.pointer_mut("/schema/type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            parameter["schema"]["type"] = only;
        }
    }
    parameter
}

/// What a route answers when it succeeds.
#[derive(Debug, Clone)]
pub struct Success {
    pub status: u16,
    /// The JSON body; `None` for 204.
    pub body: Option<SchemaDoc>,
    /// OpenAPI links: (name, operationId, `$response.body` pointer) — the operation whose `{id}`
    /// is this response's field (lets stateful fuzzing act on what it created).
    pub links: Vec<(String, String, &'static str)>,
    /// A file download instead of JSON: the media types it may have.
    pub download: Vec<&'static str>,
}

/// The `operationId` of a route: method and path, e.g. `delete_api_v1_api_keys__id_`.
pub fn operation_id(method: &actix_web::http::Method, path: &str) -> String {
    format!(
        "{}{}",
        method.as_str().to_ascii_lowercase(),
        path.replace(['/', '{', '}', '-'], "_")
    )
}

/// What the document says about a route besides its method, path and access rule. Declared at
/// registration: `r.add(…).body::<B>().query::<Q>().ok::<R>()`.
#[derive(Debug, Clone, Default)]
pub struct RouteDoc {
    pub summary: Option<&'static str>,
    /// The JSON request body, and whether it is required (an optional body may be empty).
    pub body: Option<(SchemaDoc, bool)>,
    /// Query parameters (several `query::<Q>()` calls add up).
    pub query: Vec<Value>,
    pub success: Option<Success>,
    /// A `multipart/form-data` alternative to the JSON body (its schema).
    pub multipart: Option<Value>,
}

impl RouteDoc {
    pub fn summary(&mut self, summary: &'static str) -> &mut Self {
        self.summary = Some(summary);
        self
    }

    /// A required JSON body of type `T`.
    pub fn body<T: ToSchema>(&mut self) -> &mut Self {
        self.body = Some((SchemaDoc::of::<T>(), true));
        self
    }

    /// A JSON body of type `T` that may be left out (an empty body means its defaults).
    pub fn optional_body<T: ToSchema>(&mut self) -> &mut Self {
        self.body = Some((SchemaDoc::of::<T>(), false));
        self
    }

    /// The body may also be `multipart/form-data` with this schema (text parts and files).
    pub fn multipart(&mut self, schema: Value) -> &mut Self {
        self.multipart = Some(schema);
        self
    }

    /// The query parameters of `Q`.
    pub fn query<Q: IntoParams>(&mut self) -> &mut Self {
        self.query.extend(
            Q::into_params(|| Some(ParameterIn::Query))
                .iter()
                .map(to_json)
                .map(not_null),
        );
        self
    }

    /// 200 with a `T`.
    pub fn ok<T: ToSchema>(&mut self) -> &mut Self {
        self.respond(200, Some(SchemaDoc::of::<T>()))
    }

    /// 201 with a `T`.
    pub fn created<T: ToSchema>(&mut self) -> &mut Self {
        self.respond(201, Some(SchemaDoc::of::<T>()))
    }

    /// 202 with a `T` (accepted: a mail is on its way).
    pub fn accepted<T: ToSchema>(&mut self) -> &mut Self {
        self.respond(202, Some(SchemaDoc::of::<T>()))
    }

    /// 200 with a keyset page of `T`.
    pub fn page<T: ToSchema>(&mut self) -> &mut Self {
        self.respond(200, Some(SchemaDoc::page_of::<T>()))
    }

    /// 200 with a file (a download, not JSON) of one of `media_types`.
    pub fn download(&mut self, media_types: &[&'static str]) -> &mut Self {
        self.respond(200, None);
        if let Some(success) = &mut self.success {
            success.download = media_types.to_vec();
        }
        self
    }

    /// 200 with a `T` as JSON, or (chosen by the request) a file of one of `media_types`.
    pub fn ok_or_download<T: ToSchema>(&mut self, media_types: &[&'static str]) -> &mut Self {
        self.respond(200, Some(SchemaDoc::of::<T>()));
        if let Some(success) = &mut self.success {
            success.download = media_types.to_vec();
        }
        self
    }

    /// 204, no body.
    pub fn no_content(&mut self) -> &mut Self {
        self.respond(204, None)
    }

    /// Links the success response's `field` to the `{id}` of `method path` (call after the
    /// response is declared).
    pub fn link(
        &mut self,
        method: actix_web::http::Method,
        path: &'static str,
        field: &'static str,
    ) -> &mut Self {
        if let Some(success) = &mut self.success {
            let target = operation_id(&method, path);
            success.links.push((target.clone(), target, field));
        }
        self
    }

    fn respond(&mut self, status: u16, body: Option<SchemaDoc>) -> &mut Self {
        self.success = Some(Success {
            status,
            body,
            links: Vec::new(),
            download: Vec::new(),
        });
        self
    }
}
