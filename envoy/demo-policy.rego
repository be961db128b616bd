# The demo tenant's policy: what `make run` enforces, and a starting point for your own.
package intentgate.policy

import rego.v1

default decision := {"allow": false, "reason": "no rule allows this tool", "rule": "default_deny"}

# Harmless tools of the demo upstream (@modelcontextprotocol/server-everything).
decision := {"allow": true, "rule": "safe_tools"} if {
	input.tool in {"echo", "get-sum", "get-tiny-image", "get-annotated-message", "get-structured-content"}
}

# Reading the server's environment could leak secrets: never.
decision := {"allow": false, "reason": "environment access is not allowed", "rule": "no_env"} if {
	input.tool == "get-env"
}
