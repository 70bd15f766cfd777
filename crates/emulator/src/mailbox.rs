//! The emulator's outbox: every invitation it sends is an RFC 5322 message in a folder.
//!
//! Cognito e-mails a new user their temporary password. The emulator cannot send mail, so it "delivers"
//! each message as one `.eml` file in the mailbox folder, where a person (or a test, or a browser-driven
//! check) can read it, open it in any mail client, or pick the password out with
//! [`Message::temporary_password`].
//!
//! File names are `{yyyymmddThhmmss.ffffff}-{username}-{8 hex}.eml` (UTC, by the emulator's clock, made
//! strictly increasing within a folder), so sorting names sorts messages oldest first. Files are written
//! to a temporary name and renamed, so a reader never sees half a message.
//!
//! Delivery costs O(1) whatever the folder holds: the newest stamp of each folder is remembered in the
//! process (the folder is scanned once, at its first delivery), so a standing or backwards clock still
//! gives strictly increasing names without reading the folder again. Two processes delivering to one
//! folder in the same microsecond may interleave; the random suffix keeps their names unique.
//!
//! The message contains a temporary password, so files are created `0600` and the folder `0700` (Unix).

use admin_provisioner_core::domain::TemporaryPassword;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Sender of Cognito's default e-mails (when the pool has no SES configuration).
pub const FROM_ADDRESS: &str = "no-reply@verificationemail.com";

/// Subject of Cognito's default invitation message.
pub const INVITATION_SUBJECT: &str = "Your temporary password";

/// The fixed text around the username in Cognito's default invitation line.
const LINE_PREFIX: &str = "Your username is ";
/// The fixed text between the username and the password in Cognito's default invitation line.
const LINE_MIDDLE: &str = " and temporary password is ";

/// What [`Message::masked_body`] shows instead of the password.
pub const MASK: &str = "********";

/// Subject of Cognito's default password-reset message.
pub const RESET_SUBJECT: &str = "Your password reset code";
/// Cognito's default password-reset text, up to the code.
const RESET_LINE_PREFIX: &str = "Your password reset code is ";
/// Format of the time prefix of file names.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S%.6f";

/// The newest stamp delivered to each folder by this process (scanned from the folder once, at its first
/// delivery). Held only while a stamp is chosen, never while a file is written.
static LAST_STAMPS: Mutex<Option<HashMap<PathBuf, NaiveDateTime>>> = Mutex::new(None);

/// A folder of delivered messages (`MAILBOX_DIR`). Cheap to clone; holds only the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    dir: PathBuf,
}

/// One delivered message, parsed back from its `.eml` file.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The file it was read from.
    pub path: PathBuf,
    /// The `To:` address (without angle brackets or display name).
    pub to: String,
    /// The `From:` header.
    pub from: String,
    /// The `Subject:` header.
    pub subject: String,
    /// The `Date:` header (RFC 2822).
    pub date: String,
    /// The body, with line endings normalised to `\n`. Contains the temporary password: do not log it;
    /// use [`Message::masked_body`] for display.
    pub body: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("path", &self.path)
            .field("to", &self.to)
            .field("from", &self.from)
            .field("subject", &self.subject)
            .field("date", &self.date)
            .field("body", &self.masked_body())
            .finish()
    }
}

impl Mailbox {
    /// A mailbox in `dir` (created on the first delivery; reading a missing folder gives no messages).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every message in the folder, oldest first. Files that are not `.eml` are ignored; a missing folder
    /// is an empty mailbox.
    pub fn messages(&self) -> io::Result<Vec<Message>> {
        let mut names = match eml_names(&self.dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        names.sort_unstable();
        names.iter().map(|name| Message::read(&self.dir.join(name))).collect()
    }

    /// The newest message addressed to `email` (compared case-insensitively), if any.
    pub fn latest_for(&self, email: &str) -> io::Result<Option<Message>> {
        let wanted = email.trim().to_lowercase();
        Ok(self
            .messages()?
            .into_iter()
            .rev()
            .find(|m| m.to.to_lowercase() == wanted))
    }

    /// The newest `limit` messages, newest first, and how many `.eml` files the folder holds. Reads only
    /// the directory listing and the `limit` newest files, so it stays cheap with thousands of messages.
    pub fn recent(&self, limit: usize) -> io::Result<(Vec<Message>, usize)> {
        let mut names = match eml_names(&self.dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let total = names.len();
        names.sort_unstable();
        let newest = names
            .iter()
            .rev()
            .take(limit)
            .map(|name| Message::read(&self.dir.join(name)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok((newest, total))
    }

    /// Writes Cognito's default invitation to `to` (atomically: temporary file, then rename, not fsynced; the file
    /// `0600`, the folder `0700`) and returns the new file's path. O(1) in the number of messages.
    pub(crate) fn deliver_invitation(
        &self,
        to: &str,
        username: &str,
        password: &TemporaryPassword,
        at: DateTime<Utc>,
    ) -> io::Result<PathBuf> {
        let line = invitation_line(username, password.expose());
        self.deliver(to, username, INVITATION_SUBJECT, &line, at)
    }

    /// Writes Cognito's default password-reset message (`Your password reset code is {####}.`) to `to`,
    /// like [`Mailbox::deliver_invitation`] (`ForgotPassword`, `AdminResetUserPassword`).
    pub(crate) fn deliver_reset_code(
        &self,
        to: &str,
        username: &str,
        code: &str,
        at: DateTime<Utc>,
    ) -> io::Result<PathBuf> {
        let line = format!("{RESET_LINE_PREFIX}{code}.");
        self.deliver(to, username, RESET_SUBJECT, &line, at)
    }

    fn deliver(&self, to: &str, username: &str, subject: &str, line: &str, at: DateTime<Utc>) -> io::Result<PathBuf> {
        create_private_dir(&self.dir)?;
        let stamp = self.next_stamp(at)?;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let name = format!(
            "{}-{}-{}.eml",
            stamp.format(STAMP_FORMAT),
            sanitise(username),
            &unique[..8]
        );
        let text = render_message(to, subject, line, at, &unique);

        let final_path = self.dir.join(&name);
        let tmp_path = self.dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut file = private_file_options().open(&tmp_path)?;
            file.write_all(text.as_bytes())?;
            // No fsync: the emulator's own state is SQLite with `synchronous=NORMAL` (it survives a crash of
            // the process, not of the machine), and so does a message written and renamed into place. An
            // fsync per invitation cost 2-5 ms of every provisioning on this machine's disk (issue 9, cell b).
            drop(file);
            fs::rename(&tmp_path, &final_path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
        Ok(final_path)
    }

    /// `at`, moved just past the newest stamp this process gave the folder (or, at the folder's first
    /// delivery, the newest file already in it) if needed, so names keep sorting in delivery order even when
    /// the (emulated) clock stands still.
    fn next_stamp(&self, at: DateTime<Utc>) -> io::Result<NaiveDateTime> {
        let wanted = DateTime::<Utc>::from_timestamp_micros(at.timestamp_micros())
            .unwrap_or(at)
            .naive_utc();
        let mut guard = LAST_STAMPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stamps = guard.get_or_insert_with(HashMap::new);
        let last = match stamps.get(&self.dir) {
            Some(last) => Some(*last),
            None => newest_stamp_in(&self.dir)?,
        };
        let stamp = match last {
            Some(last) if last >= wanted => last + Duration::microseconds(1),
            _ => wanted,
        };
        stamps.insert(self.dir.clone(), stamp);
        Ok(stamp)
    }
}

/// Names of the `.eml` files in `dir` (unsorted).
fn eml_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.ends_with(".eml") && !name.starts_with('.') && entry.file_type()?.is_file() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The newest stamp among the file names in `dir` (one scan; used once per folder and process).
fn newest_stamp_in(dir: &Path) -> io::Result<Option<NaiveDateTime>> {
    Ok(eml_names(dir)?
        .iter()
        .filter_map(|name| name.split('-').next())
        .filter_map(|prefix| NaiveDateTime::parse_from_str(prefix, STAMP_FORMAT).ok())
        .max())
}

/// Creates the mailbox folder (and parents) if missing; a folder it creates is `0700` on Unix.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options for a new message file: must not exist yet; `0600` on Unix (it holds a temporary password).
fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// An address as an RFC 5322 `addr-spec` in angle brackets: a local part that is not a dot-atom becomes a
/// quoted string (`"` and `\` escaped); control characters, which no header may carry, are dropped.
fn header_address(address: &str) -> String {
    let clean: String = address.chars().filter(|c| !c.is_control()).collect();
    let (local, domain) = match clean.rsplit_once('@') {
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => (clean.clone(), String::new()),
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom = !local.is_empty() && local.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
    let local = if dot_atom {
        local
    } else {
        let escaped: String = local
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    };
    if domain.is_empty() {
        format!("<{local}>")
    } else {
        format!("<{local}@{domain}>")
    }
}

/// Keeps a username recognisable in a file name: letters, digits, `.`, `_`, `@`, `+` and `-` stay, the rest
/// become `_`; at most 64 characters.
fn sanitise(username: &str) -> String {
    let s: String = username
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "user".into()
    } else {
        s
    }
}

/// The whole RFC 5322 text of an invitation, CRLF line endings.
fn render_message(to: &str, subject: &str, line: &str, at: DateTime<Utc>, unique: &str) -> String {
    let headers = [
        format!("From: {FROM_ADDRESS}"),
        format!("To: {}", header_address(to)),
        format!("Subject: {subject}"),
        format!("Date: {}", at.to_rfc2822()),
        format!("Message-ID: <{unique}@emulator.cognito-idp.local>"),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=UTF-8".to_string(),
        "Content-Transfer-Encoding: 8bit".to_string(),
    ];
    let mut text = headers.join("\r\n");
    text.push_str("\r\n\r\n");
    text.push_str(line);
    text.push_str("\r\n");
    text
}

/// Cognito's default invitation text: `Your username is {username} and temporary password is {####}.`
fn invitation_line(username: &str, password: &str) -> String {
    format!("{LINE_PREFIX}{username}{LINE_MIDDLE}{password}.")
}

/// Splits an invitation line into (username, password).
fn parse_invitation_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(LINE_PREFIX)?;
    // Usernames cannot contain spaces, so the first occurrence of the middle text is the real one.
    let (username, rest) = rest.split_once(LINE_MIDDLE)?;
    let password = rest.strip_suffix('.')?;
    if username.is_empty() || password.is_empty() {
        return None;
    }
    Some((username, password))
}

/// The code of a reset line: `Your password reset code is 123456.` → `123456`.
fn parse_reset_line(line: &str) -> Option<&str> {
    let code = line.strip_prefix(RESET_LINE_PREFIX)?.strip_suffix('.')?;
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

impl Message {
    /// Reads and parses one `.eml` file (LF or CRLF line endings, folded headers allowed).
    pub fn read(path: &Path) -> io::Result<Self> {
        let bytes = fs::read(path)?;
        Ok(Self::parse(path.to_path_buf(), &String::from_utf8_lossy(&bytes)))
    }

    fn parse(path: PathBuf, raw: &str) -> Self {
        let text = raw.replace("\r\n", "\n");
        let (head, body) = match text.split_once("\n\n") {
            Some((h, b)) => (h.to_string(), b.to_string()),
            None => (text.clone(), String::new()),
        };
        // Unfold continuation lines.
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Self {
            path,
            to: bare_address(&header("to")),
            from: header("from"),
            subject: header("subject"),
            date: header("date"),
            body,
        }
    }

    fn invitation(&self) -> Option<(&str, &str)> {
        self.body
            .lines()
            .find_map(|l| parse_invitation_line(l.trim_end_matches('\r')))
    }

    /// The temporary password from the invitation line, if this is an invitation.
    pub fn temporary_password(&self) -> Option<TemporaryPassword> {
        self.invitation().map(|(_, p)| TemporaryPassword::new(p))
    }

    /// The username from the invitation line, if this is an invitation.
    pub fn username(&self) -> Option<String> {
        self.invitation().map(|(u, _)| u.to_string())
    }

    /// The confirmation code of a password-reset message (`ForgotPassword`, `AdminResetUserPassword`):
    /// the six digits after the word "code", if this is one.
    pub fn reset_code(&self) -> Option<String> {
        self.body
            .lines()
            .find_map(|l| parse_reset_line(l.trim_end_matches('\r')))
            .map(str::to_string)
    }

    /// The body with the temporary password (or reset code) replaced by `********`, safe to show or log.
    pub fn masked_body(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        for line in self.body.split('\n') {
            let line = line.trim_end_matches('\r');
            match parse_invitation_line(line) {
                Some((username, _)) => out.push(invitation_line(username, MASK)),
                None if parse_reset_line(line).is_some() => out.push(format!("{RESET_LINE_PREFIX}{MASK}.")),
                None => out.push(line.to_string()),
            }
        }
        out.join("\n")
    }
}

/// `Name <a@b>`, `<a@b>` or `<"a b"@c>` → `a@b` / `a b@c` (a quoted local part is unquoted).
fn bare_address(value: &str) -> String {
    let spec = match (value.rfind('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].trim(),
        _ => value.trim(),
    };
    let Some(quoted) = spec.strip_prefix('"') else {
        return spec.to_string();
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => {
                out.extend(chars);
                break;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path().join("mail"));
        let at = Utc::now();
        let path = mailbox
            .deliver_invitation(
                "Ann@Example.com",
                "ann@example.com",
                &TemporaryPassword::new("Ab3.x!Q9."),
                at,
            )
            .unwrap();
        let raw = fs::read_to_string(&path).unwrap();
        assert!(raw.contains("\r\nSubject: Your temporary password\r\n"));
        assert!(raw.contains("\r\n\r\nYour username is ann@example.com and temporary password is Ab3.x!Q9..\r\n"));
        assert!(!raw.replace("\r\n", "").contains('\n'), "only CRLF line endings");

        let msg = mailbox.latest_for("ann@EXAMPLE.com").unwrap().expect("delivered");
        assert_eq!(msg.to, "Ann@Example.com");
        assert_eq!(msg.from, FROM_ADDRESS);
        assert_eq!(msg.subject, INVITATION_SUBJECT);
        assert_eq!(msg.date, at.to_rfc2822());
        assert_eq!(msg.temporary_password().unwrap().expose(), "Ab3.x!Q9.");
        assert_eq!(msg.username().as_deref(), Some("ann@example.com"));
        assert_eq!(
            msg.masked_body().trim_end(),
            "Your username is ann@example.com and temporary password is ********."
        );
        assert!(!format!("{msg:?}").contains("Ab3.x"));
    }

    #[test]
    fn lf_only_files_and_display_names_are_understood() {
        let msg = Message::parse(
            PathBuf::from("x.eml"),
            "From: a@b.c\nTo: Ann <ann@x.com>\nSubject: Your\n temporary password\n\nhello\nYour username is ann and temporary password is Pw1!aaaa.\n",
        );
        assert_eq!(msg.to, "ann@x.com");
        assert_eq!(msg.subject, "Your temporary password");
        assert_eq!(msg.temporary_password().unwrap().expose(), "Pw1!aaaa");
    }

    #[test]
    fn messages_are_oldest_first_even_when_the_clock_stands_still() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path());
        let at = Utc::now();
        for i in 0..5 {
            mailbox
                .deliver_invitation("a@b.c", "a@b.c", &TemporaryPassword::new(format!("Pass{i}!xx")), at)
                .unwrap();
        }
        let passwords: Vec<String> = mailbox
            .messages()
            .unwrap()
            .iter()
            .map(|m| m.temporary_password().unwrap().expose().to_string())
            .collect();
        assert_eq!(passwords, (0..5).map(|i| format!("Pass{i}!xx")).collect::<Vec<_>>());
        assert_eq!(
            mailbox
                .latest_for("A@B.C")
                .unwrap()
                .unwrap()
                .temporary_password()
                .unwrap()
                .expose(),
            "Pass4!xx"
        );
    }

    #[test]
    fn a_missing_folder_is_an_empty_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path().join("nothing-here"));
        assert!(mailbox.messages().unwrap().is_empty());
        assert!(mailbox.latest_for("a@b.c").unwrap().is_none());
    }

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(sanitise("ann@x.com"), "ann@x.com");
        assert_eq!(sanitise("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitise(""), "user");
    }

    #[test]
    fn thousands_of_deliveries_keep_order_and_unique_names_on_a_standing_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path().join("mail"));
        let at = Utc::now();
        const N: usize = 2000;
        let mut paths = Vec::with_capacity(N);
        for i in 0..N {
            let to = format!("user{i}@example.com");
            paths.push(
                mailbox
                    .deliver_invitation(&to, &to, &TemporaryPassword::new(format!("Pass{i}!xx")), at)
                    .unwrap(),
            );
        }
        let names: std::collections::HashSet<_> = paths.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names.len(), N, "every delivery has its own file");
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(sorted, paths, "file names sort in delivery order");

        let all = mailbox.messages().unwrap();
        assert_eq!(all.len(), N);
        assert_eq!(all[0].to, "user0@example.com");
        assert_eq!(all[N - 1].to, format!("user{}@example.com", N - 1));

        let (recent, total) = mailbox.recent(10).unwrap();
        assert_eq!(total, N);
        let recent_to: Vec<String> = recent.iter().map(|m| m.to.clone()).collect();
        let expected: Vec<String> = (N - 10..N).rev().map(|i| format!("user{i}@example.com")).collect();
        assert_eq!(recent_to, expected, "newest first");
        assert_eq!(
            mailbox
                .latest_for("USER1999@example.com")
                .unwrap()
                .unwrap()
                .temporary_password()
                .unwrap()
                .expose(),
            "Pass1999!xx"
        );
    }

    #[test]
    fn a_new_process_continues_after_the_newest_file_in_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let at = Utc::now();
        // A message "from another process", stamped an hour ahead of this clock.
        let ahead = (at + Duration::hours(1)).naive_utc().format(STAMP_FORMAT).to_string();
        fs::write(
            dir.path().join(format!("{ahead}-other-00000000.eml")),
            "To: <o@x.com>\n\nhi\n",
        )
        .unwrap();
        let mailbox = Mailbox::new(dir.path());
        let path = mailbox
            .deliver_invitation("a@b.c", "a@b.c", &TemporaryPassword::new("Pass1!xx"), at)
            .unwrap();
        let (recent, _) = mailbox.recent(1).unwrap();
        assert_eq!(recent[0].path, path, "the new message sorts after the existing one");
    }

    #[cfg(unix)]
    #[test]
    fn message_files_and_the_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path().join("private/mail"));
        let path = mailbox
            .deliver_invitation("a@b.c", "a@b.c", &TemporaryPassword::new("Pass1!xx"), Utc::now())
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "the file holds a temporary password");
        assert_eq!(mode(mailbox.dir()), 0o700);
    }

    #[test]
    fn addresses_are_quoted_in_headers_and_read_back() {
        assert_eq!(header_address("ann@x.com"), "<ann@x.com>");
        assert_eq!(header_address("a.b+c@x.com"), "<a.b+c@x.com>");
        assert_eq!(header_address("a,b<c>@x.com"), "<\"a,b<c>\"@x.com>");
        assert_eq!(header_address("a\"b@x.com"), "<\"a\\\"b\"@x.com>");
        assert_eq!(
            header_address("a\r\nBcc: evil@y.com@x.com"),
            "<\"aBcc: evil@y.com\"@x.com>"
        );

        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path());
        let to = "a,b\"c@x.com";
        let path = mailbox
            .deliver_invitation(to, to, &TemporaryPassword::new("Pass1!xx"), Utc::now())
            .unwrap();
        let raw = fs::read_to_string(&path).unwrap();
        assert!(raw.contains("\r\nTo: <\"a,b\\\"c\"@x.com>\r\n"), "{raw}");
        assert_eq!(Message::read(&path).unwrap().to, to);
    }
}
