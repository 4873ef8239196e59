################################################################################
# Upstream's termination watcher (spot interruption warnings and terminations: metrics and
# runner deregistration) is not ported yet (issue 15). This module takes upstream's inputs so
# that configurations calling it plan and apply, creates nothing, and says so at plan time.
################################################################################

variable "config" {
  description = "Upstream's termination-watcher configuration (`features`, `metrics`, `prefix`, `tag_filters`, ...). Accepted, not used yet: the module creates nothing."
  type        = any
}

check "not_implemented" {
  assert {
    condition     = var.config == null # never: the watcher is not here, whatever the configuration
    error_message = "The termination watcher (${try(var.config.prefix, "")}) is not implemented yet: nothing is deployed for it, no spot-interruption metrics or runner deregistration. See docs/migrating.md."
  }
}

output "spot_termination_notification" {
  description = "The spot termination notification watcher (not implemented yet: null)."
  value       = null
}

output "spot_termination_handler" {
  description = "The spot termination handler (not implemented yet: null)."
  value       = null
}

output "deregister_retry" {
  description = "The deregistration retry queue and function (not implemented yet: null)."
  value       = null
}
