# A sample tenant policy: reads pass, small transfers pass, large ones wait for a human,
# deleting an account needs a fresh second factor, everything else is denied.
package intentgate.policy

import rego.v1

default decision := {"allow": false, "reason": "tool is not on the allow list", "rule": "default_deny"}

decision := {"allow": true, "rule": "reads"} if {
	glob.match("read_*", [], input.tool)
}

decision := {"allow": true, "rule": "reads"} if {
	glob.match("list_*", [], input.tool)
}

decision := {"allow": true, "rule": "small_transfer"} if {
	input.tool == "transfer_funds"
	input.args.amount <= 1000
}

decision := {"allow": false, "escalate": true, "reason": "transfers above 1000 need approval", "rule": "large_transfer"} if {
	input.tool == "transfer_funds"
	input.args.amount > 1000
}

decision := {"allow": false, "reason": "deleting an account needs a fresh second factor", "rule": "delete_needs_step_up", "requires_step_up": true} if {
	input.tool == "delete_account"
	not input.capability.step_up_at
}

decision := {"allow": true, "rule": "delete_with_step_up"} if {
	input.tool == "delete_account"
	input.now - input.capability.step_up_at < 300
}
