// Package launch is the shim's launcher (cmd/hostd-launch, `hostd-launch
// launch ARGS`): run by the lean shim (cmd/hostd-shim) with the shim's own
// arguments, it starts the container of <dir>/spec.json through the
// runtime (libcontainer, which the shim does not link) on the descriptors
// the shim hands it, reports the init's pid and exits, leaving the init to
// the shim, its subreaper.
package launch
