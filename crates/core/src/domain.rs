//! Domain types: values that are valid by construction.
//!
//! "Parse, don't validate": an [`AdminEmail`] can only be built by [`AdminEmail::parse`], so code past the
//! edge of the system never sees an invalid or un-normalised address. Secrets ([`TemporaryPassword`],
//! [`Password`], [`Tokens`]) wrap [`secrecy::SecretString`] and never print: their `Debug` says
//! `[REDACTED]` and they implement no `Display`.

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

/// Why an e-mail address was rejected. The message is meant for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid e-mail address: {0}")]
pub struct InvalidEmail(pub String);

/// An admin's e-mail address, trimmed and checked once at the edge.
///
/// Rules: at most [`AdminEmail::MAX_CHARS`] (128) characters, Cognito's limit for a username (the
/// normalised address is the Cognito username); exactly one `@`; a local part of at most 64 characters
/// made of letters, digits, dots (not at either end, never two in a row) and the RFC 5322 `atext`
/// symbols `!#$%&'*+-/=?^_`{|}~`, so no address needs quoting in an e-mail header (`"`, `<`, `,`, `;`,
/// `\`, … are refused); a domain that is a valid internationalised domain name with at least two
/// labels; no whitespace, control, invisible or bidirectional-override character anywhere (U+200B,
/// U+202E, U+FEFF, …: every Unicode *Default_Ignorable_Code_Point*).
///
/// Uniqueness is case-insensitive and IDN-aware: [`AdminEmail::normalized`] is the lower-cased local part
/// `@` the domain in its ASCII (punycode) form per UTS #46, so `Ann@X.com`, `ann@x.com`,
/// `ann@bücher.example` and `ann@xn--bcher-kva.example` name two admins, not four.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdminEmail {
    display: String,
    normalized: String,
}

/// True for characters that render as nothing or reorder text: Unicode's Default_Ignorable_Code_Point
/// set (zero-width spaces and joiners, bidirectional embeddings, overrides and isolates, the BOM,
/// variation selectors, tag characters, …). Such characters make two different addresses look the same.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// The RFC 5322 `atext` symbols allowed in a local part besides letters, digits and dots.
const ATEXT_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

/// The key that makes a SCIM `userName` unique, normalised exactly like an e-mail so that two spellings
/// of one name are one key: an address is its [`AdminEmail::normalized`] form (case, IDN: `idn@bücher.example`
/// and `idn@xn--bcher-kva.example` are one key); any other name is trimmed, NFKC-folded (full-width
/// letters, ligatures and other compatibility look-alikes become their plain form) and lower-cased. A
/// look-alike of an address (`ａnn@example.com`) therefore folds to that address's key.
pub fn scim_user_name_key(raw: &str) -> String {
    let trimmed = raw.trim();
    match AdminEmail::parse(trimmed) {
        Ok(e) => e.normalized().to_string(),
        Err(_) => {
            let folded: String = trimmed.nfkc().collect();
            match AdminEmail::parse(&folded) {
                Ok(e) => e.normalized().to_string(),
                Err(_) => folded.to_lowercase(),
            }
        }
    }
}

impl AdminEmail {
    /// The longest address accepted, in characters: Cognito usernames are at most 128.
    pub const MAX_CHARS: usize = 128;

    /// Parses and normalises an address; see the type's docs for the rules.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(InvalidEmail("the address is empty".into()));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidEmail(format!(
                "the address is longer than {} characters (Cognito's limit for a username)",
                Self::MAX_CHARS
            )));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail(
                "the address contains whitespace or a control character".into(),
            ));
        }
        if s.chars().any(is_invisible) {
            return Err(InvalidEmail(
                "the address contains an invisible or text-direction character".into(),
            ));
        }
        let mut parts = s.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(l), Some(d), None) => (l, d),
            (_, None, _) => return Err(InvalidEmail("the address has no '@'".into())),
            _ => return Err(InvalidEmail("the address has more than one '@'".into())),
        };
        if local.is_empty() {
            return Err(InvalidEmail("nothing before the '@'".into()));
        }
        if local.chars().count() > 64 {
            return Err(InvalidEmail(
                "the part before the '@' is longer than 64 characters".into(),
            ));
        }
        if local
            .chars()
            .any(|c| !(c.is_alphanumeric() || c == '.' || ATEXT_SYMBOLS.contains(c)))
        {
            return Err(InvalidEmail(
                "the part before the '@' contains a character that would need quoting (such as a quote, \
                 comma, semicolon, bracket or backslash)"
                    .into(),
            ));
        }
        if !unicode_normalization::is_nfkc(local) {
            let folded: String = local.nfkc().collect();
            return Err(InvalidEmail(format!(
                "the part before the '@' uses a compatibility spelling (full-width letters, a ligature, a \
                 superscript…) that looks like another address; write it as \"{}\"",
                folded.chars().filter(|c| !c.is_control()).take(64).collect::<String>()
            )));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InvalidEmail(
                "the part before the '@' has a leading, trailing or double dot".into(),
            ));
        }
        if domain.is_empty() {
            return Err(InvalidEmail("nothing after the '@'".into()));
        }
        if domain.split('.').any(|label| label.is_empty()) {
            return Err(InvalidEmail(
                "the domain has an empty label (a leading, trailing or double dot)".into(),
            ));
        }
        if domain.chars().any(|c| !(c.is_alphanumeric() || c == '-' || c == '.')) {
            return Err(InvalidEmail(
                "the domain contains a character that is not a letter, digit, '-' or '.'".into(),
            ));
        }
        let ascii_domain = idna::domain_to_ascii_strict(domain)
            .map_err(|_| InvalidEmail("the domain is not a valid (internationalised) domain name".into()))?;
        if !ascii_domain.contains('.') {
            return Err(InvalidEmail("the domain has no dot".into()));
        }
        let normalized = format!("{}@{}", local.to_lowercase(), ascii_domain);
        if normalized.chars().count() > Self::MAX_CHARS {
            return Err(InvalidEmail(format!(
                "the address is longer than {} characters once its domain is in ASCII form",
                Self::MAX_CHARS
            )));
        }
        Ok(Self {
            display: s.to_string(),
            normalized,
        })
    }

    /// The address as the user typed it, trimmed.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lower-cased address with its domain in ASCII (punycode) form: the uniqueness key and the
    /// Cognito username the product asks for.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// A form of an untrusted user name that is safe to put in a log line: the normalised address when it
/// parses as an [`AdminEmail`], the name itself when it is short and made only of ASCII letters, digits
/// and `-_.@+` (a Cognito UUID username, say), and otherwise `unparsed:` followed by the first 16 hex
/// digits of its SHA-256, so a newline or an escape sequence typed into a login form can never forge a
/// log line or reach an operator's terminal, while repeated attempts with one input still correlate.
pub fn loggable_username(raw: &str) -> String {
    if let Ok(email) = AdminEmail::parse(raw) {
        return email.normalized;
    }
    if !raw.is_empty()
        && raw.len() <= AdminEmail::MAX_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'))
    {
        return raw.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(raw.as_bytes());
    format!("unparsed:{}", &hex::encode(digest)[..16])
}

impl fmt::Debug for AdminEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminEmail({})", self.display)
    }
}

impl fmt::Display for AdminEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl TryFrom<String> for AdminEmail {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AdminEmail> for String {
    fn from(value: AdminEmail) -> Self {
        value.display
    }
}

/// A password (a new one chosen by an admin, or one typed at login). Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }
    /// The password itself, for the one call that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A temporary password: Cognito e-mails it to a new admin, who must replace it at first login.
/// Never printed, logged or stored by the product.
#[derive(Clone)]
pub struct TemporaryPassword(SecretString);

impl TemporaryPassword {
    /// Wraps a temporary password.
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }

    /// Generates a 16-character password that satisfies Cognito's default policy (upper, lower, digit,
    /// symbol), from the operating system's random source.
    pub fn generate() -> Self {
        const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
        const DIGIT: &[u8] = b"23456789";
        const SYMBOL: &[u8] = b"!#%+-.:=?@^_";
        let mut rng = rand::rngs::OsRng;
        let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
        let mut chars: Vec<u8> = vec![
            UPPER[rng.gen_range(0..UPPER.len())],
            LOWER[rng.gen_range(0..LOWER.len())],
            DIGIT[rng.gen_range(0..DIGIT.len())],
            SYMBOL[rng.gen_range(0..SYMBOL.len())],
        ];
        while chars.len() < 16 {
            chars.push(all[rng.gen_range(0..all.len())]);
        }
        chars.shuffle(&mut rng);
        Self::new(String::from_utf8(chars).expect("ascii"))
    }

    /// The password itself, for the one call that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for TemporaryPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TemporaryPassword([REDACTED])")
    }
}

/// An opaque secret string such as a challenge session. Never printed.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }
    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// The tokens Cognito returns after a successful authentication. Never printed.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The ID token (JWT, `token_use=id`).
    pub id_token: Secret,
    /// The access token (JWT, `token_use=access`).
    pub access_token: Secret,
    /// The refresh token (opaque).
    pub refresh_token: Secret,
    /// Lifetime of the ID and access tokens, in seconds.
    pub expires_in: i64,
}

/// Identifier of an admin (`User.id`, also `AdminInfo.user_id`). Chosen by the saga before any side effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    /// A new random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who performs an action: an authenticated admin, or the operator at the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// An admin, identified by their `User.id` (already checked to be an active admin).
    Admin(UserId),
    /// The operator running the CLI on the server (no token; trusted by access to the machine).
    Operator,
    /// The reconciler (`admin-provisioner reconcile --repair`), applying a safe repair.
    Reconciler,
    /// A SCIM client (an identity provider such as Okta or Entra ID), by the name of its SCIM token.
    Scim(String),
}

impl Actor {
    /// The actor as recorded in the audit log: the admin id, `operator`, `reconciler` or `scim:<token name>`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Admin(id) => id.to_string(),
            Actor::Operator => "operator".to_string(),
            Actor::Reconciler => "reconciler".to_string(),
            Actor::Scim(name) => format!("scim:{name}"),
        }
    }
    /// Parses [`Actor::audit_name`] back.
    pub fn from_audit_name(s: &str) -> Option<Self> {
        if s == "operator" {
            Some(Actor::Operator)
        } else if s == "reconciler" {
            Some(Actor::Reconciler)
        } else if let Some(name) = s.strip_prefix("scim:") {
            Some(Actor::Scim(name.to_string()))
        } else {
            Uuid::parse_str(s).ok().map(|u| Actor::Admin(UserId(u)))
        }
    }
}

/// The state of a `User` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Invited: Cognito user in `FORCE_CHANGE_PASSWORD`, the temporary password not yet replaced.
    Invited,
    /// Active: the admin has logged in and replaced the temporary password.
    Active,
}

impl User {
    /// True while the admin is disabled (`users.disabled_at` set; Cognito `AdminDisableUser`): refused
    /// at login and on every API call, whatever [`User::status`] says (that keeps what the admin was
    /// before, which enabling restores).
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// True for an admin who may act: has completed first login and is not disabled.
    pub fn is_active_admin(&self) -> bool {
        self.status == UserStatus::Active && !self.is_disabled()
    }
}

impl UserStatus {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Invited => "invited",
            UserStatus::Active => "active",
        }
    }
    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invited" => Some(UserStatus::Invited),
            "active" => Some(UserStatus::Active),
            _ => None,
        }
    }
}

/// The `User` record: one person known to the application, linked to one Cognito user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// The address as typed (trimmed).
    pub email: String,
    /// Lower-cased address; unique.
    pub email_normalized: String,
    /// The `Username` Cognito returned (the e-mail, or a UUID in pools that use e-mail as username).
    pub cognito_username: String,
    /// Cognito's immutable `sub` attribute.
    pub cognito_sub: String,
    /// Invited or active.
    pub status: UserStatus,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// When the admin was disabled (SCIM `active: false`, or the console / API); `None` while enabled.
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// The identity provider's id for this person (SCIM `externalId`), when provisioned over SCIM.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The SCIM attributes kept as the identity provider sent them (JSON: `userName`, `emails`), when
    /// provisioned over SCIM. Never a secret.
    #[serde(default)]
    pub scim_profile: Option<String>,
    /// The admin's session epoch: a token issued at or before this instant is refused
    /// ([`crate::Provisioner::authorize`], `session_ended`). Set by sign-out and by a disable; an enable
    /// leaves it. Internal: never serialised (not part of the API, events or webhooks).
    #[serde(skip)]
    pub sessions_valid_after: Option<DateTime<Utc>>,
    /// When the admin's software-token MFA was enrolled (verified in Cognito and preferred); `None`: not
    /// enrolled, or reset since. With `REQUIRE_MFA` the core refuses every other request of an admin
    /// without it (`mfa_enrollment_required`). Internal: never serialised.
    #[serde(skip)]
    pub mfa_enrolled_at: Option<DateTime<Utc>>,
}

/// An admin's role: what they may do, by the one permission table in the core
/// (`provisioner/policy.rs`). Stored on `admin_info.role`.
///
/// * `owner`: everything, including creating, promoting, demoting, disabling and removing owners.
/// * `admin`: every write on admins and viewers; never on an owner, never to or from `owner`.
/// * `viewer`: read only (lists, an admin, audit, events); every write is refused (`403 forbidden`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Manages admins and viewers.
    #[default]
    Admin,
    /// Manages everyone, owners included.
    Owner,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Admin, Role::Owner];

    /// The stored and wire form: `owner`, `admin`, `viewer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored and wire form (trimmed, case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `AdminInfo` record: what makes a `User` an admin. 1:1 with `User` by foreign key `user_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminInfo {
    /// Foreign key to `User.id` (also this row's primary key).
    pub user_id: UserId,
    /// Who invited: an admin's id, or `None` when the operator did (bootstrap or CLI).
    pub invited_by: Option<UserId>,
    /// When the first invitation was sent.
    pub invited_at: DateTime<Utc>,
    /// When the current temporary password expires (`INVITE_VALIDITY_DAYS` after the last send).
    pub invite_expires_at: DateTime<Utc>,
    /// How many invitation e-mails were sent (first one plus resends).
    pub invites_sent: i32,
    /// When the last invitation was sent (for the resend cooldown).
    pub last_invite_sent_at: DateTime<Utc>,
    /// False when Cognito reported CodeDeliveryFailure for the last send: the user exists but the e-mail
    /// did not go out; a resend fixes it.
    pub invite_delivered: bool,
    /// When the admin replaced the temporary password (first login completed).
    pub accepted_at: Option<DateTime<Utc>>,
    /// What the admin may do.
    #[serde(default)]
    pub role: Role,
}

/// A `User` with its `AdminInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// The user row.
    pub user: User,
    /// The linked admin row.
    pub admin_info: AdminInfo,
}

/// An admin's invite status as shown to people, computed from both records and the saga log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    /// A provisioning saga is running: not yet in both systems.
    Pending,
    /// Invitation sent and not expired.
    Invited,
    /// The temporary password has expired: resend the invite.
    Expired,
    /// The admin has completed first login.
    Active,
    /// The admin is disabled in both systems (cannot log in; tokens refused): enable to restore.
    Disabled,
    /// Provisioning failed and could not be cleaned up automatically (a stuck saga): needs an operator.
    Failed,
}

impl InviteStatus {
    /// The status of a stored admin at `now`.
    pub fn of(record: &AdminRecord, now: DateTime<Utc>) -> Self {
        if record.user.is_disabled() {
            InviteStatus::Disabled
        } else if record.user.status == UserStatus::Active || record.admin_info.accepted_at.is_some() {
            InviteStatus::Active
        } else if now >= record.admin_info.invite_expires_at {
            InviteStatus::Expired
        } else {
            InviteStatus::Invited
        }
    }
    /// Text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            InviteStatus::Pending => "pending",
            InviteStatus::Invited => "invited",
            InviteStatus::Expired => "expired",
            InviteStatus::Active => "active",
            InviteStatus::Disabled => "disabled",
            InviteStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_normalised() {
        let e = AdminEmail::parse("  Ann@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ann@Example.COM");
        assert_eq!(e.normalized(), "ann@example.com");
    }

    #[test]
    fn full_width_and_ligature_local_parts_are_refused_as_look_alikes() {
        for raw in ["ａnn@example.com", "ﬀ@example.com", "ann²@example.com"] {
            let err = AdminEmail::parse(raw).unwrap_err();
            assert!(err.0.contains("compatibility spelling"), "{raw}: {err}");
        }
        // Plain non-ASCII letters are not look-alikes: they stay valid.
        assert!(AdminEmail::parse("jörg@example.com").is_ok());
    }

    #[test]
    fn scim_user_name_keys_fold_idn_case_and_compatibility_spellings() {
        let key = scim_user_name_key("idn@xn--bcher-kva.example");
        assert_eq!(scim_user_name_key("idn@bücher.example"), key);
        assert_eq!(scim_user_name_key(" IDN@BÜCHER.example "), key);
        assert_eq!(scim_user_name_key("ｉｄｎ@bücher.example"), key);
        assert_eq!(scim_user_name_key("Ｊｏｈｎ"), "john");
        assert_ne!(scim_user_name_key("john"), scim_user_name_key("jon"));
    }

    #[test]
    fn an_address_longer_than_cognitos_128_character_username_is_refused() {
        let at_limit = format!("{}@{}.com", "a".repeat(64), "b".repeat(59));
        assert_eq!(at_limit.chars().count(), 128);
        assert!(AdminEmail::parse(&at_limit).is_ok());
        let over = format!("{}@b{}.com", "a".repeat(64), "b".repeat(59));
        let err = AdminEmail::parse(&over).unwrap_err();
        assert!(err.0.contains("128"), "{err}");
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused() {
        for bad in [
            "ann\u{200B}@example.com",
            "ann@exa\u{200B}mple.com",
            "\u{202E}moc.elpmaxe@nna",
            "ann\u{2066}@example.com",
            "\u{FEFF}ann@example.com",
            "an\u{00AD}n@example.com",
            "ann\u{E0041}@example.com",
        ] {
            let err = AdminEmail::parse(bad).unwrap_err();
            assert!(err.0.contains("invisible"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_idn_domain_and_its_punycode_form_are_one_admin() {
        let unicode = AdminEmail::parse("Ann@Bücher.Example").unwrap();
        let puny = AdminEmail::parse("ann@xn--bcher-kva.example").unwrap();
        assert_eq!(unicode.normalized(), "ann@xn--bcher-kva.example");
        assert_eq!(unicode.normalized(), puny.normalized());
        assert_eq!(unicode.as_str(), "Ann@Bücher.Example");
    }

    #[test]
    fn characters_that_would_need_quoting_in_a_header_are_refused() {
        for bad in [
            "\"ann\"@example.com",
            "ann,bob@example.com",
            "ann;x@example.com",
            "<ann>@example.com",
            "ann\\@example.com",
            "ann(x)@example.com",
            "ann:x@example.com",
            "ann@exa_mple.com",
            "ann@-example.com",
        ] {
            assert!(AdminEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(AdminEmail::parse("o'brien+tag{1}@example.com").is_ok());
    }

    #[test]
    fn a_loggable_username_never_carries_a_newline_or_an_escape() {
        assert_eq!(loggable_username(" Ann@Example.com "), "ann@example.com");
        assert_eq!(
            loggable_username("6f1c2a9e-0b7d-4f5e-9a3c-1d2e3f4a5b6c"),
            "6f1c2a9e-0b7d-4f5e-9a3c-1d2e3f4a5b6c"
        );
        let forged = loggable_username("x\nINFO login succeeded user=root\u{1b}[31m");
        assert!(forged.starts_with("unparsed:"), "{forged}");
        assert!(!forged.contains('\n') && !forged.contains('\u{1b}'));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any string at all: parsing never panics, and an accepted address satisfies every rule.
        #[test]
        fn parsing_any_string_never_panics_and_accepted_addresses_are_clean(raw in "\\PC*|[a-zA-Z0-9.@\u{200B}\u{202E}\u{FEFF}\"<>,;\\\r\n -]{0,200}") {
            if let Ok(e) = AdminEmail::parse(&raw) {
                proptest::prop_assert!(e.normalized().chars().count() <= AdminEmail::MAX_CHARS);
                proptest::prop_assert!(!e.as_str().chars().any(|c| c.is_control() || c.is_whitespace() || is_invisible(c)));
                proptest::prop_assert!(!e.as_str().contains(['"', '<', '>', ',', ';', '\\', '\r', '\n']));
                proptest::prop_assert!(e.normalized().split('@').nth(1).unwrap().is_ascii());
            }
            let logged = loggable_username(&raw);
            proptest::prop_assert!(!logged.chars().any(|c| c.is_control()));
        }
    }

    #[test]
    fn generated_password_meets_default_policy() {
        for _ in 0..50 {
            let p = TemporaryPassword::generate();
            let s = p.expose();
            assert_eq!(s.len(), 16);
            assert!(s.chars().any(|c| c.is_ascii_uppercase()));
            assert!(s.chars().any(|c| c.is_ascii_lowercase()));
            assert!(s.chars().any(|c| c.is_ascii_digit()));
            assert!(s.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let p = TemporaryPassword::new("Sup3r$ecret");
        assert!(!format!("{p:?}").contains("Sup3r"));
        let t = Tokens {
            id_token: Secret::new("idtok"),
            access_token: Secret::new("acctok"),
            refresh_token: Secret::new("reftok"),
            expires_in: 3600,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("idtok") && !s.contains("acctok") && !s.contains("reftok"));
    }
}
