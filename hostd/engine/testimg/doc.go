// Package testimg builds small test images for the engine's host
// integration tests: a busybox root filesystem (from the host's
// busybox-static) as a directory or an image layer, registries to pull
// from, a check that fails a test on a host without root, overlayfs or
// busybox, and InNetns, which re-runs a test in a network namespace of
// its own so its bridges and iptables rules never touch the host's.
package testimg
