package image

import (
	"bufio"
	"bytes"

	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// ErrNoBlob marks an image whose compressed layers were not kept (pulled
// by a hostd that unpacked layers only): it cannot be pushed or saved
// until pulled again.
var ErrNoBlob = errors.New("layer blob not stored (pull the image again)")

// manifest reads the stored manifest of im.
func (s *Store) manifest(im Image) (*v1.Manifest, error) {
	_, m, err := s.rawManifest(im)
	return m, err
}

// rawManifest reads the stored manifest of im, as stored and parsed.
func (s *Store) rawManifest(im Image) ([]byte, *v1.Manifest, error) {
	b, err := os.ReadFile(s.blobPath(im.ManifestDigest))
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest of %s: %w", im.ID, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing manifest of %s: %w", im.ID, err)
	}
	return b, m, nil
}

// storedImage is a stored image as go-containerregistry's v1.Image, read
// from the blobs (for push).
type storedImage struct {
	s        *Store
	im       Image
	manifest []byte
	mt       types.MediaType
	layers   map[v1.Hash]v1.Descriptor
}

// v1Image opens im's manifest, config and layer blobs as a v1.Image. Every
// layer blob must be stored.
func (s *Store) v1Image(im Image) (v1.Image, error) {
	raw, m, err := s.rawManifest(im)
	if err != nil {
		return nil, err
	}
	si := &storedImage{s: s, im: im, manifest: raw, mt: m.MediaType, layers: map[v1.Hash]v1.Descriptor{}}
	if si.mt == "" {
		si.mt = types.OCIManifestSchema1
	}
	for _, l := range m.Layers {
		if _, err := os.Stat(s.blobPath(l.Digest.String())); err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", im.ID, l.Digest, ErrNoBlob)
		}
		si.layers[l.Digest] = l
	}
	return partial.CompressedToImage(si)
}

func (si *storedImage) RawConfigFile() ([]byte, error) { return os.ReadFile(si.s.blobPath(si.im.ID)) }
func (si *storedImage) MediaType() (types.MediaType, error) {
	return si.mt, nil
}
func (si *storedImage) RawManifest() ([]byte, error) { return si.manifest, nil }

func (si *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := si.layers[h]
	if !ok {
		return nil, fmt.Errorf("image %s has no layer %s", si.im.ID, h)
	}
	return storedLayer{path: si.s.blobPath(h.String()), d: d}, nil
}

type storedLayer struct {
	path string
	d    v1.Descriptor
}

func (l storedLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l storedLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l storedLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l storedLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }

// openLayerTar opens the uncompressed tar of im's layer i from its blob.
func (s *Store) openLayerTar(d v1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(s.blobPath(d.Digest.String()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("layer %s: %w", d.Digest, ErrNoBlob)
	}
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	plain, closeFn, err := decompress(br)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	return readCloser{Reader: plain, close: func() error { closeFn(); return f.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// addUncompressed stores a layer tar r (uncompressed, or gzip or zstd
// compressed), whose content must hash to diffID ("" takes it as it is):
// gzip-compressed as a blob and unpacked. It returns the blob's
// descriptor and the layer's diffID.
func (s *Store) addUncompressed(ctx context.Context, r io.Reader, diffID string) (v1.Descriptor, string, error) {
	tmp, err := os.CreateTemp(s.tmpDir(), "gz-")
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	plain, closeFn, err := decompress(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	defer closeFn()
	ch := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, ch)}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	uh := sha256.New()
	if _, err := io.Copy(io.MultiWriter(zw, uh), plain); err != nil {
		return v1.Descriptor{}, "", fmt.Errorf("compressing layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return v1.Descriptor{}, "", fmt.Errorf("compressing layer: %w", err)
	}
	got := sum(uh)
	if diffID != "" && got != diffID {
		return v1.Descriptor{}, "", fmt.Errorf("%w: layer content is %s, config says %s", ErrDigest, got, diffID)
	}
	digest := sum(ch)
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return v1.Descriptor{}, "", err
	}
	if err := s.storeLayer(ctx, tmp, digest, got); err != nil {
		return v1.Descriptor{}, "", fmt.Errorf("storing layer %s: %w", got, err)
	}
	h, _ := v1.NewHash(digest)
	return v1.Descriptor{MediaType: types.DockerLayer, Size: cw.n, Digest: h}, got, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Store) tmpDir() string { return s.opts.Root + "/tmp" }

// addImage stores raw config and a Docker schema 2 manifest over layers,
// and records the image under names (full references).
func (s *Store) addImage(rawConfig []byte, layers []v1.Descriptor, names []string) (Image, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return Image{}, fmt.Errorf("parsing image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return Image{}, fmt.Errorf("image config lists %d layers, %d given", len(cfg.RootFS.DiffIDs), len(layers))
	}
	cd := sum256(rawConfig)
	ch, _ := v1.NewHash(cd)
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.DockerManifestSchema2,
		Config: v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(rawConfig)), Digest: ch},
		Layers: layers,
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return Image{}, err
	}
	md := sum256(rawManifest)
	for digest, raw := range map[string][]byte{md: rawManifest, cd: rawConfig} {
		if err := fsroot.WriteFile(s.blobPath(digest), raw, 0o600); err != nil {
			return Image{}, err
		}
	}
	rec := Image{ID: cd, ManifestDigest: md, Names: names, Created: cfg.Created.Time, Pulled: time.Now().UTC()}
	for _, d := range cfg.RootFS.DiffIDs {
		rec.Layers = append(rec.Layers, d.String())
		rec.Size += dirSize(s.LayerDir(d.String()))
	}
	return s.record(rec)
}

func sum256(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("sha256:%x", h)
}

// digester hashes what is written to it.
type digester struct{ hash.Hash }

func newDigester() digester { return digester{sha256.New()} }

// String is the digest so far, sha256:...
func (d digester) String() string { return sum(d.Hash) }
