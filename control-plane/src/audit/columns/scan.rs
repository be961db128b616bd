//! The seven column fields read out of an event's JSON in one pass over its top level, without
//! building the rest: verify reads every body, and a full parse of each cost it about 40% of its
//! throughput.
//!
//! What is read is exactly what `serde_json` deserializing the fields into a struct reads (the
//! differential test beside this file holds the two together): the body must be one JSON object,
//! with nothing but whitespace around it; the seven fields must each appear once, as strings;
//! top-level keys and the seven values are decoded strictly (valid UTF-8, paired surrogates);
//! everything else is skipped, but checked as serde_json checks what it ignores (structure,
//! escapes, numbers, literals, no raw control characters). Nested values are skipped byte by byte,
//! so a key of the same name inside one is never taken for a field. The one difference: serde
//! would also accept a JSON array of the seven strings, which no event body is; here only an
//! object is.
//!
//! Positions are passed in and returned rather than kept in a cursor: the hot loops then keep them
//! in registers.

use std::borrow::Cow;

/// The fields' values in the order of [`super::Columns`]; `None` when the body is not an object holding each of
/// them once as a string, or is not well-formed JSON around them.
pub fn fields(body: &[u8]) -> Option<[Cow<'_, str>; 7]> {
    let b = body;
    let mut found: [Option<Cow<'_, str>>; 7] = Default::default();
    let mut at = ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    at = ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            if b.get(at) != Some(&b'"') {
                return None;
            }
            let (field, next) = key(b, at + 1)?;
            at = ws(b, next);
            if b.get(at) != Some(&b':') {
                return None;
            }
            at = ws(b, at + 1);
            match field {
                Some(i) => {
                    if b.get(at) != Some(&b'"') {
                        return None;
                    }
                    let (value, next) = string(b, at + 1)?;
                    if found.get_mut(i)?.replace(value).is_some() {
                        return None;
                    }
                    at = next;
                }
                None => at = skip_value(b, at)?,
            }
            at = ws(b, at);
            match b.get(at) {
                Some(b',') => at = ws(b, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if ws(b, at) != b.len() {
        return None;
    }
    let [tenant, id, ts, event, decision, tool, agent_id] = found;
    Some([tenant?, id?, ts?, event?, decision?, tool?, agent_id?])
}

fn index(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"tenant" => 0,
        b"id" => 1,
        b"ts" => 2,
        b"event" => 3,
        b"decision" => 4,
        b"tool" => 5,
        b"agent_id" => 6,
        _ => return None,
    })
}

/// The first position from `at` that is not JSON whitespace; event bodies have none, so one
/// comparison usually settles it.
#[inline(always)]
fn ws(b: &[u8], at: usize) -> usize {
    match b.get(at) {
        Some(&c) if c > b' ' => at,
        _ => ws_slow(b, at),
    }
}

#[inline(never)]
fn ws_slow(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// The first position from `from` that ends a plain run of string content: `"`, `\\` or a control
/// character (`bytes.len()` when none does). Eight bytes at a time: a byte is flagged when it is
/// below 0x20 or equal to one of the two, and as a borrow only runs upwards, a false flag can only
/// follow a true one, so the lowest flag is exact.
#[inline]
fn plain_end(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20);
        let quote = word ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES);
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES);
        let flags = (control | quote | backslash) & !word & HIGH;
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

/// Which field a top-level key names, its opening quote at `at - 1`, and the position past its
/// closing quote. Decoded as strictly as the fields' values: serde_json decodes every key.
#[inline(always)]
fn key(b: &[u8], at: usize) -> Option<(Option<usize>, usize)> {
    let end = plain_end(b, at);
    if b.get(end) == Some(&b'"') {
        let raw = b.get(at..end)?;
        if !raw.is_ascii() {
            std::str::from_utf8(raw).ok()?;
        }
        return Some((index(raw), end + 1));
    }
    let (text, next) = escaped(b, at)?;
    Some((index(text.as_bytes()), next))
}

/// A string's decoded text, its opening quote at `at - 1`, and the position past its closing quote:
/// borrowed from the body unless it has escapes.
#[inline(always)]
fn string(b: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
    let end = plain_end(b, at);
    if b.get(end) == Some(&b'"') {
        let text = std::str::from_utf8(b.get(at..end)?).ok()?;
        return Some((Cow::Borrowed(text), end + 1));
    }
    escaped(b, at)
}

/// [`string`] for one with escapes.
#[cold]
#[inline(never)]
fn escaped(b: &[u8], mut at: usize) -> Option<(Cow<'_, str>, usize)> {
    let mut text = Vec::new();
    loop {
        let end = plain_end(b, at);
        text.extend_from_slice(b.get(at..end)?);
        match b.get(end)? {
            b'"' => return Some((Cow::Owned(String::from_utf8(text).ok()?), end + 1)),
            b'\\' => at = unescape(b, end + 1, &mut text)?,
            _ => return None,
        }
    }
}

/// Appends the escape after the backslash at `at - 1` to `text` as UTF-8; returns the position
/// past it. A surrogate must be the first of a pair, as for serde_json reading a `str`.
fn unescape(b: &[u8], mut at: usize, text: &mut Vec<u8>) -> Option<usize> {
    let byte = match *b.get(at)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let unit = hex4(b, at + 1)?;
            at += 5;
            let code = match unit {
                0xD800..=0xDBFF => {
                    if b.get(at..at + 2)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(b, at + 2)?;
                    at += 6;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    0x1_0000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                }
                _ => u32::from(unit),
            };
            let c = char::from_u32(code)?;
            text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Some(at);
        }
        _ => return None,
    };
    text.push(byte);
    Some(at + 1)
}

/// The four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 4)?.iter().try_fold(0u16, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | u16::try_from(nibble).ok()?)
    })
}

/// Skips a string whose opening quote is at `at - 1`; returns the position past its closing quote.
/// Checked as serde_json checks a string it ignores: valid escapes (any `\\u` code unit, UTF-8 not
/// checked), no raw control characters.
#[inline(always)]
fn skip_string(b: &[u8], at: usize) -> Option<usize> {
    let end = plain_end(b, at);
    if b.get(end) == Some(&b'"') {
        return Some(end + 1);
    }
    skip_string_slow(b, end)
}

/// [`skip_string`] for one with escapes.
#[inline(never)]
fn skip_string_slow(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at = plain_end(b, at);
        match b.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => {
                at += match b.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' => {
                        hex4(b, at + 2)?;
                        6
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

/// Skips the value at `at` (past any whitespace before it); returns the position past it.
#[inline(always)]
fn skip_value(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'"' => skip_string(b, at + 1),
        b'-' | b'0'..=b'9' => number(b, at),
        _ => skip_value_slow(b, at),
    }
}

/// [`skip_value`] for a literal or a container of any depth, keeping only whether each open
/// container is an object.
#[inline(never)]
fn skip_value_slow(b: &[u8], mut at: usize) -> Option<usize> {
    let mut open = Containers::default();
    loop {
        at = ws(b, at);
        match b.get(at)? {
            b'"' => at = skip_string(b, at + 1)?,
            b'n' => at = literal(b, at, b"null")?,
            b't' => at = literal(b, at, b"true")?,
            b'f' => at = literal(b, at, b"false")?,
            b'-' | b'0'..=b'9' => at = number(b, at)?,
            bracket @ (b'{' | b'[') => {
                let object = *bracket == b'{';
                at = ws(b, at + 1);
                if b.get(at)? == if object { &b'}' } else { &b']' } {
                    at += 1;
                } else {
                    open.push(object);
                    if object {
                        at = member_key(b, at)?;
                    }
                    continue;
                }
            }
            _ => return None,
        }
        // A value ended: close what it ends, or go on to the next element.
        loop {
            let Some(object) = open.top() else {
                return Some(at);
            };
            at = ws(b, at);
            match b.get(at)? {
                b',' => {
                    at += 1;
                    if object {
                        at = member_key(b, ws(b, at))?;
                    }
                    break;
                }
                b'}' if object => {
                    at += 1;
                    open.pop();
                }
                b']' if !object => {
                    at += 1;
                    open.pop();
                }
                _ => return None,
            }
        }
    }
}

/// A nested object's key at `at` and its colon; returns the position past the colon.
fn member_key(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let at = ws(b, skip_string(b, at + 1)?);
    (b.get(at) == Some(&b':')).then_some(at + 1)
}

fn literal(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let end = at + word.len();
    (b.get(at..end)? == word).then_some(end)
}

/// A number as JSON writes them: digits after a point and in an exponent. A leading zero followed
/// by a digit ends the number there, and the digit is then refused where it stands.
fn number(b: &[u8], mut at: usize) -> Option<usize> {
    if b.get(at) == Some(&b'-') {
        at += 1;
    }
    match b.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(b, at + 1),
        _ => return None,
    }
    if b.get(at) == Some(&b'.') {
        let end = digits(b, at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = b.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = b.get(at) {
            at += 1;
        }
        let end = digits(b, at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

fn digits(b: &[u8], mut at: usize) -> usize {
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// The containers a skipped value has open, innermost last: a bit each (set for an object), 64 to
/// a word, so nesting of any depth costs no allocation until it passes 64.
#[derive(Default)]
struct Containers {
    depth: usize,
    innermost: u64,
    outer: Vec<u64>,
}

impl Containers {
    fn push(&mut self, object: bool) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.outer.push(self.innermost);
            self.innermost = 0;
        }
        self.innermost = self.innermost << 1 | u64::from(object);
        self.depth += 1;
    }
    /// Whether the innermost open container is an object; `None` when none is open.
    fn top(&self) -> Option<bool> {
        (self.depth > 0).then_some(self.innermost & 1 == 1)
    }
    fn pop(&mut self) {
        self.innermost >>= 1;
        self.depth = self.depth.saturating_sub(1);
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.innermost = self.outer.pop().unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests;
