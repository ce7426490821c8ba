// Package shim is the per-container process (cmd/hostd-shim): it starts
// the container of <dir>/spec.json through a Starter (package
// shim/launch: the runtime, in the shim's own process), is its init's
// parent and subreaper, owns its stdio (output to rotating logs in <dir>,
// input of -i containers from <dir>/stdin.sock), waits for it and records
// the exit status in <dir>/exit.json, so a container outlives a hostd
// restart.
package shim
