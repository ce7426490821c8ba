package builder

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Version is the builder's version, set at link time (-X) by make bin.
var Version = "dev"

// ErrLockMismatch means the root tree's packages are not the ones a
// --locked build was given.
var ErrLockMismatch = errors.New("the root tree's packages differ from the lock")

// treePackages lists the packages installed in tree (its dpkg status) with
// the sha256 of each one's .deb in debs, the archive cache mmdebstrap
// filled while making the tree. A package whose .deb is not there is an
// error: the lock would not say what was installed.
func treePackages(tree, debs string) ([]manifest.Package, error) {
	statusPath, err := inRoot(tree, "/var/lib/dpkg/status")
	if err != nil {
		return nil, err
	}
	status, err := os.ReadFile(statusPath)
	if err != nil {
		return nil, fmt.Errorf("listing the root tree's packages: %w", err)
	}
	pkgs, err := parseDpkgStatus(status)
	if err != nil {
		return nil, fmt.Errorf("listing the root tree's packages from %s: %w", statusPath, err)
	}
	var missing []string
	for i, p := range pkgs {
		_, sum, err := manifest.HashFile(filepath.Join(debs, debFileName(p)))
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, debFileName(p))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("locking package %s: %w", p.Name, err)
		}
		pkgs[i].SHA256 = sum
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("locking the root tree's packages: %d .deb files are not in %s (%s): refresh the tree (builder cache refresh)",
			len(missing), debs, strings.Join(missing, ", "))
	}
	return pkgs, nil
}

// parseDpkgStatus returns the installed packages of a dpkg status file
// (stanzas whose Status is "install ok installed"), sorted by name and
// architecture, without hashes.
func parseDpkgStatus(status []byte) ([]manifest.Package, error) {
	var pkgs []manifest.Package
	var cur manifest.Package
	installed := false
	flush := func() {
		if installed && cur.Name != "" {
			pkgs = append(pkgs, cur)
		}
		cur, installed = manifest.Package{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") {
			continue // a continuation line
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Package":
			cur.Name = val
		case "Version":
			cur.Version = val
		case "Architecture":
			cur.Architecture = val
		case "Status":
			installed = val == "install ok installed"
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if p.Version == "" || p.Architecture == "" {
			return nil, fmt.Errorf("package %s has no version or architecture", p.Name)
		}
	}
	slices.SortFunc(pkgs, func(a, b manifest.Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Architecture, b.Architecture))
	})
	return pkgs, nil
}

// debFileName is the name apt gives a downloaded package in its archive
// cache: the epoch's colon is escaped.
func debFileName(p manifest.Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Architecture + ".deb"
}

// DiffPackages compares a lock with a tree's packages and describes each
// difference, one line per package, sorted; none when they match.
func DiffPackages(lock, tree []manifest.Package) []string {
	return diffPackages(lock, tree, "lock", "tree")
}

// diffPackages is DiffPackages with the two lists' names for the messages.
func diffPackages(lock, tree []manifest.Package, lockName, treeName string) []string {
	key := func(p manifest.Package) string { return p.Name + ":" + p.Architecture }
	want := map[string]manifest.Package{}
	for _, p := range lock {
		want[key(p)] = p
	}
	var diffs []string
	seen := map[string]bool{}
	for _, p := range tree {
		k := key(p)
		seen[k] = true
		w, ok := want[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s %s: in the %s, not in the %s", k, p.Version, treeName, lockName))
		case w.Version != p.Version:
			diffs = append(diffs, fmt.Sprintf("%s: %s %s, %s %s", k, lockName, w.Version, treeName, p.Version))
		case w.SHA256 != p.SHA256:
			diffs = append(diffs, fmt.Sprintf("%s %s: .deb sha256 %s %s, %s %s", k, p.Version, lockName, w.SHA256, treeName, p.SHA256))
		}
	}
	for k, w := range want {
		if !seen[k] {
			diffs = append(diffs, fmt.Sprintf("%s %s: in the %s, not in the %s", k, w.Version, lockName, treeName))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// ReadLock reads a package lock: a build's manifest.json, or the output
// directory that holds one.
func ReadLock(path string) ([]manifest.Package, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, manifest.ManifestFile)
	}
	m, err := manifest.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the package lock: %w", err)
	}
	if len(m.Packages) == 0 {
		return nil, fmt.Errorf("reading the package lock: %s lists no packages (made by a builder without package locks?)", path)
	}
	return m.Packages, nil
}

// checkLock refuses a tree whose packages are not the lock's.
func checkLock(lock, tree []manifest.Package) error {
	diffs := DiffPackages(lock, tree)
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%d): %s", ErrLockMismatch, len(diffs), strings.Join(diffs, "; "))
}

// saveLock and loadLock keep a cached tree's package lock beside it.
func saveLock(path string, pkgs []manifest.Package) error {
	b, err := json.MarshalIndent(pkgs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the root tree's package lock: %w", err)
	}
	return nil
}

func loadLock(path string) ([]manifest.Package, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pkgs []manifest.Package
	if err := json.Unmarshal(b, &pkgs); err != nil {
		return nil, fmt.Errorf("reading the root tree's package lock %s: %w", path, err)
	}
	return pkgs, nil
}

// builderTool is this builder's version and Go release.
func builderTool() manifest.Tool {
	return manifest.Tool{Version: Version, GoVersion: runtime.Version()}
}

// versionFlag is the -X flag make bin links every binary's version with.
const versionFlag = "-X github.com/bulkhead-os/bulkhead/hostd.Version="

// binaryInfo describes an installed program: its sha256 and, for a Go
// binary, its Go release and version from the build information Go
// embeds: the -X version when the build information has the -ldflags (Go
// leaves them out of a -trimpath build, as make bin's), else the module's
// version. A program that is not a Go binary has only its hash, which
// names the exact binary in every case.
func binaryInfo(name string, data []byte) manifest.Binary {
	b := manifest.Binary{Name: name, SHA256: sha256Hex(data)}
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return b
	}
	b.GoVersion = info.GoVersion
	b.Version = linkedVersion(info)
	return b
}

// askVersion lists the binaries that answer --version (cobra's "NAME
// version V"): make bin links their version with -X, which a -trimpath
// build leaves out of the build information.
var askVersion = map[string]bool{"hostd": true}

// askVersion runs a binary with --version and returns the version it
// prints, or fallback when it prints none.
func (s *buildState) askVersion(ctx context.Context, path, fallback string) string {
	out, err := s.b.Runner.Run(ctx, run.Cmd{Name: path, Args: []string{"--version"}})
	if f := strings.Fields(string(out)); err == nil && len(f) == 3 && f[1] == "version" {
		return f[2]
	}
	return fallback
}

// linkedVersion finds the version given with -X in the binary's -ldflags.
func linkedVersion(info *debug.BuildInfo) string {
	for _, s := range info.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		for _, f := range strings.Fields(s.Value) {
			f = strings.Trim(f, `"'`)
			if v, ok := strings.CutPrefix(f, strings.TrimPrefix(versionFlag, "-X ")); ok {
				return v
			}
		}
	}
	return info.Main.Version
}
