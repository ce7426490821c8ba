// Package launch starts a shim's container (shim.Starter): it reads the
// OCI spec the engine wrote into the container's directory and has the
// runtime (runtime/libct in cmd/hostd-shim) create and start it, with the
// init as the shim's child. It is apart from package shim so that the
// shim's own logic links no runtime implementation (libcontainer, cgo)
// and its tests need none.
package launch
