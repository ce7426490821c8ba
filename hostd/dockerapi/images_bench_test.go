package dockerapi_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
	"github.com/bulkhead-os/bulkhead/internal/benchtable"
)

// BenchmarkDockerSaveLoad times docker save -o and docker load -i of the
// same 5-layer image (busybox and 4 x 8 MiB of random files) through the
// docker CLI against hostd and against Debian's dockerd 20.10, and prints
// the table: three paired runs per iteration.
func BenchmarkDockerSaveLoad(b *testing.B) {
	testimg.RequireHost(b)
	img := linuxImage(b, v1.Config{Cmd: []string{"sh"}})
	for range 4 {
		l, err := random.Layer(8<<20, types.DockerLayer)
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	backends := []backend{startHostd(b), startDockerd(b)}
	dir := b.TempDir()
	for _, be := range backends {
		testimg.Push(b, be.push+"/big:1", img)
		if out, code := be.docker(b, "pull", "{reg}/big:1"); code != 0 {
			b.Fatalf("%s: pull: %s", be.name, out)
		}
	}
	tab := benchtable.New("ms")
	timed := func(row string, be backend, args ...string) {
		start := time.Now()
		if out, code := be.docker(b, args...); code != 0 {
			b.Fatalf("%s: docker %v: exit %d: %s", be.name, args, code, out)
		}
		tab.Add(row, float64(time.Since(start).Microseconds())/1000)
	}
	// Three paired rounds per iteration: make bench runs one (-benchtime 1x).
	for b.Loop() {
		for range 3 {
			for _, be := range backends {
				f := filepath.Join(dir, be.name+".tar")
				timed(be.name+" save", be, "save", "-o", f, "{reg}/big:1")
				if out, code := be.docker(b, "rmi", "{reg}/big:1"); code != 0 {
					b.Fatalf("%s: rmi: %s", be.name, out)
				}
				timed(be.name+" load", be, "load", "-i", f)
				os.Remove(f)
			}
		}
	}
	b.StopTimer()
	tab.Write(os.Stdout)
}
