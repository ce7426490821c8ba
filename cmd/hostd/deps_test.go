package main

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the packages pkg links (go list -deps).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestHostBinaryDoesNotLinkBuilder keeps the image builder (and what it
// drags in: disk, filesystem and GRUB tooling) out of the on-host binary.
// The boot contract and the build manifest the two share live in
// internal/bootabi, internal/grubenv and internal/manifest.
func TestHostBinaryDoesNotLinkBuilder(t *testing.T) {
	for _, pkg := range deps(t, "github.com/bulkhead-os/bulkhead/cmd/hostd") {
		if pkg == "github.com/bulkhead-os/bulkhead/builder" || strings.HasPrefix(pkg, "github.com/bulkhead-os/bulkhead/builder/") {
			t.Errorf("cmd/hostd links %s", pkg)
		}
	}
}

// TestShimStaysLean keeps hostd-shim lean: one runs per container for
// its whole life, and it starts at every container start (and again as
// the container's init), so it links the runtime but not hostd's API,
// registry client, CLI, YAML or HTTP.
func TestShimStaysLean(t *testing.T) {
	banned := []string{"github.com/spf13/", "gopkg.in/yaml", "sigs.k8s.io/yaml", "net/http", "github.com/google/go-containerregistry",
		"github.com/bulkhead-os/bulkhead/hostd/engine/image", "github.com/bulkhead-os/bulkhead/hostd/dockerapi"}
	for _, pkg := range deps(t, "github.com/bulkhead-os/bulkhead/cmd/hostd-shim") {
		for _, b := range banned {
			if strings.HasPrefix(pkg, b) {
				t.Errorf("cmd/hostd-shim links %s", pkg)
			}
		}
	}
}

// TestHostBinariesDoNotLinkChunker keeps desync and the cloud storage
// clients it links (S3 through minio, GCS, SFTP, FUSE) out of what runs on
// the host: with them hostd grew from 26 to 45 MB, spent 47 ms in package
// init at every start and its PSS broke the memory target. Hosts read
// delta updates with updater/casync and updater/delta; only the builder
// links updater/delta/chunker.
func TestHostBinariesDoNotLinkChunker(t *testing.T) {
	banned := []string{"github.com/folbricht/", "github.com/bulkhead-os/bulkhead/updater/delta/chunker",
		"github.com/minio/", "cloud.google.com/", "google.golang.org/api", "github.com/pkg/sftp",
		"github.com/hanwen/go-fuse", "github.com/DataDog/zstd", "go.opentelemetry.io/", "golang.org/x/oauth2",
		"github.com/aws/aws-sdk-go/", "github.com/aws/aws-sdk-go-v2/service/"}
	for _, cmd := range []string{"hostd", "hostctl", "hostd-shim"} {
		for _, pkg := range deps(t, "github.com/bulkhead-os/bulkhead/cmd/"+cmd) {
			for _, b := range banned {
				if strings.HasPrefix(pkg, b) {
					t.Errorf("cmd/%s links %s", cmd, pkg)
				}
			}
		}
	}
}
