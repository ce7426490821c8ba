// Package shim is the per-container process (cmd/hostd-shim, a few MB):
// it has the launcher (cmd/hostd-launch, package shim/launch) start the
// container of <dir>/spec.json and adopts its init as subreaper, owns its
// stdio (output to rotating logs in <dir>, input of -i containers from
// <dir>/stdin.sock), waits for it and records the exit status in
// <dir>/exit.json, so a container outlives a hostd restart.
package shim
