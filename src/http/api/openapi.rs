//! The OpenAPI document's modifiers: the bearer scheme, the edge's answers on every operation and the
//! SCIM paths (described as data).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

pub(super) struct BearerAuth;

/// The SCIM 2.0 endpoints (`/scim/v2`, RFC 7644, [`crate::scim`]): `application/scim+json` bodies, the
/// `scim` bearer scheme (a token from `scim-token create` or the console, not a Cognito token) and the
/// SCIM error shape. Described here as data because their bodies are SCIM's own (RFC 7643) documents.
pub(super) struct ScimPaths;

impl Modify for ScimPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        let body = |description: &str, schema: &str| {
            json!({"description": description,
                   "content": {"application/scim+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
        };
        let errors = |ok: (&str, serde_json::Value), more: &[(&str, &str)]| {
            let mut r = serde_json::Map::new();
            r.insert(ok.0.into(), ok.1);
            r.insert(
                "401".into(),
                body("Missing, unknown or revoked SCIM token", "ScimError"),
            );
            for (status, description) in more {
                r.insert((*status).into(), body(description, "ScimError"));
            }
            serde_json::Value::Object(r)
        };
        let id =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        let op = |summary: &str, responses: serde_json::Value| json!({"tags": ["scim"], "summary": summary, "security": [{"scim": []}], "responses": responses});
        let with_body = |mut o: serde_json::Value, schema: &str| {
            o["requestBody"] = json!({"required": true, "content": {"application/scim+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
            o
        };
        let user = || body("The User resource", "ScimUser");
        let paths = json!({
            "/scim/v2/Users": {
                "get": {
                    "tags": ["scim"], "summary": "List or filter Users (`filter`: userName/externalId/emails.value/id `eq`, with and/or)",
                    "security": [{"scim": []}],
                    "parameters": [
                        {"name": "filter", "in": "query", "required": false, "schema": {"type": "string"}},
                        {"name": "startIndex", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}},
                        {"name": "count", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}
                    ],
                    "responses": errors(("200", body("A ListResponse of Users", "ScimListResponse")), &[("400", "`invalidFilter`")])
                },
                "post": with_body(op("Provision an admin through the saga (userName is the e-mail)",
                    errors(("201", user()), &[("400", "`invalidValue`"), ("409", "`uniqueness`: the admin exists")])), "ScimUser")
            },
            "/scim/v2/Users/.search": {
                "post": with_body(op("Search Users (a SearchRequest body)",
                    errors(("200", body("A ListResponse of Users", "ScimListResponse")), &[("400", "`invalidFilter`")])), "ScimSearchRequest")
            },
            "/scim/v2/Users/{id}": {
                "parameters": id,
                "get": op("One User", errors(("200", user()), &[("404", "No such User")])),
                "put": with_body(op("Replace a User (`active: false` disables the admin in both systems)",
                    errors(("200", user()), &[("400", "`invalidValue`"), ("404", "No such User"), ("409", "Last active admin or a change in progress")])), "ScimUser"),
                "patch": with_body(op("PatchOp (add/replace/remove; `active` deactivates and reactivates)",
                    errors(("200", user()), &[("400", "`invalidValue`, `invalidPath` or `noTarget`"), ("404", "No such User"), ("409", "Last active admin or a change in progress")])), "ScimPatchOp"),
                "delete": op("Remove the admin from both systems (the removal saga)",
                    errors(("204", json!({"description": "Removed"})), &[("404", "No such User"), ("409", "Last active admin")]))
            },
            "/scim/v2/ServiceProviderConfig": {"get": op("What this service supports", errors(("200", body("ServiceProviderConfig", "ScimResource")), &[]))},
            "/scim/v2/Schemas": {"get": op("The User schema", errors(("200", body("A ListResponse of Schemas", "ScimListResponse")), &[]))},
            "/scim/v2/ResourceTypes": {"get": op("The User resource type", errors(("200", body("A ListResponse of ResourceTypes", "ScimListResponse")), &[]))}
        });
        // A shape mistake here would drop the SCIM paths: `tests/api.rs` checks they are all present.
        let Ok(paths) = serde_json::from_value::<std::collections::BTreeMap<String, utoipa::openapi::PathItem>>(paths)
        else {
            return;
        };
        openapi.paths.paths.extend(paths);
        let schemas = json!({
            "ScimError": {"type": "object", "required": ["schemas", "status"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": ["urn:ietf:params:scim:api:messages:2.0:Error"]}},
                "status": {"type": "string", "description": "The HTTP status, as a string"},
                "scimType": {"type": "string", "description": "uniqueness, invalidFilter, invalidValue, invalidPath, noTarget, …"},
                "detail": {"type": "string"}}},
            "ScimUser": {"type": "object", "description": "urn:ietf:params:scim:schemas:core:2.0:User (RFC 7643 §4.1)", "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}}, "id": {"type": "string"},
                "externalId": {"type": "string"}, "userName": {"type": "string", "format": "email"},
                "active": {"type": "boolean"},
                "emails": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}, "type": {"type": "string"}, "primary": {"type": "boolean"}}}},
                "meta": {"type": "object"}}, "additionalProperties": true},
            "ScimPatchOp": {"type": "object", "required": ["schemas", "Operations"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}},
                "Operations": {"type": "array", "items": {"type": "object", "required": ["op"], "properties": {
                    "op": {"type": "string", "description": "add, replace or remove (any case)"}, "path": {"type": "string"}, "value": {}}}}}},
            "ScimSearchRequest": {"type": "object", "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                "filter": {"type": "string"}, "startIndex": {"type": "integer"}, "count": {"type": "integer"}}},
            "ScimListResponse": {"type": "object", "required": ["schemas", "totalResults", "Resources"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}}, "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"}, "itemsPerPage": {"type": "integer"},
                "Resources": {"type": "array", "items": {"type": "object"}}}},
            "ScimResource": {"type": "object", "additionalProperties": true}
        });
        let components = openapi.components.get_or_insert_with(Default::default);
        if let Ok(schemas) = serde_json::from_value::<
            std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
        >(schemas)
        {
            components.schemas.extend(schemas);
        }
        components.add_security_scheme(
            "scim",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A SCIM token (`scim_…`) from `admin-provisioner scim-token create` or the console's SCIM tokens page; it grants /scim/v2 only",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the edge's answers (see [`super::edge`]) to every operation: 408, 414, 421, 431 and 500 everywhere,
/// 413 and 415 where a body is taken, 429 on the throttled operations. All in the error envelope.
pub(super) struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let envelope = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (false, item.delete.as_mut()),
            ];
            for (writes, op) in ops {
                let Some(op) = op else { continue };
                let r = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    r.entry(status.to_string())
                        .or_insert_with(|| envelope(description).into());
                };
                add(
                    "408",
                    "`request_timeout`: the request took too long to arrive or to answer",
                );
                add("414", "`uri_too_long`: the request target is longer than 8 KiB");
                add("421", "`misdirected_request`: the `Host` is not in `ALLOWED_HOSTS`");
                add("431", "`headers_too_large`: the request headers are larger than 32 KiB");
                add("500", "`internal`: quote the request id to an operator");
                if path.starts_with("/api/") {
                    add("400", "`invalid_request`: malformed request");
                }
                if writes {
                    add("413", "`payload_too_large`: the body is larger than 64 KiB");
                    add("415", "`unsupported_media_type`: the body is not `application/json`");
                }
                if path.starts_with("/api/auth/") || path.contains("resend-invite") || path == "/api/admins" {
                    add("429", "`rate_limited` (with `Retry-After`)");
                }
            }
        }
        // `temporary_password` or `session`: at least one is required.
        if let Some(components) = openapi.components.as_mut() {
            use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema};
            use utoipa::openapi::RefOr;
            if let Some(RefOr::T(body)) = components.schemas.remove("NewPasswordRequest") {
                let either = AnyOfBuilder::new()
                    .item(ObjectBuilder::new().required("temporary_password"))
                    .item(ObjectBuilder::new().required("session"))
                    .build();
                let schema = AllOfBuilder::new().item(body).item(Schema::AnyOf(either)).build();
                components
                    .schemas
                    .insert("NewPasswordRequest".into(), Schema::AllOf(schema).into());
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Cognito ID or access token of the user pool (RS256, verified against its JWKS)",
                    ))
                    .build(),
            ),
        );
    }
}
