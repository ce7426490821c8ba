// Package runtime builds the OCI runtime spec of a container (namespaces,
// cgroups, seccomp, capabilities, masked paths, mounts, limits) and defines
// the Runtime interface that runs it (runtime/libct: runc's libcontainer).
// It is pure Go: packages that only talk to hostd can import it without cgo.
package runtime
