"""Running messages: claim, run the step's adapters, commit, retry, lease."""
