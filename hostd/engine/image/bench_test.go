package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BenchmarkPullUnpack pulls and unpacks a 6-layer image (6 x 4 MiB of
// random files) from a loopback registry: hostd's store, and skopeo copy +
// umoci unpack (apt packages skopeo, umoci) when installed.
func BenchmarkPullUnpack(b *testing.B) {
	host := testRegistry(b, nil)
	var layers []v1.Layer
	for range 6 {
		l, err := random.Layer(4<<20, types.DockerLayer)
		if err != nil {
			b.Fatal(err)
		}
		layers = append(layers, l)
	}
	ref := host + "/bench:latest"
	push(b, ref, imageOf(b, layers...))
	b.Run("hostd", func(b *testing.B) {
		for b.Loop() {
			s := openStore(b, Options{Insecure: []string{host}, Root: b.TempDir()})
			if _, err := s.Pull(context.Background(), ref); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("skopeo+umoci", func(b *testing.B) {
		for _, tool := range []string{"skopeo", "umoci"} {
			if _, err := exec.LookPath(tool); err != nil {
				b.Skipf("needs %s: apt-get install %s", tool, tool)
			}
		}
		for i := 0; b.Loop(); i++ {
			dir := b.TempDir()
			oci := filepath.Join(dir, "oci")
			if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+oci+":latest").CombinedOutput(); err != nil {
				b.Fatalf("skopeo: %v: %s", err, out)
			}
			if out, err := exec.Command("umoci", "unpack", "--image", oci+":latest", filepath.Join(dir, fmt.Sprint("bundle", i))).CombinedOutput(); err != nil {
				b.Fatalf("umoci: %v: %s", err, out)
			}
			os.RemoveAll(dir)
		}
	})
}
