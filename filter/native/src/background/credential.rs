//! The filter token every call to the control plane carries: fixed (`control_plane.token`), or read
//! from `control_plane.token_file` (a mounted Secret, which Kubernetes rewrites when it is rotated).
//! The file is read when the link is made and again, at most once per [`REREAD_EVERY`], when a call
//! goes out; a changed content takes effect from the next call. While the file is missing,
//! unreadable, empty or not a header value, no call goes out: each fails as if the control plane
//! were unreachable, so everything that needs it fails closed.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::metadata::AsciiMetadataValue;

/// How stale a read of the token file may be when a call goes out.
pub const REREAD_EVERY: Duration = Duration::from_secs(1);

/// What a call presents as `authorization`.
pub enum Credential {
    /// No token: the control plane admits every filter.
    None,
    Fixed(AsciiMetadataValue),
    File(TokenFile),
}

/// Whether a call may go out, and what it presents.
pub type Presented = Result<Option<AsciiMetadataValue>, Unusable>;

/// The token file cannot be used: no call goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unusable;

/// What the log should say about a read of the token file, when its outcome changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Read: calls carry its token (`rotated` when it replaced another one).
    Read { rotated: bool },
    /// Unusable, for this reason: calls fail closed.
    Failed(String),
}

impl Credential {
    /// The current value, re-reading the token file when the last read is older than
    /// [`REREAD_EVERY`]; `note` gets what changed.
    pub fn present(&self, note: impl FnOnce(&str, Change)) -> Presented {
        match self {
            Credential::None => Ok(None),
            Credential::Fixed(value) => Ok(Some(value.clone())),
            Credential::File(file) => file.current(Instant::now(), note),
        }
    }
}

pub struct TokenFile {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    checked: Option<Instant>,
    /// The last read's bytes, or why it failed: a new read equal to it changes nothing.
    read: Option<Result<Vec<u8>, String>>,
    value: Option<AsciiMetadataValue>,
}

impl TokenFile {
    pub fn new(path: impl Into<PathBuf>) -> TokenFile {
        TokenFile {
            path: path.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// The token's header value as of `now`, read again when the last read is older than
    /// [`REREAD_EVERY`].
    pub fn current(&self, now: Instant, note: impl FnOnce(&str, Change)) -> Presented {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = state
            .checked
            .is_some_and(|at| now.saturating_duration_since(at) < REREAD_EVERY);
        if !fresh {
            state.checked = Some(now);
            let read = std::fs::read(&self.path).map_err(|e| e.to_string());
            if state.read.as_ref() != Some(&read) {
                let had = state.value.is_some();
                state.value = match header_value(&read) {
                    Ok(value) => {
                        note(&self.display(), Change::Read { rotated: had });
                        Some(value)
                    }
                    Err(why) => {
                        note(&self.display(), Change::Failed(why));
                        None
                    }
                };
                state.read = Some(read);
            }
        }
        state.value.clone().map(Some).ok_or(Unusable)
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// `Bearer <token>` from the file's content, without surrounding whitespace (a trailing newline).
fn header_value(read: &Result<Vec<u8>, String>) -> Result<AsciiMetadataValue, String> {
    let bytes = read.as_ref().map_err(|e| format!("cannot be read: {e}"))?;
    let token = std::str::from_utf8(bytes)
        .map_err(|_| "is not UTF-8".to_owned())?
        .trim();
    if token.is_empty() {
        return Err("is empty".into());
    }
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "does not hold a valid header value".into())
}

/// The log line for a change of the token file `path`.
pub fn describe(path: &str, change: &Change) -> String {
    match change {
        Change::Read { rotated: false } => {
            format!("intentgate: control_plane.token_file {path} read")
        }
        Change::Read { rotated: true } => format!(
            "intentgate: control_plane.token_file {path} changed: calls to the control plane carry the new token"
        ),
        Change::Failed(why) => format!(
            "intentgate: control_plane.token_file {path} {why}: no call goes to the control plane until it holds a token (failing closed)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: &TokenFile, at: Instant) -> (Presented, Option<Change>) {
        let mut seen = None;
        let value = file.current(at, |_, change| seen = Some(change));
        (value, seen)
    }

    fn bearer(token: &str) -> Presented {
        Ok(Some(format!("Bearer {token}").parse().unwrap()))
    }

    /// A token file holding `content`, in a directory that lives as long as the first value.
    fn written(content: &str) -> (tempfile::TempDir, std::path::PathBuf, TokenFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, content).unwrap();
        let file = TokenFile::new(&path);
        (dir, path, file)
    }

    #[test]
    fn the_token_is_read_from_the_file_without_surrounding_whitespace() {
        let (_dir, _, file) = written("secret-token\n");
        let (value, change) = read(&file, Instant::now());
        assert_eq!(value, bearer("secret-token"));
        assert_eq!(change, Some(Change::Read { rotated: false }));
    }

    #[test]
    fn a_rewritten_file_is_read_again_once_the_last_read_is_stale() {
        let (_dir, path, file) = written("first");
        let start = Instant::now();
        assert_eq!(read(&file, start).0, bearer("first"));
        std::fs::write(&path, "second").unwrap();
        assert_eq!(
            read(&file, start + REREAD_EVERY / 2),
            (bearer("first"), None),
            "not re-read within the period"
        );
        let (value, change) = read(&file, start + REREAD_EVERY);
        assert_eq!(value, bearer("second"));
        assert_eq!(change, Some(Change::Read { rotated: true }));
        assert_eq!(
            read(&file, start + REREAD_EVERY * 2),
            (bearer("second"), None),
            "an unchanged file is not news"
        );
    }

    #[test]
    fn a_kubernetes_style_symlink_swap_is_followed() {
        // The kubelet rotates a mounted Secret by pointing a symlink at a new directory.
        let dir = tempfile::tempdir().unwrap();
        for (name, token) in [("v1", "old-token"), ("v2", "new-token")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("token"), token).unwrap();
        }
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink("v1", &data).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
        let file = TokenFile::new(dir.path().join("token"));
        let start = Instant::now();
        assert_eq!(read(&file, start).0, bearer("old-token"));
        let swap = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("v2", &swap).unwrap();
        std::fs::rename(&swap, &data).unwrap();
        assert_eq!(read(&file, start + REREAD_EVERY).0, bearer("new-token"));
    }

    #[test]
    fn a_missing_empty_or_invalid_file_fails_closed_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let file = TokenFile::new(&path);
        let start = Instant::now();
        let (value, change) = read(&file, start);
        assert_eq!(value, Err(Unusable));
        assert!(
            matches!(change, Some(Change::Failed(ref why)) if why.starts_with("cannot be read"))
        );
        for (i, (content, why)) in [
            ("  \n", "is empty"),
            ("bad\ntoken", "does not hold a valid header value"),
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&path, content).unwrap();
            let at = start + REREAD_EVERY * (i as u32 + 1);
            assert_eq!(
                read(&file, at),
                (Err(Unusable), Some(Change::Failed(why.into())))
            );
        }
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let (value, change) = read(&file, start + REREAD_EVERY * 3);
        assert_eq!(value, Err(Unusable));
        assert_eq!(change, Some(Change::Failed("is not UTF-8".into())));
    }

    #[test]
    fn a_token_that_was_in_force_is_dropped_when_the_file_goes() {
        let (_dir, path, file) = written("token");
        let start = Instant::now();
        assert_eq!(read(&file, start).0, bearer("token"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            read(&file, start + REREAD_EVERY).0,
            Err(Unusable),
            "never the stale token"
        );
        std::fs::write(&path, "token").unwrap();
        assert_eq!(
            read(&file, start + REREAD_EVERY * 2),
            (bearer("token"), Some(Change::Read { rotated: false }))
        );
    }

    #[test]
    fn each_change_has_a_log_line_naming_the_file_never_the_token() {
        let failed = describe("/etc/t", &Change::Failed("is empty".into()));
        assert!(
            failed.contains("/etc/t is empty") && failed.contains("failing closed"),
            "{failed}"
        );
        assert!(describe("/etc/t", &Change::Read { rotated: true }).contains("new token"));
    }
}
