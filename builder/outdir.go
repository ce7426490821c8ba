package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// outMarker marks a directory as a build's output, which a later build may
// replace. Outputs made before it existed are known by their manifest.
const outMarker = ".bulkhead-build"

// ErrNotBuildOutput means --out names a non-empty directory that no build
// made: the builder runs as root and will not delete someone's files.
var ErrNotBuildOutput = errors.New("not empty and not a previous build's output")

// checkOutDir accepts a missing or empty directory, or a previous build's
// output: its marker, or (made before the marker existed) a manifest.json
// that reads as a build manifest. Anything else is refused, so is a file.
func checkOutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking output directory %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	}
	if st, err := os.Lstat(filepath.Join(dir, outMarker)); err == nil && st.Mode().IsRegular() {
		return nil
	}
	if st, err := os.Lstat(filepath.Join(dir, manifest.ManifestFile)); err == nil && st.Mode().IsRegular() {
		// Any project may have a manifest.json: only a build's counts.
		if m, err := manifest.Read(dir); err == nil && m.Name != "" && m.Parts[manifest.PartRaw].SHA256 != "" {
			return nil
		}
	}
	return fmt.Errorf("output directory %s: %w; give an empty or new --out", dir, ErrNotBuildOutput)
}

// replaceDir puts the finished build staging at dir: the previous output
// is moved aside, the new one renamed into place, then the old removed.
// Until the second rename the previous build stays whole at dir.
func replaceDir(staging, dir string) error {
	old := dir + ".old"
	if err := checkOutDir(old); err != nil {
		return fmt.Errorf("moving the previous build aside: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("clearing %s: %w", old, err)
	}
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("moving the previous build %s aside: %w", dir, err)
	}
	if err := os.Rename(staging, dir); err != nil {
		_ = os.Rename(old, dir)
		return fmt.Errorf("putting the new build in place at %s: %w", dir, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("removing the previous build %s: %w", old, err)
	}
	return nil
}

// startStaging makes dir+".building", the build's directory until it is
// complete, marked at once so that a build that dies leaves a directory
// the next one knows as its own. A directory of that name that no build
// made is refused, like --out.
func startStaging(dir string) (string, error) {
	staging := dir + ".building"
	if err := checkOutDir(staging); err != nil {
		return "", fmt.Errorf("staging the build: %w", err)
	}
	if err := os.RemoveAll(staging); err != nil {
		return "", fmt.Errorf("clearing %s: %w", staging, err)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return "", fmt.Errorf("making %s: %w", staging, err)
	}
	if err := os.WriteFile(filepath.Join(staging, outMarker), []byte("building\n"), 0o644); err != nil {
		return "", fmt.Errorf("marking %s as a build output: %w", staging, err)
	}
	return staging, nil
}
