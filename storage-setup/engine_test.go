package storagesetup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

func TestCheckEngineOptions(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string // each must be in the error; none: no error
	}{
		{"no file", "", nil},
		{"overlay2", `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"`, nil},
		{"overlay short", `DOCKER_STORAGE_OPTIONS="-s overlay"`, nil},
		{"empty", `DOCKER_STORAGE_OPTIONS=""`, nil},
		{"devicemapper", `DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt dm.fs=xfs --storage-opt dm.thinpooldev=/dev/mapper/vg-pool"`,
			[]string{`storage driver "devicemapper"`, "--storage-opt dm.fs=xfs", "--storage-opt dm.thinpooldev=/dev/mapper/vg-pool"}},
		{"extra options", `DOCKER_STORAGE_OPTIONS="--storage-driver=overlay2 --storage-opt overlay2.size=10G"`, []string{"--storage-opt overlay2.size=10G"}},
		{"unknown flag", `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2 --data-root /srv"`, []string{"option --data-root"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.file != "" {
				if err := os.MkdirAll(filepath.Join(root, "etc/sysconfig"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, OutputFile), []byte(c.file+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckEngineOptions(fsroot.Root(root))
			if len(c.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want it to name %q", err, w)
				}
			}
		})
	}
}
