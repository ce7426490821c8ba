package image

import (
	"context"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// TestPullFromDistributionRegistry pulls from a real registry: Debian's
// docker-registry (the CNCF distribution registry), started on loopback.
func TestPullFromDistributionRegistry(t *testing.T) {
	addr := testimg.DistributionRegistry(t, t.TempDir(), "", 0)
	img := imageOf(t, fileLayer(t, map[string]string{"etc/release": "real registry"}), fileLayer(t, map[string]string{"bin/app": "x"}))
	push(t, addr+"/team/app:1.0", img)
	s := openStore(t, Options{Insecure: []string{addr}})
	im, err := s.Pull(context.Background(), addr+"/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayerFile(t, s, im, "etc/release"); got != "real registry" {
		t.Errorf("got %q, want %q", got, "real registry")
	}
	md, _ := img.Digest()
	if im.ManifestDigest != md.String() {
		t.Errorf("got manifest %s, want %s", im.ManifestDigest, md)
	}
}
