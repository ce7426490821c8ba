//go:build seccomp

package runtime

// SeccompSupported: built with -tags seccomp, libcontainer loads filters
// through libseccomp (cgo, libseccomp-dev at build time).
const SeccompSupported = true
