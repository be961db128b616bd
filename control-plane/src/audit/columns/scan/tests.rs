//! The scanner against serde_json: the same seven fields, or the same refusal, for every body.

use std::borrow::Cow;

use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use serde::Deserialize;
use serde_json::json;

use super::fields;

const NAMES: [&str; 7] = [
    "tenant", "id", "ts", "event", "decision", "tool", "agent_id",
];

/// What the column check read before: serde_json deserializing the seven fields.
#[derive(Deserialize)]
struct Parsed<'a> {
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    decision: Cow<'a, str>,
    #[serde(borrow)]
    tool: Cow<'a, str>,
    #[serde(borrow)]
    agent_id: Cow<'a, str>,
}

fn parsed(body: &[u8]) -> Option<[String; 7]> {
    // serde reads a struct from a JSON array too; an event body is never one.
    if body.iter().find(|b| !b" \n\t\r".contains(b)) == Some(&b'[') {
        return None;
    }
    let p: Parsed = serde_json::from_slice(body).ok()?;
    Some(
        [
            p.tenant, p.id, p.ts, p.event, p.decision, p.tool, p.agent_id,
        ]
        .map(Cow::into_owned),
    )
}

fn scanned(body: &[u8]) -> Option<[String; 7]> {
    fields(body).map(|f| f.map(Cow::into_owned))
}

fn agree(body: &[u8]) -> Option<[String; 7]> {
    let expected = parsed(body);
    assert_eq!(
        scanned(body),
        expected,
        "{:?}",
        String::from_utf8_lossy(body)
    );
    expected
}

const SEVEN: &str =
    r#""tenant":"acme","id":"i","ts":"t","event":"e","decision":"d","tool":"x","agent_id":"g""#;

fn object(members: &str) -> Vec<u8> {
    format!("{{{members}}}").into_bytes()
}

#[test]
fn a_canonical_event_gives_its_fields() {
    let mut event = AuditEvent::new(
        "ev-\u{1}\"1".into(),
        1_781_444_520_000,
        EventKind::ToolCall,
        AuditDecision::Deny,
    );
    let args =
        json!({"tenant": "not-acme", "nested": {"id": "x", "tool": ["tool", {"agent_id": 1}]}});
    event = event.with_tool("say \"hi\"\u{e9}\u{1F600}\\", args.as_object());
    event.tenant = "acme".into();
    event.agent_id = "bot\n".into();
    event.intent_summary = "\"tenant\":\"evil\"".into();
    let body = event.canonical();
    let expected = [
        "acme",
        "ev-\u{1}\"1",
        event.ts.as_str(),
        "intentgate.tool_call",
        "deny",
        "say \"hi\"\u{e9}\u{1F600}\\",
        "bot\n",
    ]
    .map(String::from);
    assert_eq!(agree(body.as_bytes()), Some(expected));
    // Fields without escapes are borrowed from the body.
    let read = fields(body.as_bytes()).unwrap();
    assert!(matches!(read[0], Cow::Borrowed("acme")));
    assert!(matches!(read[5], Cow::Owned(_)));
}

#[test]
fn a_key_of_the_same_name_inside_a_value_is_not_a_field() {
    let body = object(&format!(
        r#""a":{{"tenant":"evil","id":["tenant"]}},{SEVEN},"z":[{{"tool":"evil"}}]"#
    ));
    assert_eq!(agree(&body).unwrap()[0], "acme");
    let body = object(
        r#""a":{"tenant":"evil","id":"i","ts":"t","event":"e","decision":"d","tool":"x","agent_id":"g"}"#,
    );
    assert_eq!(agree(&body), None);
}

#[test]
fn whatever_serde_refuses_gives_none() {
    for body in [
        // Missing, repeated, or not a string.
        object(r#""tenant":"acme""#),
        object(&format!(r#"{SEVEN},"tool":"y""#)),
        object(&format!(r#"{SEVEN},"t\u006fol":"y""#)),
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":7"#)),
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":null"#)),
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":["x"]"#)),
        // Not one object.
        b"[\"acme\",\"i\",\"t\",\"e\",\"d\",\"x\",\"g\"]".to_vec(),
        format!("{}{{}}", String::from_utf8_lossy(&object(SEVEN))).into_bytes(),
        format!("{} x", String::from_utf8_lossy(&object(SEVEN))).into_bytes(),
        object(SEVEN)[..object(SEVEN).len() - 1].to_vec(),
        b"".to_vec(),
        b"not json".to_vec(),
        // Invalid around the fields.
        object(&format!(r#"{SEVEN},"#)),
        object(&format!(r#"{SEVEN},"a":[1,]"#)),
        object(&format!(r#"{SEVEN},"a":{{"b":1,}}"#)),
        object(&format!(r#"{SEVEN},"a":[1}}"#)),
        object(&format!(r#"{SEVEN},"a":01"#)),
        object(&format!(r#"{SEVEN},"a":1."#)),
        object(&format!(r#"{SEVEN},"a":-"#)),
        object(&format!(r#"{SEVEN},"a":1e"#)),
        object(&format!(r#"{SEVEN},"a":nul"#)),
        object(&format!(r#"{SEVEN},"a":"\x""#)),
        object(&format!(r#"{SEVEN},"a":"\u12g4""#)),
        object(&format!("{SEVEN},\"a\":\"\u{1}\"")),
        object(&format!(r#"{SEVEN},"a" 1"#)),
        object(&format!(r#"{SEVEN} "a":1"#)),
        // Fields and top-level keys decode strictly.
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":"\ud800""#)),
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":"\udc00\ud800""#)),
        object(&SEVEN.replace(r#""tool":"x""#, r#""tool":"\ud800\u0041""#)),
        object(&format!(r#"{SEVEN},"\ud800":1"#)),
        [&object(SEVEN)[..10], b"\xff", &object(SEVEN)[10..]].concat(),
    ] {
        assert_eq!(agree(&body), None, "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn what_serde_ignores_is_checked_as_serde_checks_it() {
    // Skipped strings may hold lone surrogates and bytes that are not UTF-8; nesting has no limit.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let mixed = format!("{}1{}", "[{\"a\":".repeat(200), "}]".repeat(200));
    for tail in [
        r#""a":"\ud800""#.to_string(),
        "\"a\":\"\u{7f}\"".to_string(),
        r#""a":[-0.5e+7,0,1E2,true,false,null,{},[],"x"]"#.to_string(),
        format!("\"a\":{deep}"),
        format!("\"a\":{mixed}"),
    ] {
        let body = object(&format!(" {SEVEN} ,\r\n\t{tail} "));
        assert!(agree(&body).is_some(), "{tail:.60}");
    }
    let body = object(&format!("{SEVEN},\"a\":\"\u{e9}\""));
    let latin1: Vec<u8> = body.iter().copied().filter(|&b| b != 0xc3).collect();
    assert!(agree(&latin1).is_some());
    // Escaped keys name the same fields.
    let body = object(&SEVEN.replace("\"tenant\"", r#""ten\u0061nt""#));
    assert_eq!(agree(&body).unwrap()[0], "acme");
}

/// A small deterministic generator (xorshift64*), so a failure is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const CHARS: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    '0',
    '-',
    '_',
    ' ',
    '/',
    '"',
    '\\',
    ':',
    ',',
    '{',
    '}',
    '[',
    ']',
    '\0',
    '\n',
    '\t',
    '\u{1f}',
    '\u{7f}',
    '\u{e9}',
    '\u{2028}',
    '\u{20ac}',
    '\u{ffff}',
    '\u{1F600}',
];

fn text(rng: &mut Rng) -> String {
    if rng.one_in(6) {
        return rng.pick(&NAMES).to_string();
    }
    (0..rng.below(12)).map(|_| rng.pick(CHARS)).collect()
}

/// JSON text of `s`, each character written in one of the ways JSON allows.
fn string(rng: &mut Rng, s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        // Now and then a surrogate alone: only a string that is skipped may hold one.
        if rng.one_in(200) {
            out.push_str(rng.pick(&["\\ud83d", "\\udc00", "\\uDBFF\\u0041"]));
        }
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '/' if rng.one_in(2) => Some("\\/"),
            _ => None,
        };
        if let Some(short) = short {
            out.push_str(short);
        } else if c < ' ' || rng.one_in(8) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let hex = format!("\\u{unit:04x}");
                out.push_str(&if rng.one_in(2) {
                    hex.to_uppercase().replacen("\\U", "\\u", 1)
                } else {
                    hex
                });
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn space(rng: &mut Rng) -> &'static str {
    if rng.one_in(4) {
        rng.pick(&[" ", "\n", "\t", "\r", "  \n "])
    } else {
        ""
    }
}

fn value(rng: &mut Rng, depth: usize) -> String {
    let kind = if depth > 3 {
        rng.below(4)
    } else {
        rng.below(6)
    };
    match kind {
        0 => {
            let t = text(rng);
            string(rng, &t)
        }
        1 => rng
            .pick(&["0", "-0", "12", "-3.5", "1e10", "2E-3", "0.5e+7", "100"])
            .into(),
        2 => rng.pick(&["true", "false", "null"]).into(),
        3 => string(rng, ""),
        4 => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| format!("{}{}{}", space(rng), value(rng, depth + 1), space(rng)))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let members: Vec<String> = (0..rng.below(4))
                .map(|_| {
                    let key = text(rng);
                    let key = string(rng, &key);
                    format!(
                        "{key}{}:{}{}",
                        space(rng),
                        space(rng),
                        value(rng, depth + 1)
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

/// An event-like object: the seven fields (now and then one missing, repeated or not a string)
/// among other members, in any order, with any whitespace.
fn body(rng: &mut Rng) -> Vec<u8> {
    let mut members: Vec<(String, String)> = NAMES
        .iter()
        .map(|name| {
            let field = if rng.one_in(40) {
                value(rng, 1)
            } else {
                let t = text(rng);
                string(rng, &t)
            };
            (name.to_string(), field)
        })
        .collect();
    if rng.one_in(30) {
        members.remove(rng.below(members.len()));
    }
    if rng.one_in(30) {
        let again = members[rng.below(members.len())].0.clone();
        members.push((again, string(rng, "again")));
    }
    for _ in 0..rng.below(6) {
        let key = text(rng);
        if !NAMES.contains(&key.as_str()) {
            members.push((key, value(rng, 0)));
        }
    }
    if rng.one_in(2) {
        members.sort();
    } else {
        for i in (1..members.len()).rev() {
            members.swap(i, rng.below(i + 1));
        }
    }
    let members: Vec<String> = members
        .into_iter()
        .map(|(key, field)| {
            format!(
                "{}{}{}:{}{}{}",
                space(rng),
                string(rng, &key),
                space(rng),
                space(rng),
                field,
                space(rng)
            )
        })
        .collect();
    format!("{}{{{}}}{}", space(rng), members.join(","), space(rng)).into_bytes()
}

const NOISE: &[u8] = b"{}[]\":,\\u0123456789-+.eEntrufalsx \n\t\x01\x7f\xc3\xa9\xff";

/// `body` with a few bytes deleted, inserted, replaced or cut off.
fn mutate(rng: &mut Rng, mut body: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        if body.is_empty() {
            break;
        }
        let at = rng.below(body.len());
        match rng.below(5) {
            0 => {
                body.remove(at);
            }
            1 => body.insert(at, rng.pick(NOISE)),
            2 => body[at] = rng.pick(NOISE),
            3 => body.truncate(at),
            _ => {
                let end = (at + 1 + rng.below(8)).min(body.len());
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
        }
    }
    body
}

#[test]
fn agrees_with_serde_on_generated_bodies() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut read, mut mutated_read) = (0, 0);
    for _ in 0..20_000 {
        let body = body(&mut rng);
        read += usize::from(agree(&body).is_some());
        let mutated = mutate(&mut rng, body);
        mutated_read += usize::from(agree(&mutated).is_some());
    }
    // Both kinds of outcome are well represented.
    assert!(read > 8_000, "{read}");
    assert!((500..19_000).contains(&mutated_read), "{mutated_read}");
}

#[test]
fn agrees_with_serde_on_mutated_canonical_events() {
    let mut rng = Rng(42);
    for n in 0..5_000 {
        let mut event = AuditEvent::new(
            format!("ev-{n}"),
            1_781_444_520_000 + n,
            EventKind::ToolCall,
            AuditDecision::Allow,
        );
        let args = json!({"tenant": text(&mut rng), "n": n, "list": [text(&mut rng), {"id": 1.5}]});
        event = event.with_tool(&text(&mut rng), args.as_object());
        event.tenant = text(&mut rng);
        event.agent_id = text(&mut rng);
        let body = event.canonical().into_bytes();
        assert!(agree(&body).is_some());
        agree(&mutate(&mut rng, body));
    }
}
