// Package testimg builds small test images for the engine's host
// integration tests: a busybox root filesystem (from the host's
// busybox-static) as a directory or an image layer, and test skips for
// missing root, overlayfs or busybox.
package testimg
