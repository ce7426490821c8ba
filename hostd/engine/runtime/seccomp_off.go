//go:build !seccomp

package runtime

// SeccompSupported: built without -tags seccomp, libcontainer refuses any
// filter, so containers run without one (the build must set the tag).
const SeccompSupported = false
