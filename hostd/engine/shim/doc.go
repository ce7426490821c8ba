// Package shim is the per-container process (`hostd shim`): it starts the
// container from <dir>/spec.json with libcontainer, owns its stdio (output
// to rotating logs in <dir>, input of -i containers from <dir>/stdin.sock),
// waits for it and records the exit status in <dir>/exit.json, so a
// container outlives a hostd restart.
package shim
