//! Which JSON-RPC methods MCP defines, and what the gateway does with each.

/// How the gateway treats a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    /// `tools/call`: all four checks.
    ToolCall,
    /// `tools/list`: forwarded after the capability check; the result is filtered to the token's tools.
    ToolList,
    /// Any other method MCP defines: forwarded after the capability check.
    Forwarded,
    /// Not an MCP method: -32601.
    Unknown,
}

pub const TOOLS_CALL: &str = "tools/call";
pub const TOOLS_LIST: &str = "tools/list";

/// Exact method names of the MCP specification a client may send: revision 2025-06-18, plus
/// `server/discover` and `subscriptions/listen` of revision 2026-07-28 (what current clients send first).
const EXACT: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "completion/complete",
    "logging/setLevel",
    // Server-to-client requests; a client has no reason to send them, but they are MCP's.
    "sampling/createMessage",
    "roots/list",
    "elicitation/create",
];

/// Method families MCP defines as a whole.
const PREFIXES: &[&str] = &["resources/", "prompts/", "notifications/"];

pub fn classify(method: &str) -> MethodClass {
    match method {
        TOOLS_CALL => MethodClass::ToolCall,
        TOOLS_LIST => MethodClass::ToolList,
        m if EXACT.contains(&m) => MethodClass::Forwarded,
        m if PREFIXES
            .iter()
            .any(|p| m.len() > p.len() && m.starts_with(p)) =>
        {
            MethodClass::Forwarded
        }
        _ => MethodClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_methods_are_classified() {
        assert_eq!(classify("tools/call"), MethodClass::ToolCall);
        assert_eq!(classify("tools/list"), MethodClass::ToolList);
        for m in [
            "initialize",
            "ping",
            "resources/list",
            "resources/templates/list",
            "prompts/get",
            "notifications/initialized",
            "completion/complete",
            "logging/setLevel",
            "server/discover",
            "subscriptions/listen",
        ] {
            assert_eq!(classify(m), MethodClass::Forwarded, "{m}");
        }
        for m in ["tools/delete", "admin/shutdown", "resources/", "", "Ping"] {
            assert_eq!(classify(m), MethodClass::Unknown, "{m}");
        }
    }
}
