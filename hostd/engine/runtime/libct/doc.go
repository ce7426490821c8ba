// Package libct is the engine's container runtime: runc's libcontainer
// (pinned) behind runtime.Runtime. It needs cgo, and the binary that uses it
// must import libcontainer/nsenter and call Init for "init" (cmd/hostd does).
// State lives under the state root it is given (/run/hostd/runc).
package libct
