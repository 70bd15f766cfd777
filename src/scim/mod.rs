//! SCIM 2.0 (RFC 7643 / RFC 7644): how an identity provider (Okta, Microsoft Entra ID) provisions and
//! deprovisions admins.
//!
//! Every write goes through the product's sagas, so the both-or-neither guarantee holds for SCIM exactly
//! as for the console: `POST /Users` is the provisioning saga (the Cognito invitation e-mail and all),
//! `active: false` / `true` (PUT or PATCH) the disable / enable sagas, `DELETE` the removal saga (with its
//! last-admin guard). Requests authenticate with a SCIM token ([`tokens`]); admins' Cognito tokens are not
//! accepted here, and SCIM tokens are not accepted anywhere else.
//!
//! The User resource:
//! * `id` is the admin's `User.id`; `externalId` is stored as sent;
//! * the admin's e-mail (the Cognito username) is chosen when the admin is created: `userName` when it is
//!   an e-mail address (Okta's default), otherwise the primary (else the first) `emails` value (Entra ID
//!   may send a `userPrincipalName` that is not a mailbox). It never changes afterwards; `userName` and
//!   `emails` are kept as the identity provider sends them;
//! * attributes outside the published schema (`name`, `displayName`, `title`, …) are accepted and
//!   ignored, as RFC 7644 §3.3 allows, so that an identity provider's default mapping works unchanged.
//!
//! Errors use the SCIM error shape (`urn:ietf:params:scim:api:messages:2.0:Error`, `status`, `scimType`,
//! `detail`) with `application/scim+json`; requests may send `application/scim+json` or
//! `application/json`.

pub mod filter;
pub mod patch;

use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::{scim_user_name_key, AdminEmail, AdminRecord, UserId};
use admin_provisioner_core::store::{ScimAttributes, ScimKey};
use admin_provisioner_core::{Caller, Error};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The media type of SCIM requests and responses.
pub const SCIM_JSON: &str = "application/scim+json";
/// The User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Largest page of `GET /Users` (`count` above it is lowered to it).
pub const MAX_COUNT: usize = 200;
/// Default page of `GET /Users`.
pub const DEFAULT_COUNT: usize = 100;
/// Rows read per keyset page when a filter must be evaluated on every admin (memory bound of a list).
const SCAN_PAGE: i64 = 500;

/// The `/scim/v2` routes.
pub fn routes() -> Router<AppState> {
    let v2 = Router::new()
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", axum::routing::post(search_users))
        .route(
            "/.search",
            axum::routing::post(|_client: ScimClient| async {
                ScimError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    None,
                    "searching several resource types at once is not supported: use /Users/.search",
                )
            }),
        )
        .route(
            "/Users/{id}",
            get(get_user).put(replace_user).patch(patch_user).delete(delete_user),
        )
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint") })
        .method_not_allowed_fallback(|| async {
            ScimError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                "this SCIM endpoint does not accept this method",
            )
        })
        .layer(axum::middleware::map_response(scim_shape_bare_errors));
    Router::new().nest("/scim/v2", v2)
}

// ---------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------

/// An error in the SCIM shape.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
    retry_after: Option<u64>,
}

impl ScimError {
    /// An error with an HTTP status, an optional `scimType` and a sentence for people.
    pub fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, None, "no such User")
    }
}

impl From<Error> for ScimError {
    /// The SCIM rendering of the core's one mapping: the same status and message as the JSON API, the
    /// code as `scimType` where RFC 7644 §3.12 has one.
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let scim_type = match &e {
            Error::AdminExists | Error::ForeignIdentityExists | Error::UserNameTaken => Some("uniqueness"),
            Error::InvalidEmail(_) => Some("invalidValue"),
            _ => None,
        };
        let detail = match &e {
            Error::NotFound => "no such User".to_string(),
            _ => e.public_message(),
        };
        let mut out = Self::new(status, scim_type, detail);
        out.retry_after = e.retry_after_secs();
        out
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut res = scim_json(self.status, &body);
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"admin-provisioner-scim\""),
            );
        }
        res
    }
}

/// An error answer made without [`ScimError`] (an extractor's rejection: a body over the size limit is
/// `413`, a query string that does not deserialize is `400`) in the SCIM error shape, so an identity
/// provider gets the shape it parses. The rejection's own text is dropped, as the edge does for the API.
async fn scim_shape_bare_errors(res: Response) -> Response {
    let status = res.status();
    let is_scim = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(SCIM_JSON.as_bytes()));
    if is_scim || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (scim_type, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            None,
            format!(
                "the request body is larger than {} bytes",
                crate::http::edge::MAX_BODY_BYTES
            ),
        ),
        StatusCode::BAD_REQUEST => (Some("invalidValue"), "a query parameter is malformed".to_string()),
        s if s.is_server_error() => (
            None,
            "an internal error occurred; quote the x-request-id header to an operator".to_string(),
        ),
        s => (None, s.canonical_reason().unwrap_or("the request failed").to_string()),
    };
    ScimError::new(status, scim_type, detail).into_response()
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    res
}

// ---------------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------------

/// A SCIM client authenticated by an unrevoked SCIM token (extractor). Rejection: 401 in the SCIM shape.
#[derive(Clone, Debug)]
pub struct ScimClient {
    /// The token's name (`scim:<name>` in the audit log).
    pub name: String,
}

impl ScimClient {
    fn caller(&self) -> Caller {
        Caller::Scim(self.name.clone())
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |why: &str| ScimError::new(StatusCode::UNAUTHORIZED, None, why.to_string());
        let token = crate::http::auth::bearer_token(&parts.headers).map_err(|e| unauthorized(&e.message))?;
        match state.provisioner().authenticate_scim_token(token).await? {
            Some(name) => Ok(ScimClient { name }),
            None => Err(unauthorized("the SCIM token is unknown or revoked")),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The User resource
// ---------------------------------------------------------------------------------------------------

/// The base URL of this SCIM service as the client reached it (for `meta.location`).
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}/scim/v2", if https { "https" } else { "http" })
}

/// The mutable SCIM attributes of an admin, as one JSON object: `userName`, `externalId`, `active`,
/// `emails`. PATCH operations ([`patch`]) apply to it.
fn attributes(r: &AdminRecord) -> Map<String, Value> {
    let profile: Map<String, Value> = r
        .user
        .scim_profile
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let mut doc = Map::new();
    doc.insert(
        "userName".into(),
        profile.get("userName").cloned().unwrap_or_else(|| json!(r.user.email)),
    );
    if let Some(e) = &r.user.external_id {
        doc.insert("externalId".into(), json!(e));
    }
    doc.insert("active".into(), json!(!r.user.is_disabled()));
    doc.insert(
        "emails".into(),
        profile
            .get("emails")
            .cloned()
            .unwrap_or_else(|| json!([{"value": r.user.email, "type": "work", "primary": true}])),
    );
    doc
}

fn user_resource(r: &AdminRecord, base: &str) -> Value {
    let mut doc = attributes(r);
    doc.insert("schemas".into(), json!([USER_SCHEMA]));
    doc.insert("id".into(), json!(r.user.id.to_string()));
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": r.user.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lastModified": r.user.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "location": format!("{base}/Users/{}", r.user.id),
            "version": format!("W/\"{}\"", r.user.updated_at.timestamp_micros()),
        }),
    );
    Value::Object(doc)
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.9) on a User: top-level attribute names, compared
/// case-insensitively; `id` and `schemas` are always returned.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl Projection {
    fn names(list: &Option<String>) -> Option<Vec<String>> {
        list.as_ref().map(|l| {
            l.split(',')
                .map(|a| {
                    let a = a.trim();
                    let a = a.strip_prefix(&format!("{USER_SCHEMA}:")).unwrap_or(a);
                    a.split('.').next().unwrap_or(a).to_ascii_lowercase()
                })
                .filter(|a| !a.is_empty())
                .collect()
        })
    }

    fn apply(&self, mut v: Value) -> Value {
        let keep = Self::names(&self.attributes);
        let drop = Self::names(&self.excluded_attributes);
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                if k == "id" || k == "schemas" {
                    return true;
                }
                if let Some(keep) = &keep {
                    return keep.contains(&k);
                }
                drop.as_ref().is_none_or(|d| !d.contains(&k))
            });
        }
        v
    }
}

fn parse_id(raw: &str) -> Result<UserId, ScimError> {
    uuid::Uuid::parse_str(raw)
        .map(UserId)
        .map_err(|_| ScimError::not_found())
}

async fn load(state: &AppState, client: &ScimClient, id: UserId) -> Result<AdminRecord, ScimError> {
    match state.provisioner().get_admin_record(&client.caller(), id).await {
        Ok(r) => Ok(r),
        Err(Error::NotFound) => Err(ScimError::not_found()),
        Err(e) => Err(e.into()),
    }
}

fn body_json(body: &Bytes) -> Result<Map<String, Value>, ScimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ScimError::bad("invalidSyntax", "the body must be a JSON object")),
        Err(e) => Err(ScimError::bad(
            "invalidSyntax",
            format!("the body is not valid JSON (line {}, column {})", e.line(), e.column()),
        )),
    }
}

/// The User attributes the product keeps, taken from a POST or PUT body (names case-insensitive, with or
/// without the schema URN prefix); everything else is ignored.
fn attributes_from_body(body: &Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
    let mut doc = Map::new();
    for (k, v) in body {
        if let Some(name) = patch::canonical(k) {
            doc.insert(name.to_string(), v.clone());
        }
    }
    patch::normalize(&mut doc)?;
    Ok(doc)
}

/// The admin's e-mail from a new User: `userName` when it is an address, else the primary (else first)
/// `emails` value.
fn email_of(doc: &Map<String, Value>) -> Result<AdminEmail, ScimError> {
    let user_name = doc.get("userName").and_then(Value::as_str).unwrap_or("");
    if let Ok(e) = AdminEmail::parse(user_name) {
        return Ok(e);
    }
    let emails = doc.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
    let primary = emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str);
    match primary {
        Some(p) => AdminEmail::parse(p).map_err(|e| ScimError::bad("invalidValue", e.to_string())),
        None => Err(ScimError::bad(
            "invalidValue",
            "userName must be the admin's e-mail address (or emails must carry one)",
        )),
    }
}

/// The `userName` key of a document: normalised like an e-mail (IDN, case, NFKC look-alikes), so that
/// two spellings of one name are one key (`domain::scim_user_name_key`).
fn user_name_key(doc: &Map<String, Value>) -> String {
    scim_user_name_key(doc.get("userName").and_then(Value::as_str).unwrap_or(""))
}

/// The addresses a document's `emails` carry (values that are not strings are ignored).
fn email_values(doc: &Map<String, Value>) -> Vec<String> {
    doc.get("emails")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("value").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The SCIM attributes the core keeps for `doc`: `externalId`, the `userName` key and the profile
/// (`userName` and `emails` as sent).
fn scim_attributes(doc: &Map<String, Value>) -> ScimAttributes {
    let mut profile = Map::new();
    for key in ["userName", "emails"] {
        if let Some(v) = doc.get(key) {
            profile.insert(key.into(), v.clone());
        }
    }
    ScimAttributes {
        external_id: doc.get("externalId").and_then(Value::as_str).map(str::to_string),
        user_name: user_name_key(doc),
        profile: Value::Object(profile).to_string(),
    }
}

/// Stores `doc` (the new attributes) for admin `record`: `active` first, through the disable / enable
/// saga (both systems or neither), then `externalId`, `userName` and `emails` (database only), each
/// through the core, which holds the rules (who may, how often, uniqueness).
async fn apply(
    state: &AppState,
    client: &ScimClient,
    record: AdminRecord,
    doc: Map<String, Value>,
    request_id: &str,
) -> Result<AdminRecord, ScimError> {
    let provisioner = state.provisioner();
    let id = record.user.id;
    let attributes = scim_attributes(&doc);
    let changed = attributes.external_id != record.user.external_id
        || Some(&attributes.profile) != record.user.scim_profile.as_ref();
    let mut record = record;
    let emails = email_values(&doc);
    let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    let switch = active == record.user.is_disabled();
    // Uniqueness first (read-only), then `active` (its saga may refuse: the last admin), then the
    // attributes: a refusal at either step leaves the User as it was.
    if changed && switch {
        provisioner
            .check_scim_attributes(&client.caller(), id, &attributes, &emails)
            .await?;
    }
    if switch {
        record = if active {
            provisioner.enable_admin(&client.caller(), id, Some(request_id)).await?
        } else {
            provisioner
                .disable_admin(&client.caller(), id, Some(request_id))
                .await?
        };
    }
    if changed {
        record = provisioner
            .set_scim_attributes(&client.caller(), id, attributes, &emails)
            .await?;
    }
    Ok(record)
}

/// `POST /scim/v2/Users`: provisions an admin (the provisioning saga; Cognito e-mails the invitation).
async fn create_user(
    State(state): State<AppState>,
    client: ScimClient,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let body = body_json(&body)?;
    let doc = attributes_from_body(&body)?;
    if user_name_key(&doc).is_empty() {
        return Err(ScimError::bad("invalidValue", "userName is required"));
    }
    let email = email_of(&doc)?;
    // One saga: the userName is claimed and the SCIM attributes written with the records.
    let provisioned = state
        .provisioner()
        .provision_scim_user(
            &client.caller(),
            email.as_str(),
            scim_attributes(&doc),
            &email_values(&doc),
            Some(&request_id),
        )
        .await?;
    let mut record = AdminRecord {
        user: provisioned.user,
        admin_info: provisioned.admin_info,
    };
    // A User created inactive: the disable saga, as for a later `active: false`.
    if doc.get("active").and_then(Value::as_bool) == Some(false) {
        record = state
            .provisioner()
            .disable_admin(&client.caller(), record.user.id, Some(&request_id))
            .await?;
    }
    let base = base_url(&headers);
    let mut res = scim_json(StatusCode::CREATED, &user_resource(&record, &base));
    if let Ok(loc) = HeaderValue::from_str(&format!("{base}/Users/{}", record.user.id)) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// `GET /scim/v2/Users/{id}`.
async fn get_user(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    Query(projection): Query<Projection>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let record = load(&state, &client, parse_id(&id)?).await?;
    let v = projection.apply(user_resource(&record, &base_url(&headers)));
    Ok(scim_json(StatusCode::OK, &v))
}

/// `GET /scim/v2/Users` query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    #[serde(flatten)]
    projection: ProjectionFields,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProjectionFields {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// `GET /scim/v2/Users?filter=…&startIndex=…&count=…`: a `ListResponse`, oldest first.
async fn list_users(
    State(state): State<AppState>,
    client: ScimClient,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let parse_num = |raw: &Option<String>, name: &str| -> Result<Option<i64>, ScimError> {
        raw.as_deref()
            .map(|s| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::bad("invalidValue", format!("{name} must be an integer")))
            })
            .transpose()
    };
    let start = parse_num(&q.start_index, "startIndex")?;
    let count = parse_num(&q.count, "count")?;
    let projection = Projection {
        attributes: q.projection.attributes,
        excluded_attributes: q.projection.excluded_attributes,
    };
    list_page(
        &state,
        &client.caller(),
        q.filter.as_deref(),
        start,
        count,
        &projection,
        &headers,
    )
    .await
}

/// `POST /scim/v2/Users/.search` body (RFC 7644 §3.4.3).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<Vec<String>>,
    excluded_attributes: Option<Vec<String>>,
}

/// `POST /scim/v2/Users/.search`: the query of `GET /Users` in a body.
async fn search_users(
    State(state): State<AppState>,
    client: ScimClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let q: SearchRequest = serde_json::from_slice(&body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the search request is malformed: {e}")))?;
    let projection = Projection {
        attributes: q.attributes.map(|a| a.join(",")),
        excluded_attributes: q.excluded_attributes.map(|a| a.join(",")),
    };
    list_page(
        &state,
        &client.caller(),
        q.filter.as_deref(),
        q.start_index,
        q.count,
        &projection,
        &headers,
    )
    .await
}

async fn list_page(
    state: &AppState,
    caller: &Caller,
    filter: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    projection: &Projection,
    headers: &HeaderMap,
) -> Result<Response, ScimError> {
    // RFC 7644 §3.4.2.4: a startIndex below 1 is 1; a negative count is 0.
    let start = start.unwrap_or(1).max(1) as usize;
    let count = count.map(|c| c.max(0) as usize).unwrap_or(DEFAULT_COUNT).min(MAX_COUNT);
    let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => Some(filter::ParsedFilter::parse(f).map_err(|e| ScimError::bad("invalidFilter", e.to_string()))?),
        None => None,
    };
    let base = base_url(headers);
    let passes = |r: &AdminRecord| match &filter {
        None => true,
        Some(f) => {
            let id = r.user.id.to_string();
            let doc = attributes(r);
            let created = r.user.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let modified = r.user.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let user_name = doc.get("userName").and_then(Value::as_str).unwrap_or(&r.user.email);
            let emails: Vec<filter::EmailRef<'_>> = doc
                .get("emails")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some(filter::EmailRef {
                                value: e.get("value")?.as_str()?,
                                kind: e.get("type").and_then(Value::as_str),
                                primary: e.get("primary").and_then(Value::as_bool).unwrap_or(false),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            f.matches(&filter::Subject {
                id: &id,
                external_id: r.user.external_id.as_deref(),
                user_name,
                emails: &emails,
                active: !r.user.is_disabled(),
                created: &created,
                last_modified: &modified,
            })
        }
    };
    // Memory stays bounded whatever the table holds: the matches are counted, and only the requested
    // window of them is kept.
    let mut total = 0usize;
    let mut page: Vec<Value> = Vec::new();
    let mut take = |r: &AdminRecord| {
        if passes(r) {
            total += 1;
            if total >= start && page.len() < count {
                page.push(projection.apply(user_resource(r, &base)));
            }
        }
    };
    let core = state.provisioner();
    match filter.as_ref().and_then(filter::ParsedFilter::lookups) {
        // `userName eq`, `externalId eq`, `id eq` (what Okta and Entra ID send): indexed lookups.
        Some(lookups) => {
            let mut found: Vec<AdminRecord> = Vec::new();
            for lookup in lookups {
                let rows = match lookup {
                    filter::Lookup::Id(id) => match uuid::Uuid::parse_str(id.trim()).map(UserId) {
                        Ok(id) => match core.get_admin_record(caller, id).await {
                            Ok(r) => vec![r],
                            Err(Error::NotFound) => Vec::new(),
                            Err(e) => return Err(e.into()),
                        },
                        Err(_) => Vec::new(),
                    },
                    filter::Lookup::UserName(name) => {
                        // The key as the core normalises it, and the plain lower-cased form that rows
                        // written before that normalisation carry.
                        let mut keys = vec![scim_user_name_key(&name), name.trim().to_lowercase()];
                        keys.dedup();
                        let mut rows = Vec::new();
                        for key in keys {
                            rows.extend(core.find_admins_by_scim_key(caller, &ScimKey::UserName(key)).await?);
                        }
                        rows
                    }
                    filter::Lookup::ExternalId(v) => {
                        core.find_admins_by_scim_key(caller, &ScimKey::ExternalId(v)).await?
                    }
                };
                found.extend(rows);
            }
            found.sort_by_key(|r| (r.user.created_at, r.user.id));
            found.dedup_by_key(|r| r.user.id);
            found.iter().for_each(&mut take);
        }
        // Anything else: the whole table, one keyset page at a time.
        None => {
            let mut after = None;
            loop {
                let rows = core.scan_admin_records(caller, after, SCAN_PAGE).await?;
                rows.iter().for_each(&mut take);
                match rows.last() {
                    Some(last) if rows.len() as i64 == SCAN_PAGE => after = Some((last.user.created_at, last.user.id)),
                    _ => break,
                }
            }
        }
    }
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    Ok(scim_json(StatusCode::OK, &body))
}

/// `PUT /scim/v2/Users/{id}`: replaces the kept attributes; `active` goes through the disable / enable
/// saga. The admin's e-mail never changes.
async fn replace_user(
    State(state): State<AppState>,
    client: ScimClient,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let record = load(&state, &client, parse_id(&id)?).await?;
    let body = body_json(&body)?;
    let mut doc = attributes_from_body(&body)?;
    if user_name_key(&doc).is_empty() {
        return Err(ScimError::bad("invalidValue", "userName is required"));
    }
    // PUT replaces; an omitted `active` keeps the admin's state (RFC 7644 §3.5.1 leaves it to the server).
    doc.entry("active").or_insert(json!(!record.user.is_disabled()));
    let record = apply(&state, &client, record, doc, &request_id).await?;
    Ok(scim_json(StatusCode::OK, &user_resource(&record, &base_url(&headers))))
}

/// `PATCH /scim/v2/Users/{id}`: a `PatchOp` (see [`patch`]); how Okta and Entra ID deactivate and
/// reactivate people.
async fn patch_user(
    State(state): State<AppState>,
    client: ScimClient,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let record = load(&state, &client, parse_id(&id)?).await?;
    let body = body_json(&body)?;
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA)));
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a PATCH body lists the schema {PATCH_SCHEMA}"),
        ));
    }
    let ops = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a PATCH body has an Operations array"))?;
    let mut doc = attributes(&record);
    for op in ops {
        patch::apply_operation(&mut doc, op)?;
    }
    patch::normalize(&mut doc)?;
    if user_name_key(&doc).is_empty() {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("mutability"),
            "userName is required and cannot be removed",
        ));
    }
    let record = apply(&state, &client, record, doc, &request_id).await?;
    Ok(scim_json(StatusCode::OK, &user_resource(&record, &base_url(&headers))))
}

/// `DELETE /scim/v2/Users/{id}`: removes the admin in both systems (the removal saga; the last active
/// admin is refused with 409).
async fn delete_user(
    State(state): State<AppState>,
    client: ScimClient,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ScimError> {
    let id = parse_id(&id)?;
    load(&state, &client, id).await?;
    state
        .provisioner()
        .remove_admin(&client.caller(), id, Some(&request_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------------

fn service_provider_config_doc(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/admin-provisioner/admin-provisioner#scim-20-okta-and-entra-id",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "SCIM token",
            "description": "A SCIM token issued with `admin-provisioner scim-token create --name NAME` or on the console's SCIM tokens page, sent as `Authorization: Bearer <token>`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

fn user_schema_doc(base: &str) -> Value {
    let attr = |name: &str,
                ty: &str,
                required: bool,
                case_exact: bool,
                mutability: &str,
                uniqueness: &str,
                description: &str| {
        json!({
            "name": name, "type": ty, "multiValued": false, "description": description,
            "required": required, "caseExact": case_exact, "mutability": mutability,
            "returned": "default", "uniqueness": uniqueness,
        })
    };
    let sub = |name: &str, ty: &str, required: bool, description: &str| {
        json!({
            "name": name, "type": ty, "multiValued": false, "description": description,
            "required": required, "caseExact": false, "mutability": "readWrite",
            "returned": "default", "uniqueness": "none",
        })
    };
    let mut type_attr = sub("type", "string", false, "A label: work, home or other.");
    type_attr["canonicalValues"] = json!(["work", "home", "other"]);
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "An admin of the application (a Cognito user and its database records).",
        "attributes": [
            attr("userName", "string", true, false, "readWrite", "server",
                "The admin's e-mail address (when it is not one, the primary emails value is the admin's e-mail). Unique, case-insensitive."),
            attr("active", "boolean", true, false, "readWrite", "none",
                "false disables the admin in Cognito and the database; true enables them again. Cannot be removed (absent on create means true)."),
            {
                "name": "emails", "type": "complex", "multiValued": true,
                "description": "E-mail addresses, as the identity provider sends them; the primary (else first) one is the admin's e-mail when userName is not an address.",
                "required": true, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
                "caseExact": false,
                "subAttributes": [
                    sub("value", "string", true, "The address."),
                    type_attr,
                    sub("primary", "boolean", false, "The preferred address."),
                ],
            },
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
    })
}

fn user_resource_type_doc(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "Admins",
        "schema": USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

fn list_of(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

/// `GET /scim/v2/ServiceProviderConfig`.
async fn service_provider_config(_client: ScimClient, headers: HeaderMap) -> Response {
    scim_json(StatusCode::OK, &service_provider_config_doc(&base_url(&headers)))
}

/// `GET /scim/v2/Schemas`.
async fn schemas(_client: ScimClient, headers: HeaderMap) -> Response {
    scim_json(StatusCode::OK, &list_of(vec![user_schema_doc(&base_url(&headers))]))
}

/// `GET /scim/v2/Schemas/{id}`.
async fn schema_by_id(_client: ScimClient, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ScimError> {
    if id != USER_SCHEMA {
        return Err(ScimError::new(StatusCode::NOT_FOUND, None, "no such schema"));
    }
    Ok(scim_json(StatusCode::OK, &user_schema_doc(&base_url(&headers))))
}

/// `GET /scim/v2/ResourceTypes`.
async fn resource_types(_client: ScimClient, headers: HeaderMap) -> Response {
    scim_json(
        StatusCode::OK,
        &list_of(vec![user_resource_type_doc(&base_url(&headers))]),
    )
}

/// `GET /scim/v2/ResourceTypes/{id}`.
async fn resource_type_by_id(
    _client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    if id != "User" {
        return Err(ScimError::new(StatusCode::NOT_FOUND, None, "no such resource type"));
    }
    Ok(scim_json(StatusCode::OK, &user_resource_type_doc(&base_url(&headers))))
}
