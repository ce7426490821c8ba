package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// ErrBadArchive marks an image archive refused by docker load: an unsafe
// or malformed entry, a missing file, a digest that does not match.
var ErrBadArchive = errors.New("invalid image archive")

// maxMetadata bounds the JSON files of an archive (manifest.json,
// index.json, configs, manifests) read into memory.
const maxMetadata = 16 << 20

// maxEntries bounds the entries of an archive (each becomes a file while
// loading); a docker-archive of a hundred images has a few thousand.
const maxEntries = 1 << 17

// Loaded is one image docker load stored, and the name it was loaded
// under ("" when the archive gave none).
type Loaded struct {
	Image Image
	Name  string // full reference
}

// spool is an archive's entries kept in the store's tmp directory: each
// regular file under a name of its own (never the entry's name, so no
// entry can choose where it is written), links as the entry they lead to.
type spool struct {
	dir   string
	files map[string]string // cleaned entry name -> spool file
	links map[string]string // cleaned entry name -> cleaned target name
}

func (sp *spool) open(name string) (*os.File, error) {
	n := name
	for range 16 {
		if f, ok := sp.files[n]; ok {
			return os.Open(f)
		}
		t, ok := sp.links[n]
		if !ok {
			return nil, fmt.Errorf("%w: %s: no such entry", ErrBadArchive, name)
		}
		n = t
	}
	return nil, fmt.Errorf("%w: %s: too many levels of links", ErrBadArchive, name)
}

func (sp *spool) has(name string) bool {
	_, f := sp.files[name]
	_, l := sp.links[name]
	return f || l
}

func (sp *spool) readJSON(name string, v any) error {
	f, err := sp.open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadata+1))
	if err != nil {
		return err
	}
	if len(b) > maxMetadata {
		return fmt.Errorf("%w: %s: larger than %d bytes", ErrBadArchive, name, maxMetadata)
	}
	if rm, ok := v.(*json.RawMessage); ok {
		// Kept byte for byte: its digest is checked.
		if !json.Valid(b) {
			return fmt.Errorf("%w: %s: not JSON", ErrBadArchive, name)
		}
		*rm = b
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	return nil
}

// readSpool takes the archive r apart into the spool. Entries with
// unsafe names, links leading out of the archive, devices and entries
// larger than the store's free space are refused by name.
func (s *Store) readSpool(r io.Reader) (*spool, error) {
	dir, err := os.MkdirTemp(s.tmpDir(), "load-")
	if err != nil {
		return nil, err
	}
	sp := &spool{dir: dir, files: map[string]string{}, links: map[string]string{}}
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sp, fmt.Errorf("%w: reading tar: %v", ErrBadArchive, err)
		}
		n, err := layer.CleanName(hdr.Name)
		if err != nil {
			return sp, fmt.Errorf("%w: entry %q: %v", ErrBadArchive, hdr.Name, err)
		}
		if n == "" || n == "." {
			continue
		}
		if i >= maxEntries {
			return sp, fmt.Errorf("%w: entry %q: more than %d entries", ErrBadArchive, hdr.Name, maxEntries)
		}
		if sp.has(n) {
			return sp, fmt.Errorf("%w: entry %q appears twice", ErrBadArchive, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if err := sp.checkSpace(hdr); err != nil {
				return sp, err
			}
			f, err := os.CreateTemp(dir, "e-")
			if err != nil {
				return sp, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return sp, fmt.Errorf("%w: entry %q: %v", ErrBadArchive, hdr.Name, err)
			}
			sp.files[n] = f.Name()
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				if path.IsAbs(target) {
					return sp, fmt.Errorf("%w: entry %q: %v: symlink to %q", ErrBadArchive, hdr.Name, layer.ErrUnsafe, target)
				}
				target = path.Join(path.Dir(n), target)
			}
			t, err := layer.CleanName(target)
			if err != nil || t == "" || t == "." {
				return sp, fmt.Errorf("%w: entry %q: %v: link to %q leads out of the archive", ErrBadArchive, hdr.Name, layer.ErrUnsafe, hdr.Linkname)
			}
			sp.links[n] = t
		default:
			return sp, fmt.Errorf("%w: entry %q: %v: type %q is not allowed in an image archive", ErrBadArchive, hdr.Name, layer.ErrUnsafe, hdr.Typeflag)
		}
	}
	return sp, nil
}

// checkSpace refuses an entry larger than the free space under the spool.
func (sp *spool) checkSpace(hdr *tar.Header) error {
	var st unix.Statfs_t
	if err := unix.Statfs(sp.dir, &st); err != nil {
		return fmt.Errorf("checking free space for %q: %w", hdr.Name, err)
	}
	if free := int64(st.Bavail) * st.Bsize; hdr.Size < 0 || hdr.Size > free {
		return fmt.Errorf("%w: entry %q: %d bytes, more than the %d bytes free in the image store", ErrBadArchive, hdr.Name, hdr.Size, free)
	}
	return nil
}

// Load stores the images of a docker-archive (manifest.json, as docker
// save writes it) or of an OCI image layout (oci-layout, index.json and
// blobs/) read from r (a tar, plain or gzip- or zstd-compressed), as docker
// load does. Nothing is recorded unless
// every layer and config checks out.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Loaded, error) {
	// docker load also takes the archive gzip- or zstd-compressed.
	plain, closeFn, err := decompress(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArchive, err)
	}
	defer closeFn()
	sp, err := s.readSpool(plain)
	defer os.RemoveAll(sp.dir)
	if err != nil {
		return nil, err
	}
	switch {
	case sp.has("manifest.json"):
		return s.loadDockerArchive(ctx, sp)
	case sp.has("index.json"):
		return s.loadOCILayout(ctx, sp)
	}
	return nil, fmt.Errorf("%w: neither manifest.json (docker save) nor index.json (OCI layout) in the archive", ErrBadArchive)
}

var hexDigest = regexp.MustCompile(`^[a-f0-9]{64}$`)

func (s *Store) loadDockerArchive(ctx context.Context, sp *spool) ([]Loaded, error) {
	var ms []archiveManifest
	if err := sp.readJSON("manifest.json", &ms); err != nil {
		return nil, err
	}
	type prepared struct {
		raw    []byte
		layers []v1.Descriptor
		names  []string
	}
	var all []prepared
	for _, m := range ms {
		cn, err := layer.CleanName(m.Config)
		if err != nil {
			return nil, fmt.Errorf("%w: config %q: %v", ErrBadArchive, m.Config, err)
		}
		var raw json.RawMessage
		if err := sp.readJSON(cn, &raw); err != nil {
			return nil, err
		}
		if h := strings.TrimSuffix(path.Base(cn), ".json"); hexDigest.MatchString(h) {
			if got := sum256(raw); got != "sha256:"+h {
				return nil, fmt.Errorf("%w: config %q: %w: content is %s", ErrBadArchive, m.Config, ErrDigest, got)
			}
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: config %q: %v", ErrBadArchive, m.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			return nil, fmt.Errorf("%w: config %q lists %d layers, manifest.json %d", ErrBadArchive, m.Config, len(cfg.RootFS.DiffIDs), len(m.Layers))
		}
		p := prepared{raw: raw}
		for i, l := range m.Layers {
			ln, err := layer.CleanName(l)
			if err != nil {
				return nil, fmt.Errorf("%w: layer %q: %v", ErrBadArchive, l, err)
			}
			f, err := sp.open(ln)
			if err != nil {
				return nil, err
			}
			d, _, err := s.addUncompressed(ctx, f, cfg.RootFS.DiffIDs[i].String())
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%w: layer %q: %w", ErrBadArchive, l, err)
			}
			p.layers = append(p.layers, d)
		}
		for _, t := range m.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("%w: repo tag %q: %v", ErrBadArchive, t, err)
			}
			p.names = append(p.names, tag.Name())
		}
		all = append(all, p)
	}
	var out []Loaded
	for _, p := range all {
		im, err := s.addImage(p.raw, p.layers, p.names)
		if err != nil {
			return out, err
		}
		if len(p.names) == 0 {
			out = append(out, Loaded{Image: im})
		}
		for _, n := range p.names {
			out = append(out, Loaded{Image: im, Name: n})
		}
	}
	return out, nil
}

// ociIndex is the part of an OCI index.json that load uses.
type ociIndex struct {
	MediaType string          `json:"mediaType"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// blobName is the layout path of a descriptor's blob, refusing any digest
// but a well-formed sha256.
func blobName(d v1.Descriptor) (string, error) {
	if d.Digest.Algorithm != "sha256" || !hexDigest.MatchString(d.Digest.Hex) {
		return "", fmt.Errorf("%w: digest %q is not a sha256 digest", ErrBadArchive, d.Digest)
	}
	return "blobs/sha256/" + d.Digest.Hex, nil
}

// readBlob reads a small blob (index, manifest, config) and checks its
// digest and size.
func readBlob(sp *spool, d v1.Descriptor) ([]byte, error) {
	n, err := blobName(d)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := sp.readJSON(n, &raw); err != nil {
		return nil, err
	}
	if got := sum256(raw); got != d.Digest.String() || int64(len(raw)) != d.Size {
		return nil, fmt.Errorf("%w: %s: %w: content is %s, %d bytes (descriptor says %d)", ErrBadArchive, n, ErrDigest, got, len(raw), d.Size)
	}
	return raw, nil
}

func (s *Store) loadOCILayout(ctx context.Context, sp *spool) ([]Loaded, error) {
	var idx ociIndex
	if err := sp.readJSON("index.json", &idx); err != nil {
		return nil, err
	}
	var out []Loaded
	for _, d := range idx.Manifests {
		ref := d.Annotations["io.containerd.image.name"]
		if ref == "" {
			ref = d.Annotations["org.opencontainers.image.ref.name"]
		}
		md, err := resolvePlatform(sp, d)
		if err != nil {
			return out, err
		}
		n := ""
		if t, err := name.NewTag(ref); err == nil && strings.Contains(ref, ":") {
			n = t.Name() // a full reference, not a bare tag
		}
		im, err := s.loadOCIManifest(ctx, sp, md, n)
		if err != nil {
			return out, err
		}
		out = append(out, Loaded{Image: im, Name: n})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no image", ErrBadArchive)
	}
	return out, nil
}

// resolvePlatform follows image indexes down to the linux/amd64 manifest.
func resolvePlatform(sp *spool, d v1.Descriptor) (v1.Descriptor, error) {
	for range 4 {
		if !d.MediaType.IsIndex() {
			return d, nil
		}
		raw, err := readBlob(sp, d)
		if err != nil {
			return d, err
		}
		var idx ociIndex
		if err := json.Unmarshal(raw, &idx); err != nil {
			return d, fmt.Errorf("%w: index %s: %v", ErrBadArchive, d.Digest, err)
		}
		found := false
		for _, m := range idx.Manifests {
			if m.Platform == nil || m.Platform.Satisfies(Platform) {
				d, found = m, true
				break
			}
		}
		if !found {
			return d, fmt.Errorf("%w: index %s has no linux/amd64 image", ErrBadArchive, d.Digest)
		}
	}
	return d, fmt.Errorf("%w: indexes nested too deep", ErrBadArchive)
}

// loadOCIManifest stores one image of an OCI layout under the name n
// ("" for none).
func (s *Store) loadOCIManifest(ctx context.Context, sp *spool, d v1.Descriptor, n string) (Image, error) {
	rawManifest, err := readBlob(sp, d)
	if err != nil {
		return Image{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return Image{}, fmt.Errorf("%w: manifest %s: %v", ErrBadArchive, d.Digest, err)
	}
	rawConfig, err := readBlob(sp, m.Config)
	if err != nil {
		return Image{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return Image{}, fmt.Errorf("%w: config %s: %v", ErrBadArchive, m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("%w: manifest %s lists %d layers, its config %d", ErrBadArchive, d.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		n, err := blobName(l)
		if err != nil {
			return Image{}, err
		}
		f, err := sp.open(n)
		if err != nil {
			return Image{}, err
		}
		err = s.storeLayer(ctx, f, l.Digest.String(), cfg.RootFS.DiffIDs[i].String())
		f.Close()
		if err != nil {
			return Image{}, fmt.Errorf("%w: layer %s: %w", ErrBadArchive, n, err)
		}
	}
	for digest, raw := range map[string][]byte{d.Digest.String(): rawManifest, m.Config.Digest.String(): rawConfig} {
		if err := fsroot.WriteFile(s.blobPath(digest), raw, 0o600); err != nil {
			return Image{}, err
		}
	}
	rec := Image{ID: m.Config.Digest.String(), ManifestDigest: d.Digest.String(), Created: cfg.Created.Time}
	for _, diffID := range cfg.RootFS.DiffIDs {
		rec.Layers = append(rec.Layers, diffID.String())
		rec.Size += dirSize(s.LayerDir(diffID.String()))
	}
	rec.Pulled = time.Now().UTC()
	if n != "" {
		rec.Names = []string{n}
	}
	return s.record(rec)
}
