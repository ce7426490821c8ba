// Package run is the one way Bulkhead runs external programs (mkfs, lvm,
// qemu-img, veritysetup, ...). Components take a Runner; production code uses
// Exec, tests use Recorder to capture argv and compare it with golden files.
// It touches nothing on disk itself.
package run
