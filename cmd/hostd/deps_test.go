package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHostBinaryDoesNotLinkBuilder keeps the image builder (and what it
// drags in: disk, filesystem and GRUB tooling) out of the on-host binary.
// The boot contract and the build manifest the two share live in
// internal/bootabi, internal/grubenv and internal/manifest.
func TestHostBinaryDoesNotLinkBuilder(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/bulkhead-os/bulkhead/cmd/hostd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/bulkhead-os/bulkhead/builder" || strings.HasPrefix(pkg, "github.com/bulkhead-os/bulkhead/builder/") {
			t.Errorf("cmd/hostd links %s", pkg)
		}
	}
}
