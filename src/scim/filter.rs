//! SCIM filters (RFC 7644 §3.4.2.2) over admins: parsed by the `scim-filter` crate, evaluated here.
//!
//! The crate's parser gives the filter's syntax tree; two things are done on top of it:
//! * **precedence**: the parser reads `a and b or c` as `a and (b or c)` (it nests every logical
//!   expression to the right), while RFC 7644 binds `and` tighter than `or`. A chain without parentheses
//!   is therefore flattened and regrouped as an `or` of `and`s (parenthesised groups stay groups);
//! * **attribute semantics**: the crate's own matcher compares serialised JSON case-sensitively, while
//!   `userName` and `emails.value` are case-insensitive (`caseExact: false`) and `id`/`externalId` are
//!   case-exact. So the tree is evaluated against an admin's SCIM attributes here.
//!
//! Supported attributes: `id`, `externalId`, `userName`, `active`, `emails` / `emails.value` (also
//! `emails[value eq "…"]`, `emails.type`, `emails.primary`), `meta.created`, `meta.lastModified`; operators
//! `eq ne co sw ew gt ge lt le pr`, `and`, `or`, `not ( … )`. An attribute the User schema does not have
//! matches nothing.

use scim_filter::parser::{AttrExpData, AttrPath, CompValue, CompareOp, Filter, LogExpOperator, ValFilter};

/// A filter that does not parse (answered `400`, `scimType: invalidFilter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the filter is not valid SCIM filter syntax: {0}")]
pub struct InvalidFilter(pub String);

/// What a filter is evaluated against: one admin as a SCIM User.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// `id`.
    pub id: &'a str,
    /// `externalId`.
    pub external_id: Option<&'a str>,
    /// `userName`.
    pub user_name: &'a str,
    /// `emails`.
    pub emails: &'a [EmailRef<'a>],
    /// `active`.
    pub active: bool,
    /// `meta.created`, RFC 3339.
    pub created: &'a str,
    /// `meta.lastModified`, RFC 3339.
    pub last_modified: &'a str,
}

/// One element of `emails`.
#[derive(Debug, Clone, Copy)]
pub struct EmailRef<'a> {
    /// `value`.
    pub value: &'a str,
    /// `type`.
    pub kind: Option<&'a str>,
    /// `primary`.
    pub primary: bool,
}

/// A parsed filter.
pub struct ParsedFilter {
    // The crate's tree borrows the input: it is converted to an owned, regrouped form once.
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Compare {
        attr: String,
        sub: Option<String>,
        op: CompareOp,
        value: Value,
    },
    Present {
        attr: String,
        sub: Option<String>,
    },
    /// `attr[ filter ]` on a multi-valued attribute.
    ValuePath {
        attr: String,
        inner: Box<Node>,
    },
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Null,
    Number(String),
}

impl ParsedFilter {
    /// Parses `input`.
    pub fn parse(input: &str) -> Result<Self, InvalidFilter> {
        let input = input.trim();
        let (rest, tree) = scim_filter::parser::filter(input).map_err(|e| InvalidFilter(short(&e.to_string())))?;
        if !rest.trim().is_empty() {
            return Err(InvalidFilter(format!("unexpected text at {:?}", short(rest))));
        }
        Ok(Self { root: convert(&tree) })
    }

    /// True when `subject` passes the filter.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        eval(&self.root, subject, None)
    }

    /// Indexed lookups whose results hold every subject the filter can match, when the filter pins one
    /// down: `id`, `userName` or `externalId` `eq` a string, alone, in any branch of an `and`, or in every
    /// branch of an `or`. `None`: the filter must be evaluated on every admin. The caller still applies
    /// [`ParsedFilter::matches`] to what the lookups return.
    pub fn lookups(&self) -> Option<Vec<Lookup>> {
        lookups(&self.root)
    }
}

/// One indexed lookup a filter reduces to (see [`ParsedFilter::lookups`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `id eq "…"`.
    Id(String),
    /// `userName eq "…"` (compared case-insensitively).
    UserName(String),
    /// `externalId eq "…"` (case-exact).
    ExternalId(String),
}

fn lookups(n: &Node) -> Option<Vec<Lookup>> {
    match n {
        Node::Compare {
            attr,
            sub: None,
            op: CompareOp::Equal,
            value: Value::Str(v),
        } => match attr.as_str() {
            "id" => Some(vec![Lookup::Id(v.clone())]),
            "username" => Some(vec![Lookup::UserName(v.clone())]),
            "externalid" => Some(vec![Lookup::ExternalId(v.clone())]),
            _ => None,
        },
        // Every match passes each branch: any branch's lookups cover them.
        Node::And(v) => v.iter().find_map(lookups),
        // Every match passes some branch: all branches need lookups.
        Node::Or(v) => {
            let mut out = Vec::new();
            for n in v {
                out.extend(lookups(n)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn path_parts(p: &AttrPath) -> (String, Option<String>) {
    (
        p.attr_name().to_string().to_ascii_lowercase(),
        p.sub_attr().as_ref().map(|s| s.to_string().to_ascii_lowercase()),
    )
}

fn value(v: &CompValue<'_>) -> Value {
    match v {
        CompValue::False => Value::Bool(false),
        CompValue::True => Value::Bool(true),
        CompValue::Null => Value::Null,
        CompValue::Number(n) => Value::Number(n.to_string()),
        CompValue::String(s) => Value::Str(s.to_string()),
    }
}

fn attr_exp(a: &AttrExpData<'_>) -> Node {
    match a {
        AttrExpData::Present(p) => {
            let (attr, sub) = path_parts(p);
            Node::Present { attr, sub }
        }
        AttrExpData::Compare(p, op, v) => {
            let (attr, sub) = path_parts(p);
            Node::Compare {
                attr,
                sub,
                op: *op,
                value: value(v),
            }
        }
    }
}

/// Converts the crate's tree, regrouping each right-nested chain of `and`/`or` by RFC precedence.
fn convert(f: &Filter<'_>) -> Node {
    match f {
        Filter::LogExp(d) => convert_chain(&d.left, d.log_exp_operator.clone(), &d.right),
        other => convert_single(other),
    }
}

/// `left op right`, where `right` may continue the chain (the parser nests it to the right; a
/// parenthesised group is a `Sub` and so ends the chain).
fn convert_chain(left: &Filter<'_>, op: LogExpOperator, right: &Filter<'_>) -> Node {
    let mut items = vec![convert_single(left)];
    let mut ops = vec![op];
    let mut cur = right;
    while let Filter::LogExp(d) = cur {
        items.push(convert_single(&d.left));
        ops.push(d.log_exp_operator.clone());
        cur = &d.right;
    }
    items.push(convert_single(cur));
    group(items, ops)
}

fn convert_single(f: &Filter<'_>) -> Node {
    match f {
        Filter::AttrExp(a) => attr_exp(a),
        Filter::LogExp(d) => convert_chain(&d.left, d.log_exp_operator.clone(), &d.right),
        Filter::ValuePath(v) => {
            let (attr, _) = path_parts(v.attr_path());
            Node::ValuePath {
                attr,
                inner: Box::new(convert_val(v.val_filter())),
            }
        }
        Filter::Sub(not, inner) => {
            let node = convert(inner);
            if *not {
                Node::Not(Box::new(node))
            } else {
                node
            }
        }
    }
}

fn convert_val(f: &ValFilter<'_>) -> Node {
    match f {
        ValFilter::AttrExp(a) => attr_exp(a),
        ValFilter::LogExp(d) => convert_chain(&d.left, d.log_exp_operator.clone(), &d.right),
        ValFilter::SubFilter(not, inner) => {
            let node = convert_val(inner);
            if *not {
                Node::Not(Box::new(node))
            } else {
                node
            }
        }
    }
}

/// `x1 op1 x2 op2 x3 …` as an `or` of `and` groups.
fn group(items: Vec<Node>, ops: Vec<LogExpOperator>) -> Node {
    let mut ors: Vec<Node> = Vec::new();
    let mut ands: Vec<Node> = Vec::new();
    let mut items = items.into_iter();
    if let Some(first) = items.next() {
        ands.push(first);
    }
    for (op, item) in ops.into_iter().zip(items) {
        if op.is_or() {
            ors.push(collapse(std::mem::take(&mut ands), Node::And));
        }
        ands.push(item);
    }
    ors.push(collapse(ands, Node::And));
    collapse(ors, Node::Or)
}

fn collapse(mut nodes: Vec<Node>, wrap: fn(Vec<Node>) -> Node) -> Node {
    if nodes.len() == 1 {
        nodes.pop().expect("one node")
    } else {
        wrap(nodes)
    }
}

/// The values of attribute `attr.sub` of `s`, with whether they compare case-exactly. `element` is the
/// e-mail being looked at inside `emails[…]`.
fn values(s: &Subject<'_>, attr: &str, sub: Option<&str>, element: Option<&EmailRef<'_>>) -> (Vec<Value>, bool) {
    let one = |e: &EmailRef<'_>, sub: Option<&str>| -> Option<Value> {
        match sub {
            None | Some("value") => Some(Value::Str(e.value.to_string())),
            Some("type") => e.kind.map(|k| Value::Str(k.to_string())),
            Some("primary") => Some(Value::Bool(e.primary)),
            _ => None,
        }
    };
    let email = |sub: Option<&str>| -> Vec<Value> { s.emails.iter().filter_map(|e| one(e, sub)).collect() };
    if let Some(e) = element {
        // Inside `emails[…]` the names are the element's sub-attributes.
        return (one(e, Some(attr)).into_iter().collect(), false);
    }
    match (attr, sub) {
        ("id", None) => (vec![Value::Str(s.id.to_string())], true),
        ("externalid", None) => (
            s.external_id.map(|e| Value::Str(e.to_string())).into_iter().collect(),
            true,
        ),
        ("username", None) => (vec![Value::Str(s.user_name.to_string())], false),
        ("active", None) => (vec![Value::Bool(s.active)], true),
        ("emails", sub) => (email(sub), false),
        ("meta", Some("created")) => (vec![Value::Str(s.created.to_string())], true),
        ("meta", Some("lastmodified")) => (vec![Value::Str(s.last_modified.to_string())], true),
        _ => (vec![], true),
    }
}

fn eval(n: &Node, s: &Subject<'_>, element: Option<&EmailRef<'_>>) -> bool {
    match n {
        Node::And(v) => v.iter().all(|n| eval(n, s, element)),
        Node::Or(v) => v.iter().any(|n| eval(n, s, element)),
        Node::Not(n) => !eval(n, s, element),
        Node::Present { attr, sub } => !values(s, attr, sub.as_deref(), element).0.is_empty(),
        Node::ValuePath { attr, inner } => attr == "emails" && s.emails.iter().any(|e| eval(inner, s, Some(e))),
        Node::Compare { attr, sub, op, value } => {
            let (have, exact) = values(s, attr, sub.as_deref(), element);
            if *op == CompareOp::NotEqual {
                return !have.iter().any(|h| compare(h, CompareOp::Equal, value, exact));
            }
            have.iter().any(|h| compare(h, *op, value, exact))
        }
    }
}

fn compare(have: &Value, op: CompareOp, want: &Value, exact: bool) -> bool {
    match (have, want) {
        (Value::Str(h), Value::Str(w)) => {
            let (h, w) = if exact {
                (h.clone(), w.clone())
            } else {
                (h.to_lowercase(), w.to_lowercase())
            };
            match op {
                CompareOp::Equal => h == w,
                CompareOp::NotEqual => h != w,
                CompareOp::Contains => h.contains(&w),
                CompareOp::StartsWith => h.starts_with(&w),
                CompareOp::EndsWith => h.ends_with(&w),
                CompareOp::GreaterThan => h > w,
                CompareOp::GreaterThanOrEqual => h >= w,
                CompareOp::LessThan => h < w,
                CompareOp::LessThanOrEqual => h <= w,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Equal => h == w,
            CompareOp::NotEqual => h != w,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAILS: [EmailRef<'static>; 1] = [EmailRef {
        value: "Ann@Example.com",
        kind: Some("work"),
        primary: true,
    }];

    fn ann() -> Subject<'static> {
        Subject {
            id: "2819c223-7f76-453a-919d-413861904646",
            external_id: Some("00u1abcdEFG"),
            user_name: "Ann@Example.com",
            emails: &EMAILS,
            active: true,
            created: "2026-12-01T10:00:00Z",
            last_modified: "2026-12-01T11:00:00Z",
        }
    }

    #[test]
    fn equality_filters_reduce_to_indexed_lookups() {
        let l = |f: &str| ParsedFilter::parse(f).unwrap().lookups();
        assert_eq!(
            l(r#"userName eq "Ann@Example.com""#),
            Some(vec![Lookup::UserName("Ann@Example.com".into())])
        );
        assert_eq!(
            l(r#"externalId eq "00u1""#),
            Some(vec![Lookup::ExternalId("00u1".into())])
        );
        assert_eq!(
            l(r#"active eq true and id eq "x""#),
            Some(vec![Lookup::Id("x".into())]),
            "an and is covered by any branch"
        );
        assert_eq!(
            l(r#"userName eq "a" or externalId eq "b""#),
            Some(vec![Lookup::UserName("a".into()), Lookup::ExternalId("b".into())])
        );
        assert_eq!(
            l(r#"userName eq "a" or active eq true"#),
            None,
            "an or needs every branch"
        );
        assert_eq!(l(r#"userName sw "a""#), None);
        assert_eq!(l(r#"not (userName eq "a")"#), None);
        assert_eq!(l(r#"emails.value eq "a""#), None);
    }

    fn m(filter: &str) -> bool {
        ParsedFilter::parse(filter).unwrap().matches(&ann())
    }

    #[test]
    fn user_name_and_emails_compare_case_insensitively_ids_exactly() {
        assert!(m(r#"userName eq "ann@example.com""#));
        assert!(m(r#"emails.value eq "ANN@example.com""#));
        assert!(m(r#"emails[value eq "ann@example.com"]"#));
        assert!(m(r#"emails[type eq "work" and value co "ann"]"#));
        assert!(!m(r#"emails[type eq "home"]"#));
        assert!(m(r#"externalId eq "00u1abcdEFG""#));
        assert!(!m(r#"externalId eq "00u1abcdefg""#));
        assert!(m(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(!m(r#"userName eq "bob@example.com""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ann@example.com""#
        ));
        assert!(m("USERNAME EQ \"ann@example.com\""));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // (false and false) or true = true; the crate alone would read false and (false or true) = false.
        assert!(m(
            r#"userName eq "x@y.z" and active eq true or externalId eq "00u1abcdEFG""#
        ));
        // true or (false and false) = true
        assert!(m(
            r#"externalId eq "00u1abcdEFG" or userName eq "x@y.z" and active eq false"#
        ));
        // (true and false) or false = false
        assert!(!m(r#"active eq true and userName eq "x@y.z" or id eq "nope""#));
        assert!(m(r#"(userName eq "x@y.z" or active eq true) and externalId pr"#));
        assert!(!m(r#"not (userName eq "ann@example.com")"#));
    }

    #[test]
    fn operators_and_unknown_attributes() {
        assert!(m(r#"userName sw "ANN""#));
        assert!(m(r#"userName co "example""#));
        assert!(m(r#"userName ew ".com""#));
        assert!(m(r#"userName ne "bob@example.com""#));
        assert!(m("active eq true"));
        assert!(!m(r#"title eq "boss""#));
        assert!(m(r#"meta.lastModified gt "2026-12-01T10:30:00Z""#));
    }

    #[test]
    fn garbage_is_an_invalid_filter() {
        for bad in [
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "a" and"#,
            "(((",
        ] {
            assert!(ParsedFilter::parse(bad).is_err(), "{bad:?}");
        }
    }
}
