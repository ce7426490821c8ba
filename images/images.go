package images

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// APIVersion is the only definition version this loader reads.
const APIVersion = "bulkhead/v1"

//go:embed default.yaml
var defaultYAML []byte

//go:embed all:overlay
var overlay embed.FS

// Overlay is the tree copied into every image's root (units, configs).
func Overlay() fs.FS {
	sub, err := fs.Sub(overlay, "overlay")
	if err != nil {
		panic(err) // the embedded tree always has the folder
	}
	return sub
}

// Definition is one image definition.
type Definition struct {
	APIVersion string     `yaml:"apiVersion"`
	Name       string     `yaml:"name"`
	Version    string     `yaml:"version"`
	OS         OS         `yaml:"os"`
	Debian     Debian     `yaml:"debian"`
	Kernel     Kernel     `yaml:"kernel"`
	Partitions Partitions `yaml:"partitions"`
	Users      []User     `yaml:"users"`
	Files      []File     `yaml:"files"`
	Units      Units      `yaml:"units"`
	Keys       []string   `yaml:"keys"` // update signing public keys, paths relative to the definition

	// Dir is the directory the definition was read from ("" when embedded);
	// relative paths in Keys and File.Source resolve against it.
	Dir string `yaml:"-"`
}

// OS is the identity written to os-release.
type OS struct {
	Name string `yaml:"name"`
	ID   string `yaml:"id"`
}

// Debian says how the root tree is made.
type Debian struct {
	Suite    string   `yaml:"suite"`
	Mirror   string   `yaml:"mirror"`
	Packages []string `yaml:"packages"`
	// DropPaths are removed from the tree (globs relative to /), e.g. docs.
	DropPaths []string `yaml:"dropPaths"`
	// Purge are packages that other packages pull in but the image does
	// not need at run time (xfsprogs' python3 for xfs_scrub_all, usrmerge's
	// perl): they are purged after the install, in this order, dependencies
	// notwithstanding, so neither their files nor their entries in the
	// package list and SBOM remain.
	Purge []string `yaml:"purge"`
}

// Kernel names the kernel package, its command line and module allow-list.
type Kernel struct {
	Package string   `yaml:"package"`
	Cmdline []string `yaml:"cmdline"`
	// Modules is the allow-list of kernel modules kept in /usr/lib/modules
	// (their dependencies are kept too); every other module is pruned.
	Modules []string `yaml:"modules"`
	// InitrdDrivers are the modules dracut puts in the initrd.
	InitrdDrivers []string `yaml:"initrdDrivers"`
}

// Partitions are the partition sizes.
type Partitions struct {
	ESP       Size `yaml:"esp"`
	Usr       Size `yaml:"usr"`
	UsrVerity Size `yaml:"usrVerity"`
	Root      Size `yaml:"root"`
}

// User pins a system user's and group's IDs: files in /usr are owned by IDs
// assigned at install time, and /etc on the root partition must keep
// agreeing with every later /usr.
type User struct {
	Name  string `yaml:"name"`
	UID   *int   `yaml:"uid"` // nil: a group only
	GID   int    `yaml:"gid"`
	Home  string `yaml:"home"`
	Shell string `yaml:"shell"`
}

// File is a file added to the root tree.
type File struct {
	Path    string `yaml:"path"`
	Content string `yaml:"content"`
	Source  string `yaml:"source"` // a file relative to the definition instead of Content
	Mode    string `yaml:"mode"`   // octal, default 0644
}

// Units are systemd units to enable or mask in the image.
type Units struct {
	Enable []string `yaml:"enable"`
	Mask   []string `yaml:"mask"`
}

// Size is a byte count written as 512MiB, 2GiB, 4096 (bytes).
type Size int64

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*(KiB|MiB|GiB|TiB|)$`)

// ParseSize reads a size with a binary unit.
func ParseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (want a number with KiB, MiB, GiB or TiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	shift := map[string]uint{"": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return Size(n << shift), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Default returns the embedded default definition.
func Default() (*Definition, error) {
	return Parse(defaultYAML, "")
}

// DefaultYAML returns the embedded default definition's bytes.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Load reads and validates a definition file.
func Load(path string) (*Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image definition: %w", err)
	}
	d, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("image definition %s: %w", path, err)
	}
	return d, nil
}

// Parse decodes a definition, rejecting unknown fields, and validates it.
func Parse(b []byte, dir string) (*Definition, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	d.Dir = dir
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Problems is every validation problem, each with its path.
type Problems []string

func (p Problems) Error() string {
	return fmt.Sprintf("%d problem(s):\n  %s", len(p), strings.Join(p, "\n  "))
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid image definition")

func (p Problems) Unwrap() error { return ErrInvalid }

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+~][0-9A-Za-z.+~-]+)?$`)
	unitRE    = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|timer|mount|path)$`)
	pkgRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	moduleRE  = regexp.MustCompile(`^[A-Za-z0-9_*?-]+$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
)

// Validate reports every problem with its path.
func (d *Definition) Validate() error {
	var p Problems
	add := func(path, format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) }
	if d.APIVersion != APIVersion {
		add("apiVersion", "got %q, want %q", d.APIVersion, APIVersion)
	}
	if !nameRE.MatchString(d.Name) {
		add("name", "%q must be lowercase letters, digits and dashes", d.Name)
	}
	if !versionRE.MatchString(d.Version) {
		add("version", "%q is not a version like 1.2.3", d.Version)
	}
	if d.OS.Name == "" {
		add("os.name", "must be set")
	}
	if !nameRE.MatchString(d.OS.ID) {
		add("os.id", "%q must be lowercase letters, digits and dashes", d.OS.ID)
	}
	if d.Debian.Suite == "" {
		add("debian.suite", "must be set")
	}
	if !strings.HasPrefix(d.Debian.Mirror, "http://") && !strings.HasPrefix(d.Debian.Mirror, "https://") {
		add("debian.mirror", "%q must be an http(s) URL", d.Debian.Mirror)
	}
	if len(d.Debian.Packages) == 0 {
		add("debian.packages", "must list at least one package")
	}
	for i, pkg := range d.Debian.Packages {
		if !pkgRE.MatchString(pkg) {
			add(fmt.Sprintf("debian.packages[%d]", i), "%q is not a Debian package name", pkg)
		}
	}
	for i, pkg := range d.Debian.Purge {
		switch {
		case !pkgRE.MatchString(pkg):
			add(fmt.Sprintf("debian.purge[%d]", i), "%q is not a Debian package name", pkg)
		case slices.Contains(d.Debian.Packages, pkg) || pkg == d.Kernel.Package:
			add(fmt.Sprintf("debian.purge[%d]", i), "%q is also in debian.packages: install it or purge it", pkg)
		}
	}
	for i, g := range d.Debian.DropPaths {
		if !strings.HasPrefix(g, "/") || strings.Contains(g, "..") {
			add(fmt.Sprintf("debian.dropPaths[%d]", i), "%q must be an absolute path without ..", g)
		} else if _, err := filepath.Match(g, "/x"); err != nil {
			add(fmt.Sprintf("debian.dropPaths[%d]", i), "%q: %v", g, err)
		}
	}
	if d.Kernel.Package == "" {
		add("kernel.package", "must be set")
	}
	for i, a := range d.Kernel.Cmdline {
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			add(fmt.Sprintf("kernel.cmdline[%d]", i), "%q must be one argument without spaces or quotes", a)
		}
		for _, reserved := range []string{"root=", "usrhash=", "mount.usr", "systemd.verity_usr", "bulkhead.slot="} {
			if strings.HasPrefix(a, reserved) {
				add(fmt.Sprintf("kernel.cmdline[%d]", i), "%q is set by the builder per slot", a)
			}
		}
	}
	if len(d.Kernel.Modules) == 0 {
		add("kernel.modules", "must list the modules to keep")
	}
	for i, m := range d.Kernel.Modules {
		if !moduleRE.MatchString(m) {
			add(fmt.Sprintf("kernel.modules[%d]", i), "%q is not a module name", m)
		}
	}
	for i, m := range d.Kernel.InitrdDrivers {
		if !moduleRE.MatchString(m) {
			add(fmt.Sprintf("kernel.initrdDrivers[%d]", i), "%q is not a module name", m)
		}
	}
	sizes := []struct {
		path string
		v    Size
		min  Size
	}{
		{"partitions.esp", d.Partitions.ESP, 64 << 20},
		{"partitions.usr", d.Partitions.Usr, 256 << 20},
		{"partitions.usrVerity", d.Partitions.UsrVerity, 8 << 20},
		{"partitions.root", d.Partitions.Root, 128 << 20},
	}
	for _, s := range sizes {
		switch {
		case s.v < s.min:
			add(s.path, "%d bytes is less than the minimum %d MiB", s.v, s.min>>20)
		case s.v%(1<<20) != 0:
			add(s.path, "must be a whole number of MiB")
		}
	}
	// A verity tree for the usr partition must fit: 32-byte hashes of 4 KiB
	// blocks, levels summed, plus the superblock.
	if need := verityTreeSize(int64(d.Partitions.Usr)); d.Partitions.UsrVerity > 0 && int64(d.Partitions.UsrVerity) < need {
		add("partitions.usrVerity", "%d MiB cannot hold the hash tree of a %d MiB usr partition (needs %d KiB)",
			d.Partitions.UsrVerity>>20, d.Partitions.Usr>>20, need>>10)
	}
	seenUser := map[string]bool{}
	for i, u := range d.Users {
		path := fmt.Sprintf("users[%d]", i)
		if !userRE.MatchString(u.Name) {
			add(path+".name", "%q is not a user name", u.Name)
		}
		if seenUser[u.Name] {
			add(path+".name", "%q appears twice", u.Name)
		}
		seenUser[u.Name] = true
		if u.UID != nil && (*u.UID < 1 || *u.UID > 999) {
			add(path+".uid", "%d is not a system uid (1-999)", *u.UID)
		}
		if (u.GID < 1 || u.GID > 999) && u.GID != 65534 {
			add(path+".gid", "%d is not a system gid (1-999, or 65534 for nogroup)", u.GID)
		}
	}
	for i, f := range d.Files {
		path := fmt.Sprintf("files[%d]", i)
		if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") {
			add(path+".path", "%q must be absolute without ..", f.Path)
		}
		if (f.Content == "") == (f.Source == "") {
			add(path, "set exactly one of content and source")
		}
		if f.Mode != "" {
			if _, err := strconv.ParseUint(f.Mode, 8, 32); err != nil {
				add(path+".mode", "%q is not an octal mode", f.Mode)
			}
		}
	}
	for i, u := range d.Units.Enable {
		if !unitRE.MatchString(u) {
			add(fmt.Sprintf("units.enable[%d]", i), "%q is not a unit name", u)
		}
	}
	for i, u := range d.Units.Mask {
		if !unitRE.MatchString(u) {
			add(fmt.Sprintf("units.mask[%d]", i), "%q is not a unit name", u)
		}
	}
	for i, k := range d.Keys {
		if k == "" {
			add(fmt.Sprintf("keys[%d]", i), "must be a path")
		}
	}
	if len(p) == 0 {
		return nil
	}
	sort.Stable(sort.StringSlice(p))
	return p
}

// verityTreeSize is the size of a dm-verity hash device (4 KiB data and hash
// blocks, sha256) for dataSize bytes: every level of hashes rounded up to
// whole blocks, plus one block for the superblock.
func verityTreeSize(dataSize int64) int64 {
	const block, hashesPerBlock = 4096, 4096 / 32
	blocks := (dataSize + block - 1) / block
	total := int64(1) // superblock
	for blocks > 1 {
		blocks = (blocks + hashesPerBlock - 1) / hashesPerBlock
		total += blocks
	}
	return total * block
}

// ModeOrDefault returns the file's mode (0644 when unset).
func (f File) ModeOrDefault() os.FileMode {
	if f.Mode == "" {
		return 0o644
	}
	m, _ := strconv.ParseUint(f.Mode, 8, 32)
	return os.FileMode(m)
}

// ReadSource returns the file's bytes.
func (d *Definition) ReadSource(f File) ([]byte, error) {
	if f.Source == "" {
		return []byte(f.Content), nil
	}
	p := f.Source
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.Dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading source of %s: %w", f.Path, err)
	}
	return b, nil
}

// KeyPath resolves keys[i] against the definition's directory.
func (d *Definition) KeyPath(i int) string {
	if filepath.IsAbs(d.Keys[i]) || d.Dir == "" {
		return d.Keys[i]
	}
	return filepath.Join(d.Dir, d.Keys[i])
}
