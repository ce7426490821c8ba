package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// fileLayer is a layer with the given files (name -> content).
func fileLayer(t testing.TB, files map[string]string, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(c))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf builds an image from layers with a config.
func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry is testimg.Registry with an optional handler in front.
func testRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	if wrap == nil {
		return testimg.Registry(t)
	}
	return testimg.Registry(t, wrap)
}

func push(t testing.TB, ref string, img v1.Image) { testimg.Push(t, ref, img) }

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readLayerFile(t *testing.T, s *Store, im Image, file string) string {
	t.Helper()
	for _, d := range s.LayerDirs(im) {
		if b, err := os.ReadFile(filepath.Join(d, file)); err == nil {
			return string(b)
		}
	}
	return ""
}

func TestPullTagAndDigest(t *testing.T) {
	host := testRegistry(t, nil)
	img := imageOf(t, fileLayer(t, map[string]string{"bin/hello": "hi"}), fileLayer(t, map[string]string{"etc/motd": "welcome"}))
	push(t, host+"/app:v1", img)
	s := openStore(t, Options{Insecure: []string{host}})
	ctx := context.Background()

	im, err := s.Pull(ctx, host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if im.ID != want.String() {
		t.Errorf("got ID %q, want %q", im.ID, want)
	}
	if len(im.Names) != 1 || im.Names[0] != host+"/app:v1" {
		t.Errorf("got names %q, want [%s/app:v1]", im.Names, host)
	}
	if got := readLayerFile(t, s, im, "etc/motd"); got != "welcome" {
		t.Errorf("etc/motd: got %q, want %q", got, "welcome")
	}
	md, _ := img.Digest()
	byDigest, err := s.Pull(ctx, host+"/app@"+md.String())
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.ID != im.ID || len(byDigest.Names) != 1 {
		t.Errorf("pull by digest: got %+v, want the same image with its tag kept", byDigest)
	}
	for _, ref := range []string{host + "/app:v1", host + "/app@" + md.String(), strings.TrimPrefix(im.ID, "sha256:")[:12]} {
		if got, err := s.Get(ref); err != nil || got.ID != im.ID {
			t.Errorf("Get(%q): got %q, %v, want %q", ref, got.ID, err, im.ID)
		}
	}
	cfg, err := s.Config(im)
	if err != nil || len(cfg.Config.Cmd) != 1 || cfg.Config.Cmd[0] != "/bin/sh" {
		t.Errorf("config: got %+v, %v, want Cmd [/bin/sh]", cfg, err)
	}
}

func TestPullIndexPicksLinuxAmd64(t *testing.T) {
	host := testRegistry(t, nil)
	arm := imageOf(t, fileLayer(t, map[string]string{"arch": "arm64"}))
	amd := imageOf(t, fileLayer(t, map[string]string{"arch": "amd64"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	r, _ := name.ParseReference(host+"/multi:latest", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Options{Insecure: []string{host}})
	im, err := s.Pull(context.Background(), host+"/multi:latest")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayerFile(t, s, im, "arch"); got != "amd64" {
		t.Errorf("got arch %q, want %q", got, "amd64")
	}
	idxDigest, _ := idx.Digest()
	if got, err := s.Get(host + "/multi@" + idxDigest.String()); err != nil || got.ID != im.ID {
		t.Errorf("Get by the index digest: got %q, %v, want %q", got.ID, err, im.ID)
	}
}

func TestPullMediaTypes(t *testing.T) {
	host := testRegistry(t, nil)
	cases := []struct {
		name string
		img  func() v1.Image
	}{
		{"docker gzip", func() v1.Image {
			return imageOf(t, fileLayer(t, map[string]string{"f": "docker"}))
		}},
		{"oci gzip", func() v1.Image {
			img := mutate.MediaType(imageOf(t, fileLayer(t, map[string]string{"f": "oci"}, tarball.WithMediaType(types.OCILayer))), types.OCIManifestSchema1)
			return mutate.ConfigMediaType(img, types.OCIConfigJSON)
		}},
		{"oci zstd", func() v1.Image {
			l := fileLayer(t, map[string]string{"f": "zstd"}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
			img := mutate.MediaType(imageOf(t, l), types.OCIManifestSchema1)
			return mutate.ConfigMediaType(img, types.OCIConfigJSON)
		}},
	}
	s := openStore(t, Options{Insecure: []string{host}})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := host + "/media:" + string(rune('a'+i))
			push(t, ref, c.img())
			im, err := s.Pull(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if got := readLayerFile(t, s, im, "f"); got == "" {
				t.Errorf("layer file f missing")
			}
		})
	}
}

func TestLayersAreSharedAndCollected(t *testing.T) {
	host := testRegistry(t, nil)
	base, err := random.Layer(4096, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	push(t, host+"/one:1", imageOf(t, base, fileLayer(t, map[string]string{"one": "1"})))
	push(t, host+"/two:1", imageOf(t, base, fileLayer(t, map[string]string{"two": "2"})))
	s := openStore(t, Options{Insecure: []string{host}})
	ctx := context.Background()
	one, err := s.Pull(ctx, host+"/one:1")
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.Pull(ctx, host+"/two:1")
	if err != nil {
		t.Fatal(err)
	}
	if one.Layers[0] != two.Layers[0] {
		t.Fatalf("base layer differs: %s vs %s", one.Layers[0], two.Layers[0])
	}
	ents, _ := os.ReadDir(filepath.Join(s.opts.Root, "layers", "sha256"))
	if len(ents) != 3 {
		t.Errorf("got %d stored layers, want 3 (one shared)", len(ents))
	}
	imgs, _ := s.List()
	if len(imgs) != 2 {
		t.Errorf("got %d images, want 2", len(imgs))
	}

	if _, err := s.Remove(host + "/one:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(host + "/one:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after rmi: got %v, want ErrNotFound", err)
	}
	removed, err := s.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// one's own layer, its layer blob, its config and its manifest.
	if len(removed) != 4 {
		t.Errorf("GC removed %q, want one layer and three blobs", removed)
	}
	if _, err := os.Stat(s.LayerDir(two.Layers[0])); err != nil {
		t.Errorf("shared layer collected while two uses it: %v", err)
	}
	if _, err := os.Stat(s.LayerDir(one.Layers[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("one's own layer survived GC: %v", err)
	}
	// A layer a container still uses is kept even without an image.
	if _, err := s.Remove(two.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, map[string]bool{two.Layers[1]: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.LayerDir(two.Layers[1])); err != nil {
		t.Errorf("layer in use was collected: %v", err)
	}
}

func TestPullRefusesUnlistedPlainHTTP(t *testing.T) {
	host := testRegistry(t, nil)
	push(t, host+"/app:v1", imageOf(t, fileLayer(t, map[string]string{"a": "b"})))
	s := openStore(t, Options{})
	if _, err := s.Pull(context.Background(), host+"/app:v1"); err == nil || !strings.Contains(err.Error(), ErrInsecure.Error()) {
		t.Errorf("got %v, want a refusal of plain HTTP", err)
	}
}

func TestPullOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(nilLogger())))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	img := imageOf(t, fileLayer(t, map[string]string{"tls": "yes"}))
	r, _ := name.ParseReference(u.Host + "/app:v1")
	if err := remote.Write(r, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Options{Transport: srv.Client().Transport})
	im, err := s.Pull(context.Background(), u.Host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayerFile(t, s, im, "tls"); got != "yes" {
		t.Errorf("got %q, want %q", got, "yes")
	}
}

func TestPullWithAuthFromConfig(t *testing.T) {
	basic := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := testRegistry(t, basic)
	img := imageOf(t, fileLayer(t, map[string]string{"secret": "data"}))
	r, _ := name.ParseReference(host+"/private:v1", name.Insecure)
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	os.WriteFile(cfgPath, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	kc, err := LoadConfigKeychain(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(kc)); err != nil {
		t.Fatal(err)
	}
	anon := openStore(t, Options{Insecure: []string{host}})
	if _, err := anon.Pull(context.Background(), host+"/private:v1"); err == nil {
		t.Errorf("anonymous pull of a private image succeeded")
	}
	s := openStore(t, Options{Insecure: []string{host}, Keychain: kc})
	if _, err := s.Pull(context.Background(), host+"/private:v1"); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
}

func TestPullRefusesCorruptLayer(t *testing.T) {
	img := imageOf(t, fileLayer(t, map[string]string{"payload": strings.Repeat("a", 1000)}))
	layers, _ := img.Layers()
	bad, _ := layers[0].Digest()
	// The registry serves a different (valid gzip) body for the blob.
	other, _ := fileLayer(t, map[string]string{"payload": strings.Repeat("b", 1000)}).Compressed()
	otherBytes, _ := io.ReadAll(other)
	corrupt := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+bad.String()) {
				w.Write(otherBytes)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := testRegistry(t, corrupt)
	push(t, host+"/app:v1", img)
	s := openStore(t, Options{Insecure: []string{host}})
	_, err := s.Pull(context.Background(), host+"/app:v1")
	if err == nil {
		t.Fatal("pull of a corrupt layer succeeded")
	}
	if _, serr := os.Stat(s.LayerDir(mustDiffID(t, layers[0]))); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("corrupt layer was stored: %v", serr)
	}
	tmp, _ := os.ReadDir(filepath.Join(s.opts.Root, "tmp"))
	if len(tmp) != 0 {
		t.Errorf("got %d temporary directories left, want 0", len(tmp))
	}
}

func TestPullRefusesMaliciousLayer(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.WriteHeader(&tar.Header{Name: "escape/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	host := testRegistry(t, nil)
	push(t, host+"/evil:v1", imageOf(t, l))
	s := openStore(t, Options{Insecure: []string{host}})
	_, err = s.Pull(context.Background(), host+"/evil:v1")
	if !errors.Is(err, layer.ErrUnsafe) {
		t.Errorf("got %v, want layer.ErrUnsafe", err)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("got %d images after a refused pull, want 0", len(imgs))
	}
}

func mustDiffID(t *testing.T, l v1.Layer) string {
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
