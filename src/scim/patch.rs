//! SCIM PATCH (RFC 7644 §3.5.2) on the User attributes the product keeps: `userName`, `externalId`,
//! `active`, `emails`.
//!
//! The operations are applied to one JSON object (the admin's attributes); the result is then stored,
//! `active` through the disable / enable saga. What the identity providers send is accepted:
//! * op names in any case (`replace`, Entra ID's `Replace`), with and without `path`;
//! * `active` as a boolean or as the string `"True"` / `"False"` (Entra ID);
//! * Okta's `{"op":"replace","value":{"active":false}}` and Entra ID's
//!   `{"op":"Replace","path":"active","value":"False"}`;
//! * value paths on `emails`: `emails[type eq "work"].value` (Entra ID), `emails[value eq "…"]`;
//! * attribute names with the schema URN prefix (`urn:ietf:params:scim:schemas:core:2.0:User:userName`).
//!
//! A path naming an attribute outside the schema (`name.givenName`, `displayName`, …) is accepted and
//! ignored (the product does not keep it), so an identity provider's default attribute mapping works.

use super::{ScimError, USER_SCHEMA};
use admin_provisioner_core::domain::Role;
use serde_json::{json, Map, Value};

/// Most `emails` a User may have (Okta and Entra ID send one to three); more is `400 invalidValue`.
/// It also bounds the work of a PATCH `add` (each added address is compared with those present).
pub const MAX_EMAILS: usize = 20;

fn too_many_emails(n: usize) -> ScimError {
    ScimError::bad(
        "invalidValue",
        format!("a User has at most {MAX_EMAILS} emails; this one would have {n}"),
    )
}

/// The canonical name of a kept User attribute (case-insensitive, URN prefix allowed); `None` for an
/// attribute the product does not keep.
pub fn canonical(name: &str) -> Option<&'static str> {
    let name = name.trim();
    let name = match name.get(..USER_SCHEMA.len() + 1) {
        Some(prefix) if prefix.eq_ignore_ascii_case(&format!("{USER_SCHEMA}:")) => &name[USER_SCHEMA.len() + 1..],
        _ => name,
    };
    match name.to_ascii_lowercase().as_str() {
        "username" => Some("userName"),
        "externalid" => Some("externalId"),
        "active" => Some("active"),
        "emails" => Some("emails"),
        "roles" => Some("roles"),
        _ => None,
    }
}

/// The role a User document asks for: its `roles` attribute (RFC 7643 §4.1.2, a multi-valued
/// attribute whose `value` is `owner`, `admin` or `viewer`): the primary entry, else the only one.
/// `None` when the document has no `roles`. `400 invalidValue` for an unknown role, an entry without a
/// string value, or several entries none of which is primary.
pub fn role_of(doc: &Map<String, Value>) -> Result<Option<Role>, ScimError> {
    let Some(v) = doc.get("roles") else {
        return Ok(None);
    };
    let bad = |detail: String| ScimError::bad("invalidValue", detail);
    let items = match v {
        Value::Array(items) => items.clone(),
        Value::Null => return Ok(None),
        one @ Value::Object(_) => vec![one.clone()],
        _ => {
            return Err(bad(
                "roles must be an array of objects with a value (owner, admin or viewer)".into(),
            ))
        }
    };
    if items.is_empty() {
        return Ok(None);
    }
    let value = |item: &Value| -> Result<Role, ScimError> {
        let raw = item
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("each of roles is an object with a string value".into()))?;
        Role::parse(raw).ok_or_else(|| bad(format!("unknown role {raw:?}: a role is owner, admin or viewer")))
    };
    let primary: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .collect();
    match (primary.as_slice(), items.as_slice()) {
        ([one], _) => value(one).map(Some),
        ([], [one]) => value(one).map(Some),
        _ => Err(bad(
            "an admin has one role: send one entry in roles, or mark one of them primary".into(),
        )),
    }
}

/// Checks and normalises the kept attributes: `userName` a string, `externalId` a string (null removes
/// it), `active` a boolean (the strings `"true"`/`"false"` in any case are accepted), `emails` an array
/// of objects with a string `value`.
pub fn normalize(doc: &mut Map<String, Value>) -> Result<(), ScimError> {
    match doc.get("userName") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(ScimError::bad("invalidValue", "userName must be a string")),
    }
    match doc.get("externalId") {
        Some(Value::Null) => {
            doc.remove("externalId");
        }
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(ScimError::bad("invalidValue", "externalId must be a string")),
    }
    if let Some(v) = doc.get("active").cloned() {
        let b = match &v {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            Value::Null => true,
            _ => return Err(ScimError::bad("invalidValue", "active must be true or false")),
        };
        doc.insert("active".into(), json!(b));
    }
    if let Some(v) = doc.get("roles") {
        if v.is_null() {
            doc.remove("roles");
        } else {
            role_of(doc)?;
        }
    }
    match doc.get_mut("emails") {
        None => {}
        Some(Value::Null) => {
            doc.remove("emails");
        }
        Some(Value::Array(items)) => {
            if items.len() > MAX_EMAILS {
                return Err(too_many_emails(items.len()));
            }
            for item in items.iter() {
                let ok = item.as_object().is_some_and(|o| {
                    o.get("value").is_some_and(Value::is_string)
                        && o.get("primary").is_none_or(|p| p.is_boolean())
                        && o.get("type").is_none_or(|t| t.is_string())
                });
                if !ok {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "each of emails is an object with a string value (and optional type, primary)",
                    ));
                }
            }
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "emails must be an array")),
    }
    Ok(())
}

/// A parsed PATCH path: `attr`, `attr.sub`, `attr[sub op "value"]` or `attr[sub op "value"].sub`.
#[derive(Debug, PartialEq)]
struct PatchPath {
    attr: Option<&'static str>,
    filter: Option<(String, String)>,
    sub: Option<String>,
}

fn parse_path(raw: &str) -> Result<PatchPath, ScimError> {
    let invalid = || {
        ScimError::bad(
            "invalidPath",
            format!("the path {raw:?} is not one this server understands"),
        )
    };
    let raw = raw.trim();
    let (head, filter, rest) = match raw.find('[') {
        Some(open) => {
            let close = raw.rfind(']').filter(|c| *c > open).ok_or_else(invalid)?;
            (&raw[..open], Some(&raw[open + 1..close]), &raw[close + 1..])
        }
        None => (raw, None, ""),
    };
    // `urn:…:User:emails.value`: the URN contains dots (`2.0`), so split the sub-attribute off the name.
    let (attr_part, sub_from_head) = {
        let stripped = match head.get(..USER_SCHEMA.len() + 1) {
            Some(p) if p.eq_ignore_ascii_case(&format!("{USER_SCHEMA}:")) => &head[USER_SCHEMA.len() + 1..],
            _ => head,
        };
        match stripped.split_once('.') {
            Some((a, s)) => (a, Some(s.to_string())),
            None => (stripped, None),
        }
    };
    if attr_part.is_empty() {
        return Err(invalid());
    }
    let filter = match filter {
        None => None,
        Some(f) => {
            // `sub eq "value"` only: what identity providers send.
            let mut parts = f.trim().splitn(3, ' ');
            let (name, op, value) = (parts.next(), parts.next(), parts.next());
            match (name, op, value) {
                (Some(n), Some(op), Some(v)) if op.eq_ignore_ascii_case("eq") => {
                    let v = v.trim();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    Some((n.to_ascii_lowercase(), v.to_string()))
                }
                _ => return Err(invalid()),
            }
        }
    };
    let sub = match rest.strip_prefix('.') {
        Some(s) if !s.is_empty() => Some(s.to_string()),
        Some(_) => return Err(invalid()),
        None if rest.is_empty() => sub_from_head,
        None => return Err(invalid()),
    };
    Ok(PatchPath {
        attr: canonical(attr_part),
        filter,
        sub: sub.map(|s| s.to_ascii_lowercase()),
    })
}

fn element_matches(element: &Value, filter: &(String, String)) -> bool {
    let (name, want) = filter;
    element
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
        .is_some_and(|v| match v {
            Value::String(s) => s.eq_ignore_ascii_case(want),
            Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        })
}

/// The canonical spelling of an `emails` sub-attribute.
fn email_sub(sub: &str) -> Option<&'static str> {
    match sub {
        "value" => Some("value"),
        "type" => Some("type"),
        "primary" => Some("primary"),
        _ => None,
    }
}

/// Applies one operation of a PatchOp's `Operations` to `doc`.
pub fn apply_operation(doc: &mut Map<String, Value>, op: &Value) -> Result<(), ScimError> {
    let op_obj = op
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation is a JSON object"))?;
    let field = |name: &str| {
        op_obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let kind = field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "an operation has an op"))?;
    if !matches!(kind.as_str(), "add" | "replace" | "remove") {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("unknown op {kind:?} (add, replace or remove)"),
        ));
    }
    let value = field("value").cloned();
    let path = field("path").and_then(Value::as_str).filter(|p| !p.trim().is_empty());
    let Some(path) = path else {
        if kind == "remove" {
            return Err(ScimError::bad("noTarget", "remove needs a path"));
        }
        let Some(Value::Object(values)) = value else {
            return Err(ScimError::bad(
                "invalidValue",
                "an operation without path takes an object value",
            ));
        };
        for (k, v) in values {
            // Okta sends `{"value": {"active": false}}`; an object key may itself be a path.
            let p = parse_path(&k)?;
            apply_at(doc, &kind, &p, Some(v))?;
        }
        return Ok(());
    };
    let p = parse_path(path)?;
    if kind != "remove" && value.is_none() {
        return Err(ScimError::bad("invalidValue", format!("{kind} needs a value")));
    }
    apply_at(doc, &kind, &p, value)
}

fn apply_at(doc: &mut Map<String, Value>, kind: &str, p: &PatchPath, value: Option<Value>) -> Result<(), ScimError> {
    let Some(attr) = p.attr else {
        // Not kept by the product: accepted, ignored.
        return Ok(());
    };
    if attr != "emails" {
        if p.filter.is_some() || p.sub.is_some() {
            return Err(ScimError::bad("invalidPath", format!("{attr} has no sub-attributes")));
        }
        match kind {
            "remove" if attr == "active" || attr == "userName" => {
                return Err(ScimError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    Some("mutability"),
                    format!("{attr} is required and cannot be removed"),
                ))
            }
            "remove" => {
                doc.remove(attr);
            }
            _ => {
                doc.insert(attr.to_string(), value.unwrap_or(Value::Null));
            }
        }
        return Ok(());
    }
    // emails: a multi-valued complex attribute.
    let sub = match &p.sub {
        Some(s) => Some(email_sub(s).ok_or_else(|| ScimError::bad("invalidPath", format!("emails has no {s}")))?),
        None => None,
    };
    let mut items = match doc.remove("emails") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    match (kind, &p.filter, sub) {
        ("remove", None, None) => items.clear(),
        ("remove", None, Some(s)) => items.iter_mut().for_each(|e| {
            if let Some(o) = e.as_object_mut() {
                o.remove(s);
            }
        }),
        ("remove", Some(f), None) => items.retain(|e| !element_matches(e, f)),
        ("remove", Some(f), Some(s)) => items.iter_mut().filter(|e| element_matches(e, f)).for_each(|e| {
            if let Some(o) = e.as_object_mut() {
                o.remove(s);
            }
        }),
        (_, None, None) => {
            let new = match value {
                Some(Value::Array(a)) => a,
                Some(v @ Value::Object(_)) => vec![v],
                _ => return Err(ScimError::bad("invalidValue", "emails takes an array of objects")),
            };
            if kind == "replace" {
                items = new;
            } else {
                for v in new {
                    if !items.contains(&v) {
                        if items.len() == MAX_EMAILS {
                            return Err(too_many_emails(MAX_EMAILS + 1));
                        }
                        items.push(v);
                    }
                }
            }
        }
        (_, None, Some(s)) => {
            // `emails.value`: on the primary (else first) address, creating one if there is none.
            let v = value.unwrap_or(Value::Null);
            let idx = items
                .iter()
                .position(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or(if items.is_empty() { None } else { Some(0) });
            match idx {
                Some(i) => {
                    if let Some(o) = items[i].as_object_mut() {
                        o.insert(s.into(), v);
                    }
                }
                None => items.push(json!({ s: v })),
            }
        }
        (_, Some(f), sub) => {
            let v = value.unwrap_or(Value::Null);
            let mut hit = false;
            for e in items.iter_mut().filter(|e| element_matches(e, f)) {
                hit = true;
                match (sub, e.as_object_mut()) {
                    (Some(s), Some(o)) => {
                        o.insert(s.into(), v.clone());
                    }
                    (None, Some(o)) => {
                        if let Value::Object(new) = &v {
                            for (k, val) in new {
                                o.insert(k.clone(), val.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !hit {
                // Entra ID adds `emails[type eq "work"].value` with replace: create that element.
                let mut o = Map::new();
                o.insert(email_sub(&f.0).unwrap_or("type").to_string(), json!(f.1));
                match (sub, v) {
                    (Some(s), v) => {
                        o.insert(s.into(), v);
                    }
                    (None, Value::Object(new)) => o.extend(new),
                    _ => {}
                }
                items.push(Value::Object(o));
            }
        }
    }
    doc.insert("emails".into(), Value::Array(items));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Map<String, Value> {
        json!({"userName": "ann@example.com", "active": true, "emails": [{"value": "ann@example.com", "type": "work", "primary": true}]})
            .as_object()
            .unwrap()
            .clone()
    }

    fn patched(ops: Value) -> Map<String, Value> {
        let mut d = doc();
        for op in ops.as_array().unwrap() {
            apply_operation(&mut d, op).unwrap();
        }
        normalize(&mut d).unwrap();
        d
    }

    #[test]
    fn okta_deactivates_with_a_value_object_and_entra_with_a_path_and_the_string_false() {
        let okta = patched(json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(okta["active"], json!(false));
        let entra = patched(json!([{"op": "Replace", "path": "active", "value": "False"}]));
        assert_eq!(entra["active"], json!(false));
        let back = patched(json!([{"op": "REPLACE", "path": "active", "value": "True"}]));
        assert_eq!(back["active"], json!(true));
    }

    #[test]
    fn entra_value_paths_on_emails_and_ignored_attributes() {
        let d = patched(json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ann@corp.example"},
            {"op": "Add", "path": "externalId", "value": "e-1"},
            {"op": "Replace", "path": "name.givenName", "value": "Ann"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName", "value": "ann@corp.example"},
        ]));
        assert_eq!(d["emails"][0]["value"], json!("ann@corp.example"));
        assert_eq!(d["externalId"], json!("e-1"));
        assert_eq!(d["userName"], json!("ann@corp.example"));
        assert!(!d.contains_key("name"));
    }

    #[test]
    fn emails_are_accepted_up_to_the_bound_and_refused_past_it() {
        let emails =
            |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"value": format!("e{i}@example.com")})).collect() };
        // The document starts with one address.
        let d = patched(json!([{"op": "add", "path": "emails", "value": emails(MAX_EMAILS - 1)}]));
        assert_eq!(d["emails"].as_array().unwrap().len(), MAX_EMAILS);
        // Re-adding present addresses adds nothing.
        let d = patched(json!([
            {"op": "add", "path": "emails", "value": emails(MAX_EMAILS - 1)},
            {"op": "add", "path": "emails", "value": emails(MAX_EMAILS - 1)},
        ]));
        assert_eq!(d["emails"].as_array().unwrap().len(), MAX_EMAILS);

        let mut d = doc();
        let over = json!({"op": "add", "path": "emails", "value": emails(MAX_EMAILS)});
        let err = apply_operation(&mut d, &over).unwrap_err();
        assert_eq!(err.detail, "a User has at most 20 emails; this one would have 21");
        // What took 1.3 s in one request before (a quadratic add of 3,800 addresses): refused at once.
        let mut d = doc();
        let huge = json!({"op": "add", "path": "emails", "value": emails(3800)});
        assert!(apply_operation(&mut d, &huge).is_err());

        let mut d = doc();
        apply_operation(
            &mut d,
            &json!({"op": "replace", "path": "emails", "value": emails(MAX_EMAILS + 1)}),
        )
        .unwrap();
        assert_eq!(normalize(&mut d).unwrap_err().scim_type, Some("invalidValue"));
    }

    #[test]
    fn remove_add_and_bad_operations() {
        let d = patched(json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]));
        assert_eq!(d["emails"], json!([]));
        let d =
            patched(json!([{"op": "add", "path": "emails", "value": [{"value": "b@example.com", "type": "home"}]}]));
        assert_eq!(d["emails"].as_array().unwrap().len(), 2);
        let mut d = doc();
        for bad in [
            json!({"op": "move", "path": "active", "value": true}),
            json!({"op": "remove"}),
            json!({"op": "replace", "value": 3}),
            json!({"op": "replace", "path": "active[x eq \"y\"]", "value": true}),
        ] {
            assert!(apply_operation(&mut d, &bad).is_err(), "{bad}");
        }
        let mut d = doc();
        apply_operation(&mut d, &json!({"op": "replace", "path": "active", "value": "maybe"})).unwrap();
        assert!(normalize(&mut d).is_err());
    }
}
