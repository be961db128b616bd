//! Runs the built `intentgate` binary and reads its JSON.

#![allow(dead_code)] // Each test crate uses its own subset of these helpers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub struct Run {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

pub fn intentgate(args: &[&str]) -> Run {
    intentgate_with(args, None, &[])
}

/// Runs the binary with standard input and extra environment; INTENTGATE_MASTER_KEY is cleared
/// unless given here.
pub fn intentgate_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intentgate"));
    command
        .args(args)
        .env_remove("INTENTGATE_MASTER_KEY")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("intentgate starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("stdin is written");
    }
    let output = child.wait_with_output().expect("intentgate finishes");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
    };
    Run {
        code: output.status.code().expect("exited normally"),
        json,
        stdout,
        stderr,
    }
}

/// Asserts success and returns the JSON.
pub fn ok(args: &[&str]) -> Value {
    let run = intentgate(args);
    assert_eq!(run.code, 0, "intentgate {args:?} failed: {}", run.stderr);
    run.json
}

pub struct Issuer {
    pub seed: String,
    pub public_key: String,
    pub kid: String,
}

pub fn keygen() -> Issuer {
    let key = ok(&["keygen"]);
    Issuer {
        seed: text(&key["seed"]),
        public_key: text(&key["public_key"]),
        kid: text(&key["kid"]),
    }
}

/// Mints a token for agent-7 of acme-corp with `extra` arguments; returns mint's JSON.
pub fn mint(issuer: &Issuer, extra: &[&str]) -> Value {
    let mut args = vec![
        "mint",
        "--key",
        &issuer.seed,
        "--subject",
        "agent-7",
        "--tenant",
        "acme-corp",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

pub fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

pub fn sample(name: &str) -> String {
    samples().join(name).display().to_string()
}

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("intentgate-cli-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir is created");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
