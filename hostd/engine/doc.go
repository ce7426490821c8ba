// Package engine is hostd's embedded container engine: it ties the image
// store (image, layer), per-container overlay snapshots (snapshot), the
// libcontainer runtime (runtime) and the per-container shim (shim) together.
// Everything it keeps lives under one root directory (/var/lib/hostd).
package engine
