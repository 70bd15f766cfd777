//! SCIM filters (RFC 7644 §3.4.2.2) over admins: parsed and evaluated here, with bounded work.
//!
//! **Bounds.** A filter comes from whoever holds a SCIM token, so the work it causes is bounded before
//! anything else is done with it. Over a bound, the request is answered `400` with `scimType`
//! `invalidFilter` and a sentence naming the bound:
//! * at most [`MAX_FILTER_CHARS`] (1,024) characters;
//! * at most [`MAX_FILTER_DEPTH`] (10) levels of nesting, counting each `(`, `not (` and `attr[`;
//! * at most [`MAX_FILTER_TERMS`] (50) attribute expressions (comparisons and `pr`).
//!
//! Okta and Entra ID send one or two comparisons without nesting (`userName eq "…"`,
//! `externalId eq "…"`), so none of them comes near a bound.
//!
//! **Linear parsing, no recursion.** The parser is a single left-to-right pass over the input with an
//! explicit stack of open groups (one frame per `(`, `not (` or `attr[`; never deeper than
//! [`MAX_FILTER_DEPTH`], checked by a linear pre-scan before parsing starts). Each byte is looked at a
//! bounded number of times and each expression is moved once into its parent, so the work is linear in
//! the input (the unit tests assert it on a step counter). Precedence follows RFC 7644: `and` binds
//! tighter than `or`, so each group is built as an `or` of `and`s. Evaluation and the index lookups walk
//! the parsed tree recursively, which is safe because the tree is at most a few levels per nesting level
//! deep, so at most about 3 × [`MAX_FILTER_DEPTH`] levels.
//!
//! (The `scim-filter` crate this module used before nested every logical expression to the right through
//! recursive backtracking parsers: its time doubled with each level of parentheses, and 1,000 of them or a
//! chain of 1,500 `or`s overflowed the stack and aborted the process.)
//!
//! **Attribute semantics.** `userName` and `emails.value` are case-insensitive (`caseExact: false`);
//! `id`, `externalId` and `meta.*` are case-exact.
//!
//! Supported attributes: `id`, `externalId`, `userName`, `active`, `emails` / `emails.value` (also
//! `emails[value eq "…"]`, `emails[type eq "work"].value eq "…"`, `emails.type`, `emails.primary`),
//! `meta.created`, `meta.lastModified`, with or without the User schema URN prefix; operators
//! `eq ne co sw ew gt ge lt le pr`, `and`, `or`, `not ( … )`, parentheses. Keywords and attribute names
//! are case-insensitive. An attribute the User schema does not have matches nothing.

use super::USER_SCHEMA;
use admin_provisioner_core::domain::scim_user_name_key;

/// Longest filter accepted, in characters.
pub const MAX_FILTER_CHARS: usize = 1024;
/// Deepest nesting accepted: each `(`, `not (` and `attr[` opens one level.
pub const MAX_FILTER_DEPTH: usize = 10;
/// Most attribute expressions (comparisons and `pr`) accepted in one filter.
pub const MAX_FILTER_TERMS: usize = 50;

/// A filter that is over a bound or does not parse (answered `400`, `scimType: invalidFilter`); the
/// message is meant for the person configuring the identity provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFilter {
    /// Longer than [`MAX_FILTER_CHARS`].
    #[error("the filter is {chars} characters long; at most {MAX_FILTER_CHARS} are allowed")]
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// Nested deeper than [`MAX_FILTER_DEPTH`].
    #[error("the filter nests parentheses and brackets {depth} deep; at most {MAX_FILTER_DEPTH} are allowed")]
    TooDeep {
        /// Its deepest nesting.
        depth: usize,
    },
    /// More attribute expressions than [`MAX_FILTER_TERMS`].
    #[error("the filter has {terms} comparisons; at most {MAX_FILTER_TERMS} are allowed")]
    TooManyTerms {
        /// How many it has.
        terms: usize,
    },
    /// Not SCIM filter syntax.
    #[error("the filter is not valid SCIM filter syntax: {0}")]
    Syntax(String),
}

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

/// A parsed filter (within the bounds of the module docs).
#[derive(Debug)]
pub struct ParsedFilter {
    root: Node,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn from_keyword(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Node {
    Compare {
        attr: String,
        sub: Option<String>,
        op: Op,
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
    /// Parses `input` (surrounding whitespace ignored), refusing it when it is over a bound.
    pub fn parse(input: &str) -> Result<Self, InvalidFilter> {
        parse_counted(input).0
    }

    /// True when `subject` passes the filter.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        eval(&self.root, subject, None)
    }

    /// Indexed lookups whose results hold every subject the filter can match, when the filter pins one
    /// down: `id`, `userName` or `externalId` `eq` a string, alone, in any branch of an `and`, or in every
    /// branch of an `or`. `None`: the filter must be evaluated on every admin. The caller still applies
    /// [`ParsedFilter::matches`] to what the lookups return. At most [`MAX_FILTER_TERMS`] lookups.
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
            op: Op::Eq,
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

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

/// Parses `input` and counts the parser's elementary steps (bytes looked at, loop turns, expressions
/// moved): the unit tests assert that the count is linear in the input.
fn parse_counted(input: &str) -> (Result<ParsedFilter, InvalidFilter>, usize) {
    let input = input.trim();
    let mut steps = 0;
    // Length first: nothing longer is looked at further (a byte length within the bound is a character
    // length within it too).
    if input.len() > MAX_FILTER_CHARS {
        let chars = input.chars().count();
        steps += input.len();
        if chars > MAX_FILTER_CHARS {
            return (Err(InvalidFilter::TooLong { chars }), steps);
        }
    }
    let depth = nesting_depth(input, &mut steps);
    if depth > MAX_FILTER_DEPTH {
        return (Err(InvalidFilter::TooDeep { depth }), steps);
    }
    let mut p = Parser {
        src: input,
        s: input.as_bytes(),
        pos: 0,
        steps,
        terms: 0,
    };
    let result = p.filter();
    let result = match result {
        Ok(_) if p.terms > MAX_FILTER_TERMS => Err(InvalidFilter::TooManyTerms { terms: p.terms }),
        Ok(root) => Ok(ParsedFilter { root }),
        Err(e) => Err(e),
    };
    (result, p.steps)
}

/// The deepest nesting of `(` and `[` outside string literals, in one pass.
fn nesting_depth(input: &str, steps: &mut usize) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in input.bytes() {
        *steps += 1;
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// What an open group is.
enum FrameKind {
    /// The whole filter.
    Root,
    /// `( … )`.
    Group,
    /// `not ( … )`.
    Not,
    /// `attr[ … ]`, with the attribute's (lower-case) name.
    ValuePath(String),
}

/// An open group: the `and`s of its current `or` branch, and its finished `or` branches.
struct Frame {
    kind: FrameKind,
    ors: Vec<Node>,
    ands: Vec<Node>,
}

impl Frame {
    fn new(kind: FrameKind) -> Self {
        Self {
            kind,
            ors: Vec::new(),
            ands: Vec::new(),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    pos: usize,
    steps: usize,
    terms: usize,
}

/// Characters of an attribute path: `[URI ":"] ATTRNAME ["." subAttr]` (RFC 7644 §3.4.2.2; the URN
/// holds `:` and `.`, `$ref` a `$`).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'$')
}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl<'a> Parser<'a> {
    fn error<T>(&self, what: &str) -> Result<T, InvalidFilter> {
        self.error_at(self.pos, what)
    }

    /// A syntax error at byte `pos` (a character boundary), quoting a little of what follows.
    fn error_at<T>(&self, pos: usize, what: &str) -> Result<T, InvalidFilter> {
        let at: String = self.src[pos..].chars().take(20).collect();
        Err(InvalidFilter::Syntax(if at.is_empty() {
            format!("{what} at the end")
        } else {
            format!("{what} at character {} ({at:?})", self.src[..pos].chars().count() + 1)
        }))
    }

    fn peek(&mut self) -> Option<u8> {
        self.steps += 1;
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// A run of `ok` bytes (possibly empty).
    fn run(&mut self, ok: fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(ok) {
            self.pos += 1;
        }
        let src = self.src;
        &src[start..self.pos]
    }

    /// The whole filter: one pass, an explicit stack of open groups.
    fn filter(&mut self) -> Result<Node, InvalidFilter> {
        let mut stack = vec![Frame::new(FrameKind::Root)];
        // Whether an operand (an expression or a group) is expected, rather than `and`, `or` or a close.
        let mut want_operand = true;
        loop {
            self.steps += 1;
            self.skip_ws();
            let Some(b) = self.peek() else { break };
            if want_operand {
                if b == b'(' {
                    self.pos += 1;
                    self.open(&mut stack, FrameKind::Group)?;
                    continue;
                }
                if !(b.is_ascii_alphabetic() || b == b'$') {
                    return self.error("expected an attribute, `(` or `not (`");
                }
                let word_start = self.pos;
                let word = self.run(is_path_char);
                if word.eq_ignore_ascii_case("not") {
                    self.skip_ws();
                    if self.peek() != Some(b'(') {
                        return self.error("`not` is followed by a parenthesised filter");
                    }
                    self.pos += 1;
                    self.open(&mut stack, FrameKind::Not)?;
                    continue;
                }
                let (attr, sub) = self.attr_path(word, word_start)?;
                if self.peek() == Some(b'[') {
                    if sub.is_some() {
                        return self.error("a value filter follows an attribute without a sub-attribute");
                    }
                    self.steps += stack.len();
                    if stack.iter().any(|f| matches!(f.kind, FrameKind::ValuePath(_))) {
                        return self.error("a value filter cannot hold another value filter");
                    }
                    self.pos += 1;
                    self.open(&mut stack, FrameKind::ValuePath(attr))?;
                    continue;
                }
                let term = self.attr_exp(attr, sub)?;
                top(&mut stack).ands.push(term);
                want_operand = false;
                continue;
            }
            match b {
                b')' | b']' => {
                    self.pos += 1;
                    if stack.len() == 1 {
                        return self.error("a close without an open");
                    }
                    let frame = stack.pop().expect("an open group");
                    let node = match (frame.kind, b) {
                        (FrameKind::Group, b')') => collapse_frame(frame.ors, frame.ands, &mut self.steps),
                        (FrameKind::Not, b')') => {
                            Node::Not(Box::new(collapse_frame(frame.ors, frame.ands, &mut self.steps)))
                        }
                        (FrameKind::ValuePath(attr), b']') => {
                            let inner = collapse_frame(frame.ors, frame.ands, &mut self.steps);
                            self.after_value_path(attr, inner)?
                        }
                        _ => return self.error("a `(` is closed by `]` or a `[` by `)`"),
                    };
                    top(&mut stack).ands.push(node);
                }
                _ if b.is_ascii_alphabetic() => {
                    let word = self.run(|b| b.is_ascii_alphabetic());
                    if word.eq_ignore_ascii_case("and") {
                        // The `and` chain continues in `ands`.
                    } else if word.eq_ignore_ascii_case("or") {
                        let frame = top(&mut stack);
                        let ands = std::mem::take(&mut frame.ands);
                        self.steps += ands.len();
                        frame.ors.push(collapse(ands, Node::And));
                    } else {
                        self.pos -= word.len();
                        return self.error("expected `and`, `or` or a closing bracket");
                    }
                    if !self.skip_ws() && self.peek() != Some(b'(') {
                        return self.error("expected a space after `and` / `or`");
                    }
                    want_operand = true;
                }
                _ => return self.error("expected `and`, `or` or a closing bracket"),
            }
        }
        if want_operand {
            return self.error("expected an expression");
        }
        if stack.len() > 1 {
            return self.error("a `(` or `[` is not closed");
        }
        let root = stack.pop().expect("the root frame");
        Ok(collapse_frame(root.ors, root.ands, &mut self.steps))
    }

    fn open(&mut self, stack: &mut Vec<Frame>, kind: FrameKind) -> Result<(), InvalidFilter> {
        // The pre-scan already refused deeper input; this keeps the stack bounded on its own as well.
        if stack.len() > MAX_FILTER_DEPTH {
            return Err(InvalidFilter::TooDeep { depth: stack.len() });
        }
        stack.push(Frame::new(kind));
        Ok(())
    }

    /// `[URN:]name[.sub]` as lower-case (name, sub). A URN other than the User schema's names an
    /// attribute this server does not have (it matches nothing).
    fn attr_path(&self, word: &str, start: usize) -> Result<(String, Option<String>), InvalidFilter> {
        let (urn, path) = match word.rfind(':') {
            Some(i) => (Some(&word[..i]), &word[i + 1..]),
            None => (None, word),
        };
        let (name, sub) = match path.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (path, None),
        };
        if !is_name(name) || sub.is_some_and(|s| !is_name(s)) {
            return self.error_at(start, "expected an attribute name");
        }
        let name = match urn {
            Some(u) if !u.eq_ignore_ascii_case(USER_SCHEMA) => format!("{u}:{name}").to_ascii_lowercase(),
            _ => name.to_ascii_lowercase(),
        };
        Ok((name, sub.map(str::to_ascii_lowercase)))
    }

    /// After an attribute path: ` pr` or ` op value`.
    fn attr_exp(&mut self, attr: String, sub: Option<String>) -> Result<Node, InvalidFilter> {
        if !self.skip_ws() {
            return self.error("expected a space and an operator after the attribute");
        }
        let op_start = self.pos;
        let word = self.run(|b| b.is_ascii_alphabetic());
        self.terms += 1;
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Node::Present { attr, sub });
        }
        let Some(op) = Op::from_keyword(word) else {
            self.pos = op_start;
            return self.error("expected an operator (eq ne co sw ew gt ge lt le pr)");
        };
        if !self.skip_ws() {
            return self.error("expected a space and a value after the operator");
        }
        let value = self.value()?;
        Ok(Node::Compare { attr, sub, op, value })
    }

    /// A comparison value: a JSON string, `true`, `false`, `null` or a number.
    fn value(&mut self) -> Result<Value, InvalidFilter> {
        let start = self.pos;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            let mut escaped = false;
            loop {
                let Some(b) = self.peek() else {
                    self.pos = start;
                    return self.error("a string is not closed");
                };
                self.pos += 1;
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => break,
                    _ => {}
                }
            }
            self.steps += self.pos - start;
            return match serde_json::from_str::<String>(&self.src[start..self.pos]) {
                Ok(s) => Ok(Value::Str(s)),
                Err(_) => {
                    self.pos = start;
                    self.error("a string is not a valid JSON string")
                }
            };
        }
        let word = self.run(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
        match word.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            w if !w.is_empty() && serde_json::from_str::<serde_json::Number>(w).is_ok() => {
                Ok(Value::Number(word.to_string()))
            }
            _ => {
                self.pos = start;
                self.error("expected a value (a \"string\", true, false, null or a number)")
            }
        }
    }

    /// After `attr[ … ]`: nothing, or `.sub pr` / `.sub op value` (`emails[type eq "work"].value eq "…"`:
    /// some element passes the value filter and has that sub-attribute).
    fn after_value_path(&mut self, attr: String, inner: Node) -> Result<Node, InvalidFilter> {
        if self.peek() != Some(b'.') {
            return Ok(Node::ValuePath {
                attr,
                inner: Box::new(inner),
            });
        }
        self.pos += 1;
        let start = self.pos;
        let sub = self.run(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
        if !is_name(sub) {
            self.pos = start;
            return self.error("expected a sub-attribute name after `].`");
        }
        let sub = sub.to_ascii_lowercase();
        let term = self.attr_exp(sub, None)?;
        Ok(Node::ValuePath {
            attr,
            inner: Box::new(Node::And(vec![inner, term])),
        })
    }
}

fn top(stack: &mut [Frame]) -> &mut Frame {
    stack.last_mut().expect("the root frame is never popped while parsing")
}

/// A group's `or` of `and`s; a single expression stays itself.
fn collapse_frame(mut ors: Vec<Node>, ands: Vec<Node>, steps: &mut usize) -> Node {
    *steps += ands.len() + ors.len() + 1;
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

// ---------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------

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

/// Recursive over the tree, whose depth the parser bounds (module docs).
fn eval(n: &Node, s: &Subject<'_>, element: Option<&EmailRef<'_>>) -> bool {
    match n {
        Node::And(v) => v.iter().all(|n| eval(n, s, element)),
        Node::Or(v) => v.iter().any(|n| eval(n, s, element)),
        Node::Not(n) => !eval(n, s, element),
        Node::Present { attr, sub } => !values(s, attr, sub.as_deref(), element).0.is_empty(),
        Node::ValuePath { attr, inner } => attr == "emails" && s.emails.iter().any(|e| eval(inner, s, Some(e))),
        // `userName eq`/`ne` compare the names' keys, normalised as the core makes them unique (IDN, case,
        // NFKC look-alikes): the filter finds the User whichever spelling the client sends.
        Node::Compare {
            attr,
            sub: None,
            op: op @ (Op::Eq | Op::Ne),
            value: Value::Str(want),
        } if attr == "username" && element.is_none() => {
            let same = scim_user_name_key(s.user_name) == scim_user_name_key(want);
            same == (*op == Op::Eq)
        }
        Node::Compare { attr, sub, op, value } => {
            let (have, exact) = values(s, attr, sub.as_deref(), element);
            if *op == Op::Ne {
                return !have.iter().any(|h| compare(h, Op::Eq, value, exact));
            }
            have.iter().any(|h| compare(h, *op, value, exact))
        }
    }
}

fn compare(have: &Value, op: Op, want: &Value, exact: bool) -> bool {
    match (have, want) {
        (Value::Str(h), Value::Str(w)) => {
            let (h, w) = if exact {
                (h.clone(), w.clone())
            } else {
                (h.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => h == w,
                Op::Ne => h != w,
                Op::Co => h.contains(&w),
                Op::Sw => h.starts_with(&w),
                Op::Ew => h.ends_with(&w),
                Op::Gt => h > w,
                Op::Ge => h >= w,
                Op::Lt => h < w,
                Op::Le => h <= w,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            Op::Eq => h == w,
            Op::Ne => h != w,
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

    #[test]
    fn the_filters_okta_and_entra_id_send_parse_and_match() {
        assert!(m(r#"userName eq "Ann@example.com""#));
        assert!(m(r#"externalId eq "00u1abcdEFG""#));
        assert!(m(r#"emails[type eq "work"].value eq "ann@example.com""#));
        assert!(!m(r#"emails[type eq "home"].value eq "ann@example.com""#));
        assert!(!m(r#"emails[type eq "work"].value eq "bob@example.com""#));
        assert!(m(r#"meta.lastModified gt "2026-12-01T10:30:00Z""#));
        assert!(!m(r#"meta.lastModified gt "2027-01-01T00:00:00Z""#));
        assert!(m(r#"emails[type eq "work"].value pr"#));
        assert!(m(r#"not(userName eq "bob@example.com")"#), "`not(` without a space");
    }

    /// `n` nested groups around one true comparison, alternating `(` and `not (` (so `n / 2` negations).
    fn nested(n: usize) -> String {
        let open: String = (0..n).map(|i| if i % 2 == 0 { "(" } else { "not (" }).collect();
        format!("{open}userName eq \"ann@example.com\"{}", ")".repeat(n))
    }

    #[test]
    fn nesting_is_accepted_up_to_the_bound_and_refused_past_it() {
        let at = ParsedFilter::parse(&nested(MAX_FILTER_DEPTH)).expect("at the bound");
        assert_eq!(at.matches(&ann()), (MAX_FILTER_DEPTH / 2).is_multiple_of(2));
        assert_eq!(
            ParsedFilter::parse(&nested(MAX_FILTER_DEPTH + 1)).unwrap_err(),
            InvalidFilter::TooDeep {
                depth: MAX_FILTER_DEPTH + 1
            }
        );
        // A value path counts as one level.
        let with_value_path = format!(
            "{}emails[type eq \"work\"]{}",
            "(".repeat(MAX_FILTER_DEPTH - 1),
            ")".repeat(MAX_FILTER_DEPTH - 1)
        );
        assert!(ParsedFilter::parse(&with_value_path).unwrap().matches(&ann()));
        let over = format!("({with_value_path})");
        assert_eq!(
            ParsedFilter::parse(&over).unwrap_err(),
            InvalidFilter::TooDeep {
                depth: MAX_FILTER_DEPTH + 1
            }
        );
        // Brackets inside a string are not nesting.
        assert!(ParsedFilter::parse(&format!("userName eq \"{}\"", "(".repeat(40))).is_ok());
    }

    #[test]
    fn comparisons_are_accepted_up_to_the_bound_and_refused_past_it() {
        let chain = |n: usize| vec!["id pr"; n].join(" or ");
        assert!(ParsedFilter::parse(&chain(MAX_FILTER_TERMS)).unwrap().matches(&ann()));
        assert_eq!(
            ParsedFilter::parse(&chain(MAX_FILTER_TERMS + 1)).unwrap_err(),
            InvalidFilter::TooManyTerms {
                terms: MAX_FILTER_TERMS + 1
            }
        );
    }

    #[test]
    fn length_is_accepted_up_to_the_bound_and_refused_past_it() {
        let with_value = |len: usize| {
            let frame = r#"userName eq """#.len();
            format!("userName eq \"{}\"", "é".repeat(len - frame))
        };
        // Characters, not bytes: `é` is two bytes.
        let at = with_value(MAX_FILTER_CHARS);
        assert_eq!(at.chars().count(), MAX_FILTER_CHARS);
        assert!(ParsedFilter::parse(&at).is_ok());
        assert_eq!(
            ParsedFilter::parse(&with_value(MAX_FILTER_CHARS + 1)).unwrap_err(),
            InvalidFilter::TooLong {
                chars: MAX_FILTER_CHARS + 1
            }
        );
    }

    #[test]
    fn the_inputs_that_aborted_the_process_are_refused_with_a_sentence_naming_the_bound() {
        // Issue 18: 1,000 nested parentheses and a chain of 1,500 `or`s overflowed the stack.
        let parens = format!("{}userName eq \"a\"{}", "(".repeat(1000), ")".repeat(1000));
        let err = ParsedFilter::parse(&parens).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the filter is 2015 characters long; at most 1024 are allowed"
        );
        let chain = vec![r#"userName eq "a""#; 1500].join(" or ");
        assert!(matches!(
            ParsedFilter::parse(&chain).unwrap_err(),
            InvalidFilter::TooLong { .. }
        ));
        // Within the length bound, still far too deep: refused by the pre-scan.
        let deep = format!("{}id pr{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(
            ParsedFilter::parse(&deep).unwrap_err().to_string(),
            "the filter nests parentheses and brackets 40 deep; at most 10 are allowed"
        );
        let unbalanced = "(".repeat(MAX_FILTER_CHARS);
        assert_eq!(
            ParsedFilter::parse(&unbalanced).unwrap_err(),
            InvalidFilter::TooDeep {
                depth: MAX_FILTER_CHARS
            }
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = |f: &str| ParsedFilter::parse(f).unwrap_err().to_string();
        assert_eq!(
            err(r#"userName xx "a""#),
            r#"the filter is not valid SCIM filter syntax: expected an operator (eq ne co sw ew gt ge lt le pr) at character 10 ("xx \"a\"")"#
        );
        assert!(
            err(r#"(userName eq "a""#).contains("is not closed"),
            "{}",
            err(r#"(userName eq "a""#)
        );
        assert!(err(r#"userName eq "a")"#).contains("close without an open"));
        assert!(err(r#"emails[type eq "a")"#).contains("closed by"));
        assert!(err(r#"emails[type eq "a"] or emails[value pr and x[y pr]]"#).contains("cannot hold"));
        assert!(err(r#"not userName eq "a""#).contains("`not` is followed"));
        assert!(err(r#"userName eq "a" xor id pr"#).contains("expected `and`, `or`"));
        assert!(err(r#"userName eq "a"#).contains("string is not closed"));
        assert!(err("userName eq bob").contains("expected a value"));
    }

    // -----------------------------------------------------------------------------------------------
    // Properties over nesting, length and operators.
    //
    // Budget: 384 generated filters per property (fixed, `PROPTEST_CASES` is not read), each parsed in
    // microseconds: well under a second together in a debug build.
    // -----------------------------------------------------------------------------------------------

    use proptest::prelude::*;

    /// Work allowed per input byte, and a constant: the parser's step count stays under this line for
    /// every input, so parsing is linear (the previous parser doubled its work per nesting level).
    const STEPS_PER_BYTE: usize = 4;
    const STEPS_CONSTANT: usize = 64;

    /// Attribute expressions with their truth on [`ann`], their number of comparisons and their nesting.
    const TERMS: &[(&str, bool, usize, usize)] = &[
        (r#"userName eq "ann@example.com""#, true, 1, 0),
        (r#"userName eq "bob@example.com""#, false, 1, 0),
        (r#"userName co "EXAMPLE""#, true, 1, 0),
        (r#"userName sw "bob""#, false, 1, 0),
        (r#"userName ew ".com""#, true, 1, 0),
        (r#"userName ne "ann@example.com""#, false, 1, 0),
        ("externalId pr", true, 1, 0),
        ("title pr", false, 1, 0),
        (r#"externalId eq "00u1ABCDefg""#, false, 1, 0),
        (r#"meta.lastModified gt "2026-01-01T00:00:00Z""#, true, 1, 0),
        (r#"meta.created lt "2020-01-01T00:00:00Z""#, false, 1, 0),
        (r#"meta.created ge "2026-12-01T10:00:00Z""#, true, 1, 0),
        (r#"meta.created le "2026-11-30T00:00:00Z""#, false, 1, 0),
        ("active eq true", true, 1, 0),
        ("active ne true", false, 1, 0),
        (r#"id ew "4646""#, true, 1, 0),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName GE "a""#,
            true,
            1,
            0,
        ),
        (r#"emails.type eq "work""#, true, 1, 0),
        (r#"emails[type eq "work" and value co "ann"]"#, true, 2, 1),
        (r#"emails[type eq "home" or primary eq false]"#, false, 2, 1),
        (r#"emails[not (type eq "home")].value ew "example.com""#, true, 2, 2),
    ];

    /// A filter built with its expected truth, comparisons and nesting.
    #[derive(Clone, Debug)]
    struct Built {
        text: String,
        truth: bool,
        terms: usize,
        depth: usize,
    }

    /// `items` joined by `and` / `or` (`ors[i]` between `i` and `i + 1`), with RFC precedence for the
    /// expected truth (`and` before `or`), computed independently of the parser.
    fn chain(items: Vec<Built>, ors: &[bool]) -> Built {
        let mut text = String::new();
        let (mut any_or, mut all_and) = (false, true);
        let (mut terms, mut depth) = (0, 0);
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                let or = ors[(i - 1) % ors.len()];
                text.push_str(if or { " or " } else { " and " });
                if or {
                    any_or |= all_and;
                    all_and = true;
                }
            }
            text.push_str(&item.text);
            all_and &= item.truth;
            terms += item.terms;
            depth = depth.max(item.depth);
        }
        Built {
            text,
            truth: any_or || all_and,
            terms,
            depth,
        }
    }

    /// Short expressions, so that chains of more than [`MAX_FILTER_TERMS`] fit in the length bound.
    const SHORT_TERMS: &[(&str, bool, usize, usize)] = &[
        ("id pr", true, 1, 0),
        ("x pr", false, 1, 0),
        ("active eq true", true, 1, 0),
        (r#"id eq "a""#, false, 1, 0),
    ];

    fn short_term(i: usize) -> Built {
        let (text, truth, terms, depth) = SHORT_TERMS[i % SHORT_TERMS.len()];
        Built {
            text: text.to_string(),
            truth,
            terms,
            depth,
        }
    }

    fn term(i: usize) -> Built {
        let (text, truth, terms, depth) = TERMS[i % TERMS.len()];
        Built {
            text: text.to_string(),
            truth,
            terms,
            depth,
        }
    }

    /// One nesting level: the inner filter in `( … )` or `not ( … )`, between sibling expressions.
    #[derive(Clone, Debug)]
    struct Level {
        not: bool,
        left: Vec<usize>,
        right: Vec<usize>,
        ors: Vec<bool>,
    }

    fn level() -> impl Strategy<Value = Level> {
        (
            any::<bool>(),
            prop::collection::vec(any::<usize>(), 0..2),
            prop::collection::vec(any::<usize>(), 0..2),
            prop::collection::vec(any::<bool>(), 1..4),
        )
            .prop_map(|(not, left, right, ors)| Level { not, left, right, ors })
    }

    /// Filters from 0 to 14 levels deep, 1 to about 90 comparisons (long ones, or short ones so that
    /// the comparison bound is reached within the length bound), some padded past the length bound.
    fn filter() -> impl Strategy<Value = Built> {
        (
            prop_oneof![
                prop::collection::vec(any::<usize>(), 1..16).prop_map(|v| v.into_iter().map(term).collect()),
                prop::collection::vec(any::<usize>(), 30..70).prop_map(|v| v.into_iter().map(short_term).collect()),
            ],
            prop::collection::vec(any::<bool>(), 1..6),
            prop::collection::vec(level(), 0..15),
            prop::option::weighted(0.15, 0usize..900),
        )
            .prop_map(|(mut items, ors, levels, pad): (Vec<Built>, _, Vec<Level>, _)| {
                if let Some(pad) = pad {
                    items.push(Built {
                        text: format!("userName eq \"{}\"", "x".repeat(pad)),
                        truth: false,
                        terms: 1,
                        depth: 0,
                    });
                }
                let mut inner = chain(items, &ors);
                for l in levels {
                    let wrapped = Built {
                        text: format!("{}({})", if l.not { "not " } else { "" }, inner.text),
                        truth: inner.truth != l.not,
                        terms: inner.terms,
                        depth: inner.depth + 1,
                    };
                    let mut items: Vec<Built> = l.left.into_iter().map(short_term).collect();
                    items.push(wrapped);
                    items.extend(l.right.into_iter().map(term));
                    inner = chain(items, &l.ors);
                }
                inner
            })
    }

    fn assert_linear(input: &str, steps: usize) {
        assert!(
            steps <= STEPS_PER_BYTE * input.len() + STEPS_CONSTANT,
            "{steps} steps for {} bytes: {input:?}",
            input.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn within_the_bounds_a_filter_answers_as_rfc_precedence_says_and_past_them_it_is_refused(
            f in filter()
        ) {
            let (result, steps) = parse_counted(&f.text);
            assert_linear(&f.text, steps);
            let chars = f.text.chars().count();
            let expected = if chars > MAX_FILTER_CHARS {
                Some(InvalidFilter::TooLong { chars })
            } else if f.depth > MAX_FILTER_DEPTH {
                Some(InvalidFilter::TooDeep { depth: f.depth })
            } else if f.terms > MAX_FILTER_TERMS {
                Some(InvalidFilter::TooManyTerms { terms: f.terms })
            } else {
                None
            };
            match (result, expected) {
                (Ok(parsed), None) => prop_assert_eq!(parsed.matches(&ann()), f.truth, "{}", f.text),
                (Err(e), Some(want)) => prop_assert_eq!(e, want, "{}", f.text),
                (got, want) => prop_assert!(false, "{}: got {:?}, expected {:?}", f.text, got.map(|_| ()), want),
            }
        }

        #[test]
        fn any_text_is_answered_in_linear_steps_and_never_accepted_past_a_bound(
            text in "[()\\[\\] \"a-z.:\\\\]{0,1600}|([(]|not [(]|[a-z]{1,3} (eq|pr|co|gt) \"[a-z]{0,3}\"| and | or |[)]|emails\\[|\\]){0,400}"
        ) {
            let (result, steps) = parse_counted(&text);
            assert_linear(&text, steps);
            if let Ok(parsed) = result {
                prop_assert!(text.trim().chars().count() <= MAX_FILTER_CHARS);
                let (terms, depth) = shape(&parsed.root);
                prop_assert!(terms <= MAX_FILTER_TERMS, "{} terms: {}", terms, text);
                prop_assert!(depth <= 3 * MAX_FILTER_DEPTH + 3, "tree {} deep: {}", depth, text);
                parsed.matches(&ann());
            }
        }
    }

    /// (attribute expressions, tree depth) of a parsed filter.
    fn shape(n: &Node) -> (usize, usize) {
        match n {
            Node::Compare { .. } | Node::Present { .. } => (1, 1),
            Node::Not(n) | Node::ValuePath { inner: n, .. } => {
                let (t, d) = shape(n);
                (t, d + 1)
            }
            Node::And(v) | Node::Or(v) => v
                .iter()
                .map(shape)
                .fold((0, 1), |(t, d), (t2, d2)| (t + t2, d.max(d2 + 1))),
        }
    }
}
