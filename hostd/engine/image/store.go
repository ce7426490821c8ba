package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Sentinels for decisions callers make.
var (
	ErrNotFound = errors.New("image not found")
	ErrInUse    = errors.New("image in use")
	ErrDigest   = errors.New("digest mismatch")
	ErrInsecure = errors.New("plain HTTP to a registry not listed as insecure")
)

// Platform is what a multi-arch index is resolved to: hostd runs on
// linux/amd64 only.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Image is one stored image.
type Image struct {
	ID             string    `json:"id"`             // config digest, sha256:...
	Names          []string  `json:"names"`          // full references, index.docker.io/library/busybox:latest
	RepoDigests    []string  `json:"repoDigests"`    // repo@sha256:manifest
	ManifestDigest string    `json:"manifestDigest"` // the linux/amd64 manifest
	Layers         []string  `json:"layers"`         // diffIDs, bottom first
	Size           int64     `json:"size"`           // unpacked bytes
	Created        time.Time `json:"created"`
	Pulled         time.Time `json:"pulled"`
}

// Options configure a Store.
type Options struct {
	Root string // the store's directory, e.g. /var/lib/hostd/images
	Log  *slog.Logger
	// Keychain gives registry credentials; nil for anonymous.
	Keychain authn.Keychain
	// Insecure lists registries (host[:port]) that may be reached over plain
	// HTTP. Any other registry must speak HTTPS.
	Insecure []string
	// Transport is the base HTTP transport (tests pass an httptest TLS
	// server's); nil for http.DefaultTransport.
	Transport http.RoundTripper
	// Jobs is how many layers download at once (default 3).
	Jobs int
}

// Store is the image and layer store. It is safe for concurrent use.
type Store struct {
	opts Options
	mu   sync.Mutex // guards images.json
	// layerMu serialises unpacking of one diffID between concurrent pulls.
	layerMu sync.Map
}

// Open makes the store's directories.
func Open(opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 3
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain()
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	for _, d := range []string{"blobs/sha256", "layers/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(opts.Root, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening image store %s: %w", opts.Root, err)
		}
	}
	return &Store{opts: opts}, nil
}

// LayerDir is where a layer with this diffID is unpacked.
func (s *Store) LayerDir(diffID string) string {
	return filepath.Join(s.opts.Root, "layers", "sha256", strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.opts.Root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// insecureGuard refuses plain-HTTP requests to registries not listed:
// go-containerregistry falls back to HTTP by itself for loopback and private
// addresses, which must not happen silently.
type insecureGuard struct {
	base  http.RoundTripper
	allow map[string]bool
}

func (g insecureGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.allow[r.URL.Host] {
		return nil, fmt.Errorf("%w: %s", ErrInsecure, r.URL.Host)
	}
	return g.base.RoundTrip(r)
}

// parseRef parses a user's reference, marking listed registries insecure.
func (s *Store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	if slices.Contains(s.opts.Insecure, r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// Pull fetches ref (tag or digest; an index is resolved to linux/amd64),
// unpacks layers not already stored and records the image under ref's name.
func (s *Store) Pull(ctx context.Context, ref string) (Image, error) {
	return s.PullAuth(ctx, ref, nil)
}

// PullAuth is Pull with the client's credentials (X-Registry-Auth); nil
// uses the store's keychain.
//
// A pull's buffers (downloads, decompression, hashing) are garbage once
// it ends, and a daemon that then idles would keep them until the Go
// runtime's next collection, which an idle process reaches only every two
// minutes: the pull gives them back to the system as it returns.
func (s *Store) PullAuth(ctx context.Context, ref string, auth authn.Authenticator) (Image, error) {
	defer debug.FreeOSMemory()
	return s.pullAuth(ctx, ref, auth)
}

func (s *Store) pullAuth(ctx context.Context, ref string, auth authn.Authenticator) (Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(s.transport()),
		remote.WithPlatform(Platform),
	}
	if auth != nil {
		ropts = append(ropts, remote.WithAuth(auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(s.opts.Keychain))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	img, err := desc.Image() // resolves an index to Platform
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: resolving linux/amd64: %w", ref, err)
	}
	mdigest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: reading manifest: %w", ref, err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: reading config: %w", ref, err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	if err := verifyBlob(rawConfig, cfgName.String()); err != nil {
		return Image{}, fmt.Errorf("pulling %s: config: %w", ref, err)
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(rawConfig)))
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: parsing config: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("pulling %s: listing layers: %w", ref, err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("pulling %s: %d layers in the manifest, %d diff_ids in the config", ref, len(layers), len(cfg.RootFS.DiffIDs))
	}
	if err := s.fetchLayers(ctx, layers, cfg.RootFS.DiffIDs); err != nil {
		return Image{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	for digest, raw := range map[string][]byte{mdigest.String(): rawManifest, cfgName.String(): rawConfig} {
		if err := fsroot.WriteFile(s.blobPath(digest), raw, 0o600); err != nil {
			return Image{}, err
		}
	}
	rec := Image{
		ID:             cfgName.String(),
		ManifestDigest: mdigest.String(),
		Created:        cfg.Created.Time,
		Pulled:         time.Now().UTC(),
	}
	for _, d := range cfg.RootFS.DiffIDs {
		rec.Layers = append(rec.Layers, d.String())
		rec.Size += dirSize(s.LayerDir(d.String()))
	}
	if _, isTag := r.(name.Tag); isTag {
		rec.Names = []string{r.Name()}
	}
	rec.RepoDigests = []string{r.Context().Name() + "@" + mdigest.String()}
	if desc.Digest != mdigest {
		// Pulled through an index: its digest names the image too, as it
		// does in Docker's RepoDigests.
		rec.RepoDigests = append(rec.RepoDigests, r.Context().Name()+"@"+desc.Digest.String())
	}
	out, err := s.record(rec)
	if err != nil {
		return Image{}, err
	}
	s.opts.Log.Info("pulled image", "image", ref, "id", rec.ID, "layers", len(rec.Layers))
	return out, nil
}

// record adds rec to images.json, merging with an image of the same ID and
// moving its names off any other image (a tag points at one image).
func (s *Store) record(rec Image) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	imgs, err := s.load()
	if err != nil {
		return Image{}, err
	}
	var out []Image
	merged := rec
	for _, im := range imgs {
		im.Names = slices.DeleteFunc(im.Names, func(n string) bool { return slices.Contains(rec.Names, n) })
		if im.ID == rec.ID {
			merged.Names = union(im.Names, rec.Names)
			merged.RepoDigests = union(im.RepoDigests, rec.RepoDigests)
			continue
		}
		out = append(out, im)
	}
	out = append(out, merged)
	return merged, s.save(out)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Store) indexPath() string { return filepath.Join(s.opts.Root, "images.json") }

func (s *Store) load() ([]Image, error) {
	b, err := os.ReadFile(s.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading image list: %w", err)
	}
	var imgs []Image
	if err := json.Unmarshal(b, &imgs); err != nil {
		return nil, fmt.Errorf("parsing image list %s: %w", s.indexPath(), err)
	}
	return imgs, nil
}

func (s *Store) save(imgs []Image) error {
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Pulled.After(imgs[j].Pulled) })
	b, err := json.MarshalIndent(imgs, "", "  ")
	if err != nil {
		return err
	}
	return fsroot.WriteFile(s.indexPath(), b, 0o600)
}

// List returns every stored image, newest pull first.
func (s *Store) List() ([]Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}

// Get finds an image by reference (busybox, busybox:1, repo@sha256:...), by
// ID or by a unique ID prefix of at least 4 hex digits.
func (s *Store) Get(ref string) (Image, error) {
	imgs, err := s.List()
	if err != nil {
		return Image{}, err
	}
	if im, ok := match(imgs, ref); ok {
		return im, nil
	}
	return Image{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

func match(imgs []Image, ref string) (Image, bool) {
	if r, err := name.ParseReference(ref); err == nil {
		full := r.Name()
		for _, im := range imgs {
			if slices.Contains(im.Names, full) || slices.Contains(im.RepoDigests, full) {
				return im, true
			}
		}
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if len(id) < 4 || strings.Trim(id, "0123456789abcdef") != "" {
		return Image{}, false
	}
	var found []Image
	for _, im := range imgs {
		if strings.HasPrefix(strings.TrimPrefix(im.ID, "sha256:"), id) {
			found = append(found, im)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return Image{}, false
}

// Config returns the stored image config (entrypoint, env, user...).
func (s *Store) Config(im Image) (*v1.ConfigFile, error) {
	f, err := os.Open(s.blobPath(im.ID))
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", im.ID, err)
	}
	defer f.Close()
	cfg, err := v1.ParseConfigFile(f)
	if err != nil {
		return nil, fmt.Errorf("parsing config of %s: %w", im.ID, err)
	}
	return cfg, nil
}

// LayerDirs returns the image's unpacked layers, bottom first.
func (s *Store) LayerDirs(im Image) []string {
	out := make([]string, len(im.Layers))
	for i, d := range im.Layers {
		out[i] = s.LayerDir(d)
	}
	return out
}

// Remove removes a name from its image (or the image, when ref is an ID or
// its last name). Layers stay until GC.
func (s *Store) Remove(ref string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	imgs, err := s.load()
	if err != nil {
		return Image{}, err
	}
	im, ok := match(imgs, ref)
	if !ok {
		return Image{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	full := ""
	if r, err := name.ParseReference(ref); err == nil {
		full = r.Name()
	}
	var out []Image
	for _, x := range imgs {
		if x.ID != im.ID {
			out = append(out, x)
			continue
		}
		if slices.Contains(x.Names, full) && len(x.Names) > 1 {
			x.Names = slices.DeleteFunc(x.Names, func(n string) bool { return n == full })
			out = append(out, x)
		}
	}
	return im, s.save(out)
}

// GC deletes layers and blobs no stored image refers to, except the layers
// in keep (diffIDs used by containers). It returns the removed digests.
func (s *Store) GC(ctx context.Context, keep map[string]bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	imgs, err := s.load()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for k := range keep {
		used[strings.TrimPrefix(k, "sha256:")] = true
	}
	for _, im := range imgs {
		for _, d := range append([]string{im.ID, im.ManifestDigest}, im.Layers...) {
			used[strings.TrimPrefix(d, "sha256:")] = true
		}
		if m, err := s.manifest(im); err == nil {
			for _, l := range m.Layers {
				used[l.Digest.Hex] = true
			}
		}
	}
	var removed []string
	for _, dir := range []string{"layers/sha256", "blobs/sha256"} {
		ents, err := os.ReadDir(filepath.Join(s.opts.Root, dir))
		if err != nil {
			return removed, fmt.Errorf("collecting garbage in %s: %w", dir, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return removed, err
			}
			if used[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(s.opts.Root, dir, e.Name())); err != nil {
				return removed, fmt.Errorf("collecting garbage: %w", err)
			}
			removed = append(removed, "sha256:"+e.Name())
		}
	}
	if len(removed) > 0 {
		s.opts.Log.Info("collected unused layers and blobs", "count", len(removed))
	}
	return removed, nil
}

// fetchLayers unpacks the layers not yet stored, Jobs at a time.
func (s *Store) fetchLayers(ctx context.Context, layers []v1.Layer, diffIDs []v1.Hash) error {
	sem := make(chan struct{}, s.opts.Jobs)
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.fetchLayer(ctx, layers[i], diffIDs[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchLayer streams one layer blob: compressed bytes hashed against the
// manifest digest and kept under blobs/ (for push and save), decompressed
// (gzip, zstd or plain), hashed against the config's diffID and unpacked
// into a temporary directory that is renamed into place only when both
// digests match. A layer already unpacked is fetched only for its blob.
func (s *Store) fetchLayer(ctx context.Context, l v1.Layer, diffID v1.Hash) error {
	digest, err := l.Digest()
	if err != nil {
		return fmt.Errorf("reading layer digest: %w", err)
	}
	if s.haveLayer(digest.String(), diffID.String()) {
		return nil // shared with an image already stored
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", digest, err)
	}
	defer rc.Close()
	if err := s.storeLayer(ctx, rc, digest.String(), diffID.String()); err != nil {
		return fmt.Errorf("unpacking layer %s: %w", digest, err)
	}
	return nil
}

// storeLayer keeps the compressed layer stream r as the blob digest and
// unpacks it as the layer diffID (unless already unpacked), both renamed
// into place only when both digests match.
func (s *Store) storeLayer(ctx context.Context, r io.Reader, digest, diffID string) error {
	// One layer is stored by one pull or load at a time.
	mu, _ := s.layerMu.LoadOrStore(diffID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if s.haveLayer(digest, diffID) {
		return nil
	}
	blob, err := os.CreateTemp(filepath.Join(s.opts.Root, "tmp"), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(blob.Name())
	defer blob.Close()
	final := s.LayerDir(diffID)
	dir := ""
	if _, err := os.Stat(final); err != nil {
		tmp, err := os.MkdirTemp(filepath.Join(s.opts.Root, "tmp"), "layer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
		dir = tmp
	}
	bw := bufio.NewWriterSize(blob, 1<<20)
	if err := unpackVerified(ctx, dir, io.TeeReader(r, bw), digest, diffID); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("keeping layer blob %s: %w", digest, err)
	}
	if err := blob.Close(); err != nil {
		return fmt.Errorf("keeping layer blob %s: %w", digest, err)
	}
	if err := os.Rename(blob.Name(), s.blobPath(digest)); err != nil {
		return fmt.Errorf("keeping layer blob %s: %w", digest, err)
	}
	if dir != "" {
		if err := os.Rename(dir, final); err != nil {
			return fmt.Errorf("storing layer %s: %w", diffID, err)
		}
	}
	return nil
}

// haveLayer reports whether the layer diffID is unpacked and its blob
// digest kept.
func (s *Store) haveLayer(digest, diffID string) bool {
	_, dirErr := os.Stat(s.LayerDir(diffID))
	_, blobErr := os.Stat(s.blobPath(digest))
	return dirErr == nil && blobErr == nil
}

// unpackVerified applies a compressed layer stream to dir (or only reads
// it, when dir is "") and checks both digests. The stream is read to its
// end, so trailing bytes count.
func unpackVerified(ctx context.Context, dir string, compressed io.Reader, digest, diffID string) error {
	ch := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(compressed, ch), 1<<20)
	plain, closeFn, err := decompress(br)
	if err != nil {
		return err
	}
	defer closeFn()
	uh := sha256.New()
	tee := io.TeeReader(plain, uh)
	if dir != "" {
		if _, err := layer.Apply(ctx, dir, tee); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("reading layer to its end: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("reading layer to its end: %w", err)
	}
	if got := sum(ch); got != digest {
		return fmt.Errorf("%w: blob is %s, manifest says %s", ErrDigest, got, digest)
	}
	if got := sum(uh); got != diffID {
		return fmt.Errorf("%w: content is %s, config says %s", ErrDigest, got, diffID)
	}
	return nil
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// decompress picks the decompressor by magic number: gzip (Docker and OCI
// tar+gzip), zstd (OCI tar+zstd) or an uncompressed tar.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip layer: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	default:
		return br, func() {}, nil
	}
}

func verifyBlob(b []byte, digest string) error {
	h := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(h[:]); got != digest {
		return fmt.Errorf("%w: got %s, want %s", ErrDigest, got, digest)
	}
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
