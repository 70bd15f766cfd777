//! External sort of Cognito users by username, in bounded memory.
//!
//! `ListUsers` returns users in an order of Cognito's choosing; the reconciler needs them in username
//! order to merge them with the database's keyset stream. Users are collected in runs of at most
//! `run_len`; a full run is sorted and spilled to an anonymous temporary file (deleted by the operating
//! system when dropped) in a compact binary form; at the end the runs are merged with a heap. Memory is
//! bounded by one run plus one buffered user per spilled run, whatever the pool's size. A pool that fits
//! in one run never touches the disk.

use crate::identity::{IdpUser, IdpUserStatus};
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Collects users, then hands them back sorted by username (byte order, the same as the database's
/// `COLLATE "C"` / SQLite `BINARY`).
pub(crate) struct ExternalSort {
    run_len: usize,
    dir: Option<PathBuf>,
    buf: Vec<IdpUser>,
    runs: Vec<File>,
    spilled: u64,
}

impl ExternalSort {
    /// A sorter that keeps at most `run_len` users in memory; spills go to `dir` (or the system's
    /// temporary folder).
    pub(crate) fn new(run_len: usize, dir: Option<PathBuf>) -> Self {
        Self {
            run_len: run_len.max(1),
            dir,
            buf: Vec::new(),
            runs: Vec::new(),
            spilled: 0,
        }
    }

    /// Adds one user.
    pub(crate) fn push(&mut self, user: IdpUser) -> io::Result<()> {
        self.buf.push(user);
        if self.buf.len() >= self.run_len {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs went to disk so far.
    pub(crate) fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buf.sort_unstable_by(|a, b| a.username.cmp(&b.username));
        let file = match &self.dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        let mut w = BufWriter::with_capacity(1 << 16, file);
        for u in self.buf.drain(..) {
            encode(&mut w, &u)?;
            self.spilled += 1;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        Ok(())
    }

    /// Every user pushed, in username order.
    pub(crate) fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.buf.sort_unstable_by(|a, b| a.username.cmp(&b.username));
            return Ok(Sorted::Memory(self.buf.into_iter()));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<BufReader<File>> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (run, r) in readers.iter_mut().enumerate() {
            if let Some(user) = decode(r)? {
                heap.push(Head { user, run });
            }
        }
        Ok(Sorted::Merge { readers, heap })
    }
}

/// The sorted users, read one at a time.
pub(crate) enum Sorted {
    /// Everything fitted in one run.
    Memory(std::vec::IntoIter<IdpUser>),
    /// A k-way merge of spilled runs.
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Head>,
    },
}

impl Sorted {
    /// The next user in username order.
    pub(crate) fn next_user(&mut self) -> io::Result<Option<IdpUser>> {
        match self {
            Sorted::Memory(it) => Ok(it.next()),
            Sorted::Merge { readers, heap } => {
                let Some(Head { user, run }) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = decode(&mut readers[run])? {
                    heap.push(Head { user: next, run });
                }
                Ok(Some(user))
            }
        }
    }
}

/// The smallest unread user of one run (a min-heap by username through a reversed `Ord`).
pub(crate) struct Head {
    user: IdpUser,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .user
            .username
            .cmp(&self.user.username)
            .then_with(|| other.run.cmp(&self.run))
    }
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    let len = u32::try_from(s.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "string too long"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn encode(w: &mut impl Write, u: &IdpUser) -> io::Result<()> {
    put_str(w, &u.username)?;
    put_str(w, &u.sub)?;
    match &u.email {
        Some(e) => {
            w.write_all(&[1])?;
            put_str(w, e)?;
        }
        None => w.write_all(&[0])?,
    }
    put_str(w, u.status.as_cognito())?;
    w.write_all(&[u8::from(u.enabled)])?;
    w.write_all(&u.created_at.timestamp_micros().to_le_bytes())?;
    w.write_all(&u.last_modified_at.timestamp_micros().to_le_bytes())
}

fn get_bytes<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn get_str(r: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(get_bytes::<4>(r)?) as usize;
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default()
}

fn decode(r: &mut impl Read) -> io::Result<Option<IdpUser>> {
    // End of the run: no more length prefix.
    let mut first = [0u8; 4];
    match r.read(&mut first[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut first[1..])?,
    }
    let len = u32::from_le_bytes(first) as usize;
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    let username = String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let sub = get_str(r)?;
    let email = match get_bytes::<1>(r)?[0] {
        0 => None,
        _ => Some(get_str(r)?),
    };
    let status = IdpUserStatus::from_cognito(&get_str(r)?);
    let enabled = get_bytes::<1>(r)?[0] != 0;
    let created_at = time(i64::from_le_bytes(get_bytes::<8>(r)?));
    let last_modified_at = time(i64::from_le_bytes(get_bytes::<8>(r)?));
    Ok(Some(IdpUser {
        username,
        sub,
        email,
        status,
        enabled,
        created_at,
        last_modified_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, i: i64) -> IdpUser {
        IdpUser {
            username: name.to_string(),
            sub: format!("sub-{name}"),
            email: (i % 2 == 0).then(|| format!("{name}@x.example")),
            status: if i % 3 == 0 {
                IdpUserStatus::Confirmed
            } else {
                IdpUserStatus::Other("RESET_REQUIRED".into())
            },
            enabled: i % 5 != 0,
            created_at: time(1_700_000_000_000_000 + i),
            last_modified_at: time(1_700_000_000_000_001 + i),
        }
    }

    #[test]
    fn spilled_runs_merge_back_in_username_order_without_loss() {
        // 1000 users in a scrambled order, runs of 7: 143 spilled runs.
        let mut sorter = ExternalSort::new(7, None);
        let mut expected = Vec::new();
        for i in 0..1000i64 {
            let n = (i * 7919) % 1000;
            let u = user(&format!("user{n:04}é"), n);
            expected.push(u.clone());
            sorter.push(u).unwrap();
        }
        assert!(sorter.spilled_runs() > 100);
        expected.sort_by(|a, b| a.username.cmp(&b.username));
        let mut sorted = sorter.finish().unwrap();
        let mut got = Vec::new();
        while let Some(u) = sorted.next_user().unwrap() {
            got.push(u);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_small_pool_stays_in_memory() {
        let mut sorter = ExternalSort::new(100, None);
        for name in ["b", "a", "c"] {
            sorter.push(user(name, 1)).unwrap();
        }
        assert_eq!(sorter.spilled_runs(), 0);
        let mut sorted = sorter.finish().unwrap();
        let mut names = Vec::new();
        while let Some(u) = sorted.next_user().unwrap() {
            names.push(u.username);
        }
        assert_eq!(names, ["a", "b", "c"]);
    }
}
