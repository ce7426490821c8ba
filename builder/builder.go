package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// DefaultEpoch is the timestamp of every file in an image when
// SOURCE_DATE_EPOCH is not set (2026-01-01T00:00:00Z).
const DefaultEpoch = 1767225600

// Binaries are what the builder installs in /usr/bin from its BinDir:
// hostd (hostctl is a link to it), and from beside it hostd runs the shim
// of each container.
var Binaries = []string{"hostd", "hostd-shim"}

// Links are the other names in /usr/bin of those binaries: hostctl is
// hostd; docker is the shim's `docker system dial-stdio`, what a remote
// docker CLI runs over ssh (DOCKER_HOST=ssh://), and nothing else.
var Links = map[string]string{"hostctl": "hostd", "docker": "hostd-shim"}

// Builder builds images. All fields are required but Log and Progress.
type Builder struct {
	Runner   run.Runner
	Log      *slog.Logger
	Progress io.Writer // step lines and timings for the terminal; nil for none
	CacheDir string    // root trees and the .deb cache, kept across builds
	BinDir   string    // holds the Binaries to install (hostd also runs as hostctl)
	Epoch    int64     // SOURCE_DATE_EPOCH for every timestamp
	// Lock, when set, is the package lock the root tree must match
	// (builder build --locked): a build from other packages fails.
	Lock []manifest.Package
	// Refresh makes the root tree again from the mirror before the build
	// (builder build --refresh): the archive's security updates go in.
	Refresh bool
}

// Build makes out/<...>/disk.raw, disk.qcow2, the payload parts and
// manifest.json from def. outDir is replaced.
func (b *Builder) Build(ctx context.Context, def *images.Definition, outDir string) (*manifest.Build, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("building an image needs root (mmdebstrap, chroot and file ownership in the tree)")
	}
	for _, bin := range Binaries {
		if _, err := os.Stat(filepath.Join(b.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("building %s: a binary to install: %w (build it first, e.g. make bin)", def.Name, err)
		}
	}
	// The output is never deleted blindly: a directory that is not a
	// previous build's is refused before anything is done, and the
	// previous build is replaced only once the new one is complete.
	if err := checkOutDir(outDir); err != nil {
		return nil, err
	}
	unlock, err := b.lockCache()
	if err != nil {
		return nil, err
	}
	defer unlock()
	start := time.Now()
	staging, err := startStaging(outDir)
	if err != nil {
		return nil, err
	}
	s, err := b.newState(def, staging)
	if err != nil {
		return nil, err
	}
	b.progress("building %s %s into %s", def.Name, def.Version, outDir)
	phases := []phase{
		{"root tree", s.rootTree},
		{"customize", s.customize},
		{"kernel modules", s.pruneModules},
		{"factory /etc", s.factoryEtc},
		{"bootloaders", s.bootloaders},
		{"boot chain", s.bootChain},
		{"usr image + verity", s.usrImage},
		{"root image", s.rootImage},
		{"esp", s.esp},
		{"disk.raw", s.disk},
		{"disk.qcow2", s.qcow2},
		{"manifest", s.manifest},
	}
	if err := s.run(ctx, phases); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(s.work); err != nil {
		return nil, fmt.Errorf("removing work directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, outMarker), []byte(def.Name+" "+def.Version+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("marking %s as a build output: %w", staging, err)
	}
	if err := replaceDir(staging, outDir); err != nil {
		return nil, err
	}
	b.progress("built %s %s in %.1fs: %s", def.Name, def.Version, time.Since(start).Seconds(), filepath.Join(outDir, manifest.DiskQcow2))
	return s.m, nil
}

// phase is one step of a build.
type phase struct {
	name string
	fn   func(context.Context) error
}

// run runs phases in order under a umask of 022: the build host's umask
// must not reach a file mode in the image (the process's umask is shared,
// so nothing else in the builder may depend on it meanwhile).
func (s *buildState) run(ctx context.Context, phases []phase) error {
	defer unix.Umask(unix.Umask(0o022))
	for i, p := range phases {
		t := time.Now()
		s.b.progress("[%d/%d] %s", i+1, len(phases), p.name)
		if err := p.fn(ctx); err != nil {
			return fmt.Errorf("building %s %s: %s: %w", s.def.Name, s.def.Version, p.name, err)
		}
		s.b.progress("      %s done in %.1fs", p.name, time.Since(t).Seconds())
	}
	return nil
}

// newState prepares a build into staging: its payload and work
// directories, and a copy of b whose commands run with the same locale,
// time zone and epoch whatever the build host's environment.
func (b *Builder) newState(def *images.Definition, staging string) (*buildState, error) {
	work := filepath.Join(staging, ".work")
	for _, d := range []string{filepath.Join(staging, manifest.PayloadDir), work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("making %s: %w", d, err)
		}
	}
	nb := *b
	nb.Runner = neutralRunner{r: b.Runner, epoch: b.Epoch}
	ids := IDs{Name: def.Name, Version: def.Version}
	s := &buildState{b: &nb, def: def, ids: ids, out: staging, work: work, tree: filepath.Join(work, "tree")}
	s.parts, s.diskSize = Layout(def, ids)
	return s, nil
}

// neutralRunner gives every command the same locale, time zone and
// SOURCE_DATE_EPOCH; a command's own Env still comes last and wins.
type neutralRunner struct {
	r     run.Runner
	epoch int64
}

// neutralEnv is what the build host's environment is overridden with.
func neutralEnv(epoch int64) []string {
	return []string{"TZ=UTC", "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "LANGUAGE=", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)}
}

func (n neutralRunner) Run(ctx context.Context, c run.Cmd) ([]byte, error) {
	c.Env = append(neutralEnv(n.epoch), c.Env...)
	return n.r.Run(ctx, c)
}

func (b *Builder) progress(format string, args ...any) {
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, format+"\n", args...)
	}
}

// buildState carries one build's paths and results between phases.
type buildState struct {
	b        *Builder
	def      *images.Definition
	ids      IDs
	out      string // output directory
	work     string // scratch, removed after a good build
	tree     string // the image's root tree being customized
	kver     string // kernel version in the tree
	coreImg  []byte // GRUB i386-pc core image
	rootHash string
	packages []manifest.Package // the root tree's package lock
	binaries []manifest.Binary  // our programs installed in /usr/bin
	parts    []manifest.Partition
	diskSize int64
	m        *manifest.Build
}

func (s *buildState) path(rel string) string { return filepath.Join(s.out, rel) }

func (s *buildState) part(label string) manifest.Partition {
	for _, p := range s.parts {
		if p.Label == label {
			return p
		}
	}
	panic("no partition " + label)
}

// partNum is the partition's GPT number (1-based, in the layout's order).
func (s *buildState) partNum(label string) int {
	for i, p := range s.parts {
		if p.Label == label {
			return i + 1
		}
	}
	panic("no partition " + label)
}

// rootTree copies the cached mmdebstrap tree into the work directory.
func (s *buildState) rootTree(ctx context.Context) error {
	in := newRootfsInputs(s.def, s.b.Epoch)
	if s.b.Refresh {
		r, err := s.b.refreshTree(ctx, in)
		if err != nil {
			return err
		}
		s.b.progress("      refreshed the root tree: %d package changes", len(r.Changes))
		for _, c := range r.Changes {
			s.b.progress("        %s", c)
		}
	}
	cached, pkgs, err := s.b.rootfs(ctx, in)
	if err != nil {
		return err
	}
	if s.b.Lock != nil {
		if err := checkLock(s.b.Lock, pkgs); err != nil {
			return fmt.Errorf("root tree %s: %w", cached, err)
		}
	}
	s.packages = pkgs
	_, err = s.b.Runner.Run(ctx, run.Cmd{Name: "cp", Args: []string{"-a", "--reflink=auto", cached, s.tree}})
	return err
}
