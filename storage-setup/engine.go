package storagesetup

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// EngineDrivers are the storage drivers hostd's engine runs: overlayfs
// snapshots, which overlay and overlay2 both name.
var EngineDrivers = []string{"overlay2", "overlay"}

// CheckEngineOptions reads the storage options this tool wrote for the
// engine (OutputFile, DOCKER_STORAGE_OPTIONS) under root and refuses, by
// name, every one hostd's engine cannot honour: a driver other than
// overlayfs (devicemapper, btrfs...) and any --storage-opt. Accepted options
// need nothing more from hostd. A missing file is fine (nothing asked).
func CheckEngineOptions(root fsroot.Root) error {
	b, err := os.ReadFile(root.Join(OutputFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", OutputFile, err)
	}
	var errs []error
	f := strings.Fields(currentOptions(string(b)))
	for i := 0; i < len(f); i++ {
		opt, val, hasVal := strings.Cut(f[i], "=")
		if !hasVal && i+1 < len(f) && !strings.HasPrefix(f[i+1], "-") {
			val, i = f[i+1], i+1
		}
		switch opt {
		case "--storage-driver", "-s":
			if !slices.Contains(EngineDrivers, val) {
				errs = append(errs, fmt.Errorf("%s: storage driver %q: hostd runs containers on %s only (set STORAGE_DRIVER=overlay2 in %s)", OutputFile, val, strings.Join(EngineDrivers, " or "), DockerSetupFile))
			}
		case "--storage-opt":
			errs = append(errs, fmt.Errorf("%s: --storage-opt %s: hostd's engine has no storage options (EXTRA_STORAGE_OPTIONS in %s)", OutputFile, val, DockerSetupFile))
		default:
			errs = append(errs, fmt.Errorf("%s: option %s is not one hostd's engine knows", OutputFile, opt))
		}
	}
	return errors.Join(errs...)
}
