//! What a token request may get: the ceiling its client's registration or its exchange rule sets,
//! narrowed by the requested `scope`. Scope values name tools, `tool:<name-or-glob>`, space
//! separated; no scope, or `tool:*`, means the whole ceiling; a scope outside it is refused, never
//! dropped.

use intentgate_core::glob;

use super::error::{OAuthError, OAuthResult};
use crate::tokens::issue::{MAX_TOOLS, MAX_TTL_SECONDS};

pub const SCOPE_PREFIX: &str = "tool:";
/// The scope of a grant without a tool restriction.
pub const ALL_TOOLS: &str = "tool:*";

/// The most a grant may give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// The agent the token names (`sub`).
    pub subject: String,
    /// `None`: any tool.
    pub tools: Option<Vec<String>>,
    pub ttl_seconds: u64,
    pub max_calls: Option<u64>,
    pub step_up: bool,
}

impl Ceiling {
    /// This ceiling also held to `other` (a client's registration under which an exchange rule's
    /// grant is requested): the tools both allow, the shorter lifetime, the smaller budget, and
    /// step-up only when both stamp it. Two patterns neither of which contains the other are both
    /// left out: that may narrow more than needed, never less.
    pub fn within(mut self, other: &Ceiling) -> Ceiling {
        self.tools = match (self.tools, &other.tools) {
            (None, None) => None,
            (Some(mine), None) => Some(mine),
            (None, Some(theirs)) => Some(theirs.clone()),
            (Some(mine), Some(theirs)) => Some(intersect(&mine, theirs)),
        };
        self.ttl_seconds = self.ttl_seconds.min(other.ttl_seconds);
        self.max_calls = match (self.max_calls, other.max_calls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.step_up &= other.step_up;
        self
    }

    /// The ceiling narrowed to `requested` tools (`None`: all of it).
    pub fn narrowed(mut self, requested: Option<Vec<String>>) -> OAuthResult<Ceiling> {
        if let Some(requested) = requested {
            if let Some(allowed) = &self.tools {
                let outside: Vec<&str> = requested
                    .iter()
                    .filter(|tool| !allowed.iter().any(|a| glob::contains(a, tool)))
                    .map(String::as_str)
                    .collect();
                if !outside.is_empty() {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope outside the grant: {}",
                        outside
                            .iter()
                            .map(|t| format!("{SCOPE_PREFIX}{t}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )));
                }
            }
            self.tools = Some(requested);
        }
        if self.tools.as_ref().is_some_and(Vec::is_empty) {
            return Err(OAuthError::invalid_scope(
                "the grant and the client's registration allow no tool in common",
            ));
        }
        self.ttl_seconds = self.ttl_seconds.min(MAX_TTL_SECONDS);
        Ok(self)
    }
}

/// The patterns of `a` and `b` that both allow: of each pair where one contains the other, the
/// narrower.
pub fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in a {
        for y in b {
            let narrower = if glob::contains(x, y) {
                y
            } else if glob::contains(y, x) {
                x
            } else {
                continue;
            };
            if !out.contains(narrower) {
                out.push(narrower.clone());
            }
        }
    }
    out
}

/// The tools a `scope` parameter asks for; `None` when there is none or it holds `tool:*`. The
/// metadata advertises `tool:*`, and MCP clients ask for what the metadata advertises, so a
/// client registered for some tools must get those, not a refusal; the answer's `scope` says
/// which.
pub fn parse_scope(scope: Option<&str>) -> OAuthResult<Option<Vec<String>>> {
    let Some(scope) = scope else {
        return Ok(None);
    };
    let mut tools: Vec<String> = Vec::new();
    for value in scope.split(' ').filter(|v| !v.is_empty()) {
        let tool = value
            .strip_prefix(SCOPE_PREFIX)
            .filter(|t| !t.is_empty() && t.chars().count() <= 256)
            .ok_or_else(|| {
                OAuthError::invalid_scope(format!(
                    "scope {value:?} is not {SCOPE_PREFIX}<tool name or pattern>"
                ))
            })?;
        if tool.chars().any(char::is_control) || value.contains(['"', '\\']) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {value:?} holds characters a scope may not"
            )));
        }
        if !tools.iter().any(|t| t == tool) {
            tools.push(tool.to_owned());
        }
    }
    if tools.is_empty() {
        return Err(OAuthError::invalid_scope("scope is empty"));
    }
    if tools.len() > MAX_TOOLS {
        return Err(OAuthError::invalid_scope(format!(
            "scope may name at most {MAX_TOOLS} tools"
        )));
    }
    if tools.iter().any(|t| t == "*") {
        return Ok(None);
    }
    Ok(Some(tools))
}

/// The `scope` of a token response: the tools granted.
pub fn granted_scope(tools: Option<&[String]>) -> String {
    match tools {
        None => ALL_TOOLS.to_owned(),
        Some(tools) => tools
            .iter()
            .map(|t| format!("{SCOPE_PREFIX}{t}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::Code;

    fn ceiling(tools: Option<&[&str]>) -> Ceiling {
        Ceiling {
            subject: "agent".into(),
            tools: tools.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            ttl_seconds: 600,
            max_calls: Some(10),
            step_up: true,
        }
    }

    fn owned(tools: &[&str]) -> Vec<String> {
        tools.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_parse_into_tools_and_anything_else_is_invalid_scope() {
        assert_eq!(parse_scope(None).unwrap(), None);
        assert_eq!(
            parse_scope(Some("tool:read_* tool:echo  tool:echo")).unwrap(),
            Some(owned(&["read_*", "echo"]))
        );
        assert_eq!(parse_scope(Some("tool:*")).unwrap(), None);
        assert_eq!(parse_scope(Some("tool:echo tool:*")).unwrap(), None);
        for bad in [
            "",
            " ",
            "read",
            "tool:",
            "openid tool:echo",
            "tool:a\u{7}",
            "tool:* openid",
        ] {
            let err = parse_scope(Some(bad)).unwrap_err();
            assert_eq!(err.code, Code::InvalidScope, "{bad:?}");
        }
    }

    #[test]
    fn a_scope_narrows_the_ceiling_and_one_outside_it_is_refused() {
        let c = ceiling(Some(&["read_*", "echo"]));
        let narrowed = c.clone().narrowed(Some(owned(&["read_invoice"]))).unwrap();
        assert_eq!(narrowed.tools, Some(owned(&["read_invoice"])));
        assert_eq!(c.clone().narrowed(None).unwrap().tools, c.tools);
        let err = c
            .clone()
            .narrowed(Some(owned(&["echo", "write_*"])))
            .unwrap_err();
        assert_eq!(err.code, Code::InvalidScope);
        assert!(
            err.description.contains("tool:write_*"),
            "{}",
            err.description
        );
        let err = c.narrowed(Some(owned(&["*"]))).unwrap_err();
        assert_eq!(err.code, Code::InvalidScope);
        let any = ceiling(None).narrowed(Some(owned(&["*"]))).unwrap();
        assert_eq!(any.tools, Some(owned(&["*"])));
        assert_eq!(granted_scope(None), "tool:*");
        assert_eq!(granted_scope(Some(&owned(&["a", "b*"]))), "tool:a tool:b*");
    }

    #[test]
    fn two_ceilings_meet_at_the_narrower_of_each_limit() {
        let rule = ceiling(Some(&["read_*", "echo", "*_report"]));
        let client = Ceiling {
            subject: "client".into(),
            tools: Some(owned(&["read_invoice", "echo*", "write_*", "daily_*"])),
            ttl_seconds: 300,
            max_calls: None,
            step_up: false,
        };
        let met = rule.within(&client);
        assert_eq!(met.subject, "agent");
        assert_eq!(met.tools, Some(owned(&["read_invoice", "echo"])));
        assert_eq!(
            (met.ttl_seconds, met.max_calls, met.step_up),
            (300, Some(10), false)
        );
        let open = ceiling(None).within(&ceiling(Some(&["echo"])));
        assert_eq!(open.tools, Some(owned(&["echo"])));
        let disjoint = ceiling(Some(&["a"])).within(&ceiling(Some(&["b"])));
        assert_eq!(
            disjoint.narrowed(None).unwrap_err().code,
            Code::InvalidScope
        );
    }
}
