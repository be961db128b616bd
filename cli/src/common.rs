//! What several commands share: time, randomness, reading inputs, public keys, printing JSON.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use intentgate_core::token::PublicKeys;
use serde_json::Value;

/// Unix seconds now, or the `--now` override.
pub fn now_secs(fixed: Option<i64>) -> anyhow::Result<i64> {
    match fixed {
        Some(secs) => Ok(secs),
        None => Ok(now_millis()?.div_euclid(1000)),
    }
}

pub fn now_millis() -> anyhow::Result<i64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(elapsed.as_millis()).context("the system clock is out of range")
}

/// `--now` seconds as milliseconds, checked.
pub fn secs_to_millis(secs: i64) -> anyhow::Result<i64> {
    secs.checked_mul(1000)
        .ok_or_else(|| anyhow!("time {secs} is out of range"))
}

pub fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no system randomness: {e}"))?;
    Ok(bytes)
}

/// A fresh ULID for a token or an audit event.
pub fn new_ulid(now_millis: i64) -> anyhow::Result<String> {
    let millis = u64::try_from(now_millis).context("ULIDs need a time after 1970")?;
    Ok(intentgate_core::ids::ulid(millis, random()?))
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn read_text(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(read_input(path)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Parses a JSON file into `T`, naming the file in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = read_input(path)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid", path.display()))
}

/// The token from `--token`, or from standard input when it is absent or `-`.
pub fn token_text(arg: Option<&str>) -> anyhow::Result<String> {
    let text = match arg {
        Some(text) if text != "-" => text.to_owned(),
        _ => read_text(Path::new("-"))?,
    };
    let text = text.trim();
    if text.is_empty() {
        bail!("no token given (use --token or standard input)");
    }
    Ok(text.to_owned())
}

/// Public keys from repeated `--public-key` values (base64 of 32 bytes).
pub fn public_keys(values: &[String]) -> anyhow::Result<PublicKeys> {
    let mut keys = PublicKeys::new();
    for value in values {
        keys.insert_base64(None, value)
            .with_context(|| format!("--public-key {value}"))?;
    }
    Ok(keys)
}

/// A time given as unix seconds or RFC 3339 (`2026-06-14T13:42:00Z`).
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp())
        .with_context(|| format!("{text:?} is neither unix seconds nor an RFC 3339 time"))
}

/// Tool patterns from `--tools a,b*`: trimmed, none empty, at least one.
pub fn tool_list(values: &[String]) -> anyhow::Result<Vec<String>> {
    let tools: Vec<String> = values
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tools.is_empty() {
        bail!("--tools needs at least one tool name or pattern");
    }
    Ok(tools)
}

/// `now + ttl`, checked.
pub fn expiry(now: i64, ttl: u64) -> anyhow::Result<i64> {
    i64::try_from(ttl)
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .ok_or_else(|| anyhow!("--ttl {ttl} is out of range"))
}

/// Pretty JSON on stdout. A reader that closed the pipe early (`| head`) is not an error.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot serialize the output")?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}
