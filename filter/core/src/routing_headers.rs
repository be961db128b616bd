//! MCP 2026-07-28's routing headers: `Mcp-Method` repeats the body's method, and `Mcp-Name` the
//! `params.name` of a `tools/call` or `prompts/get`, or the `params.uri` of a `resources/read`, so
//! that proxies can route on headers alone. A request whose headers disagree with its body is
//! refused with -32020 (HTTP 400), as MCP servers refuse it: otherwise Envoy's routing, a policy
//! reading the headers and the tool server would not all see the same call.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::jsonrpc::{Entry, Message};

pub const MCP_METHOD: &str = "mcp-method";
pub const MCP_NAME: &str = "mcp-name";

/// The methods whose `Mcp-Name` mirrors a parameter, and which parameter.
const NAME_BEARING: [(&str, NameParam); 3] = [
    ("tools/call", NameParam::Name),
    ("prompts/get", NameParam::Name),
    ("resources/read", NameParam::Uri),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameParam {
    Name,
    Uri,
}

impl NameParam {
    const fn as_str(self) -> &'static str {
        match self {
            NameParam::Name => "name",
            NameParam::Uri => "uri",
        }
    }
}

#[derive(Deserialize)]
struct NamedParams<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
}

/// The routing headers a request carried, every value of each (a repeated one is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingHeaders {
    method: Vec<String>,
    name: Vec<String>,
}

impl RoutingHeaders {
    /// Reads them from the request's headers (any case).
    pub fn read<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = RoutingHeaders::default();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(MCP_METHOD) {
                out.method.push(value.to_owned());
            } else if name.eq_ignore_ascii_case(MCP_NAME) {
                out.name.push(value.to_owned());
            }
        }
        out
    }

    /// Why the headers disagree with the body, or `Ok` when they agree (or none was sent).
    pub fn check(&self, message: &Message<'_>) -> Result<(), String> {
        if self.method.is_empty() && self.name.is_empty() {
            return Ok(());
        }
        for (header, values) in [("Mcp-Method", &self.method), ("Mcp-Name", &self.name)] {
            if values.len() > 1 {
                return Err(format!("the {header} header appears more than once"));
            }
        }
        let entry = match message {
            Message::Single(entry) => entry,
            Message::Batch(_) => {
                return Err(
                    "Mcp-Method and Mcp-Name describe one message; a batch cannot carry them"
                        .into(),
                );
            }
        };
        let call = match entry {
            Entry::Call(call) => call,
            // The envelope check answers it.
            Entry::Invalid { .. } => return Ok(()),
            Entry::Response { .. } => {
                return Err("Mcp-Method and Mcp-Name describe a request, not a response".into());
            }
        };
        let method_header = self.method.first();
        if let Some(header) = method_header
            && *header != call.method
        {
            return Err(format!(
                "the Mcp-Method header ({header}) does not match the body's method ({})",
                call.method
            ));
        }
        let Some(param) = NAME_BEARING
            .iter()
            .find(|(method, _)| *method == call.method)
            .map(|(_, param)| *param)
        else {
            return Ok(());
        };
        let params = call
            .params
            .and_then(|raw| serde_json::from_str::<NamedParams<'_>>(raw.get()).ok());
        let Some(body_value) = params.and_then(|p| match param {
            NameParam::Name => p.name,
            NameParam::Uri => p.uri,
        }) else {
            return Ok(());
        };
        let header = self.name.first().map(|raw| decode(raw));
        match header {
            Some(Some(value)) if value == body_value => Ok(()),
            None if method_header.is_none() => Ok(()),
            None => Err(format!(
                "the Mcp-Name header is missing; it must repeat the body's params.{}",
                param.as_str()
            )),
            Some(_) => Err(format!(
                "the Mcp-Name header does not match the body's params.{}",
                param.as_str()
            )),
        }
    }
}

/// A header value as MCP encodes it: verbatim, or `=?base64?<standard base64 of UTF-8>?=`. A
/// malformed encoding (bad or non-canonical base64, bad UTF-8) is `None`: it matches nothing.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    let Some(payload) = raw
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(raw));
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse;

    fn check(headers: &[(&str, &str)], body: &str) -> Result<(), String> {
        let message = parse(body.as_bytes()).unwrap();
        RoutingHeaders::read(headers.iter().copied()).check(&message)
    }

    const CALL: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

    #[test]
    fn headers_that_repeat_the_body_pass_and_none_at_all_passes() {
        assert_eq!(check(&[], CALL), Ok(()));
        assert_eq!(
            check(&[("Mcp-Method", "tools/call"), ("mcp-name", "echo")], CALL),
            Ok(())
        );
        // "echo" in MCP's base64 form.
        assert_eq!(
            check(
                &[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "=?base64?ZWNobw==?=")
                ],
                CALL
            ),
            Ok(())
        );
        let read =
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a b"}}"#;
        assert_eq!(
            check(
                &[
                    ("mcp-method", "resources/read"),
                    ("mcp-name", "file:///a b")
                ],
                read
            ),
            Ok(())
        );
        let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
        assert_eq!(check(&[("mcp-method", "ping")], ping), Ok(()));
    }

    #[test]
    fn headers_that_disagree_with_the_body_are_refused() {
        for headers in [
            &[("mcp-method", "tools/list"), ("mcp-name", "echo")][..],
            &[("mcp-method", "tools/call"), ("mcp-name", "get-env")][..],
            &[("mcp-method", "tools/call")][..],
            &[("mcp-name", "get-env")][..],
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?ZWNobw?="),
            ][..],
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?ZWNobx==?="),
            ][..],
            &[
                ("mcp-method", "tools/call"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ][..],
        ] {
            assert!(check(headers, CALL).is_err(), "{headers:?}");
        }
        let batch = format!("[{CALL}]");
        assert!(check(&[("mcp-method", "tools/call")], &batch).is_err());
        let answer = r#"{"jsonrpc":"2.0","id":9,"result":{}}"#;
        assert!(check(&[("mcp-method", "tools/call")], answer).is_err());
        let reason = check(&[("mcp-method", "tools/list")], CALL).unwrap_err();
        assert!(
            reason.contains("tools/list") && reason.contains("tools/call"),
            "{reason}"
        );
    }
}
