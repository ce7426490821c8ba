package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// pulled is a store holding one pulled image of two layers, tagged ref.
func pulled(t *testing.T) (*Store, Image, string) {
	t.Helper()
	host := testRegistry(t, nil)
	ref := host + "/team/app:v1"
	push(t, ref, imageOf(t, fileLayer(t, map[string]string{"etc/motd": "saved"}), fileLayer(t, map[string]string{"bin/app": "x"})))
	s := openStore(t, Options{Insecure: []string{host}})
	im, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return s, im, ref
}

// tarEntries lists a tar's entries: name -> content (link target for
// links).
func tarEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		if hdr.Linkname != "" {
			c = []byte("-> " + hdr.Linkname)
		}
		out[hdr.Name] = string(c)
	}
}

func TestSaveIsDockerArchive(t *testing.T) {
	s, im, ref := pulled(t)
	var buf bytes.Buffer
	if err := s.Save([]string{ref}, &buf); err != nil {
		t.Fatal(err)
	}
	ents := tarEntries(t, buf.Bytes())
	var ms []archiveManifest
	if err := json.Unmarshal([]byte(ents["manifest.json"]), &ms); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(ms) != 1 || len(ms[0].Layers) != 2 || !slices.Equal(ms[0].RepoTags, []string{FamiliarName(ref)}) {
		t.Fatalf("manifest.json: got %+v, want one image of two layers tagged %s", ms, ref)
	}
	if ms[0].Config != strings.TrimPrefix(im.ID, "sha256:")+".json" {
		t.Errorf("config file %s, want <id>.json", ms[0].Config)
	}
	// Each layer.tar is the uncompressed layer: its sha256 is the diffID.
	for i, l := range ms[0].Layers {
		if !strings.HasSuffix(l, "/layer.tar") {
			t.Errorf("layer %d at %s, want <id>/layer.tar", i, l)
		}
		if got := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ents[l]))); got != im.Layers[i] {
			t.Errorf("layer %d: sha256 %s, want diffID %s", i, got, im.Layers[i])
		}
		dir := strings.TrimSuffix(l, "layer.tar")
		if ents[dir+"VERSION"] != "1.0" || ents[dir+"json"] == "" {
			t.Errorf("layer %d: VERSION %q, json %q, want 1.0 and a v1 json", i, ents[dir+"VERSION"], ents[dir+"json"])
		}
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal([]byte(ents["repositories"]), &repos); err != nil {
		t.Fatalf("repositories: %v", err)
	}
	repo, tag, _ := strings.Cut(FamiliarName(ref), ":v")
	if got := repos[repo]["v"+tag]; got+"/layer.tar" != ms[0].Layers[1] {
		t.Errorf("repositories: got %v, want %s:v1 -> the top layer", repos, repo)
	}
	if err := s.Save([]string{"nosuch:1"}, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("save of a missing image: got %v, want ErrNotFound", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, im, ref := pulled(t)
	var buf bytes.Buffer
	if err := s.Save([]string{ref}, &buf); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, Options{})
	// docker load < app.tar.gz: a compressed archive loads too.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	loaded, err := s2.Load(context.Background(), &gz)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].Image.ID != im.ID || loaded[0].Name != ref {
		t.Fatalf("loaded %+v, want %s as %s", loaded, im.ID, ref)
	}
	if got := readLayerFile(t, s2, loaded[0].Image, "etc/motd"); got != "saved" {
		t.Errorf("etc/motd: got %q, want %q", got, "saved")
	}
	// The loaded image saves again to the same layers and config, and
	// pushes (its blobs are stored).
	var again bytes.Buffer
	if err := s2.Save([]string{ref}, &again); err != nil {
		t.Fatal(err)
	}
	a, b := tarEntries(t, buf.Bytes()), tarEntries(t, again.Bytes())
	for n, c := range a {
		if b[n] != c {
			t.Errorf("entry %s differs after a load and save", n)
		}
	}
	if _, err := s2.v1Image(loaded[0].Image); err != nil {
		t.Errorf("loaded image cannot be pushed: %v", err)
	}
	// By ID: no names.
	var byID bytes.Buffer
	if err := s.Save([]string{im.ID}, &byID); err != nil {
		t.Fatal(err)
	}
	var ms []archiveManifest
	json.Unmarshal([]byte(tarEntries(t, byID.Bytes())["manifest.json"]), &ms)
	if len(ms) != 1 || len(ms[0].RepoTags) != 0 {
		t.Errorf("save by ID: got %+v, want no RepoTags", ms)
	}
}

// TestSaveSharedLayerIsSymlink saves two images that share a layer under
// different parents: the second copy is a symlink to the first, as
// dockerd 20.10 writes it, and the archive loads.
func TestSaveSharedLayerIsSymlink(t *testing.T) {
	host := testRegistry(t, nil)
	shared := fileLayer(t, map[string]string{"shared": "1"})
	push(t, host+"/a:1", imageOf(t, fileLayer(t, map[string]string{"a": "a"}), shared))
	push(t, host+"/b:1", imageOf(t, fileLayer(t, map[string]string{"b": "b"}), shared))
	s := openStore(t, Options{Insecure: []string{host}})
	for _, r := range []string{"/a:1", "/b:1"} {
		if _, err := s.Pull(context.Background(), host+r); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.Save([]string{host + "/a:1", host + "/b:1"}, &buf); err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, c := range tarEntries(t, buf.Bytes()) {
		if strings.HasPrefix(c, "-> ../") {
			links++
		}
	}
	if links != 1 {
		t.Errorf("got %d symlinked layers, want 1", links)
	}
	loaded, err := openStore(t, Options{}).Load(context.Background(), &buf)
	if err != nil || len(loaded) != 2 {
		t.Errorf("load: got %d images, %v, want 2", len(loaded), err)
	}
}

func TestLoadOCILayout(t *testing.T) {
	img := imageOf(t, fileLayer(t, map[string]string{"etc/oci": "layout"}))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": "registry.example/team/oci:1", "org.opencontainers.image.ref.name": "1",
	})); err != nil {
		t.Fatal(err)
	}
	// An untagged second image: loaded by ID.
	img2 := imageOf(t, fileLayer(t, map[string]string{"etc/oci": "untagged"}))
	if err := p.AppendImage(img2); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Options{})
	loaded, err := s.Load(context.Background(), bytes.NewReader(testimg.TarDir(t, dir)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	if len(loaded) != 2 || loaded[0].Image.ID != id.String() || loaded[0].Name != "registry.example/team/oci:1" || loaded[1].Name != "" {
		t.Fatalf("loaded %+v, want %s as registry.example/team/oci:1 and one untagged", loaded, id)
	}
	if got := readLayerFile(t, s, loaded[0].Image, "etc/oci"); got != "layout" {
		t.Errorf("etc/oci: got %q, want %q", got, "layout")
	}
	md, _ := img.Digest()
	if loaded[0].Image.ManifestDigest != md.String() {
		t.Errorf("manifest %s, want the layout's %s", loaded[0].Image.ManifestDigest, md)
	}
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	body string
}

func reg(n, body string) entry {
	return entry{hdr: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func mkTar(t *testing.T, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// validArchive is a docker-archive of one image of one layer (files ->
// content), and its parts.
func validArchive(t *testing.T, layerTar []byte) (cfgName, cfg, manifest string) {
	t.Helper()
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(layerTar))
	cfg = `{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["` + diffID + `"]}}`
	cfgName = fmt.Sprintf("%x.json", sha256.Sum256([]byte(cfg)))
	manifest = `[{"Config":"` + cfgName + `","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]`
	return
}

// TestLoadRefusesHostileArchives loads archives built to escape the store
// or to smuggle content: each is refused with an error naming the entry,
// nothing is recorded and nothing is written outside the store's root.
func TestLoadRefusesHostileArchives(t *testing.T) {
	good := mkTar(t, reg("etc/ok", "fine"))
	cfgName, cfg, manifest := validArchive(t, good)
	base := []entry{reg(cfgName, cfg), reg("manifest.json", manifest)}
	evilLayer := mkTar(t,
		entry{hdr: tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "/"}},
		reg("escape/tmp/bulkhead-load-escaped", "pwned"))
	evilName, evilCfg, evilManifest := validArchive(t, evilLayer)
	otherLayer := mkTar(t, reg("etc/ok", "other"))
	wrongCfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	cases := []struct {
		name string
		ents []entry
		want string // text the error must have (the entry)
	}{
		{"path traversal", append([]entry{reg("../../bulkhead-load-escaped", "x")}, base...), `"../../bulkhead-load-escaped"`},
		{"absolute name", append([]entry{reg("/tmp/bulkhead-load-escaped", "x")}, base...), `"/tmp/bulkhead-load-escaped"`},
		{"symlink out of the archive", append(base, entry{hdr: tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc/passwd"}}), `"l/layer.tar"`},
		{"absolute symlink", append(base, entry{hdr: tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}), `"l/layer.tar"`},
		{"hardlink out of the archive", append(base, entry{hdr: tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeLink, Linkname: "../etc/passwd"}}), `"l/layer.tar"`},
		{"device", append(base, entry{hdr: tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}}), `"l/layer.tar"`},
		{"entry twice", append(base, reg("l/layer.tar", string(good)), reg("l/layer.tar", string(otherLayer))), `"l/layer.tar" appears twice`},
		{"layer digest mismatch", append(base, reg("l/layer.tar", string(otherLayer))), `"l/layer.tar"`},
		{"config digest mismatch", []entry{reg(cfgName, wrongCfg), reg("manifest.json", manifest), reg("l/layer.tar", string(good))}, cfgName},
		{"missing layer", base, "l/layer.tar"},
		{"layer escaping through a symlink", []entry{reg(evilName, evilCfg), reg("manifest.json", evilManifest), reg("l/layer.tar", string(evilLayer))}, `"l/layer.tar"`},
		{"not an image archive", []entry{reg("hello.txt", "hi")}, "manifest.json"},
		{"manifest too large", []entry{reg("manifest.json", strings.Repeat(" ", maxMetadata+1))}, "manifest.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "store")
			s := openStore(t, Options{Root: root})
			_, err := s.Load(context.Background(), bytes.NewReader(mkTar(t, c.ents...)))
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want ErrBadArchive naming %s", err, c.want)
			}
			if imgs, _ := s.List(); len(imgs) != 0 {
				t.Errorf("got %d images recorded, want none", len(imgs))
			}
			noEscape(t, filepath.Dir(root))
			if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) != 0 {
				t.Errorf("%d temporary files left in the store", len(tmp))
			}
		})
	}
	// A huge size in a header is refused before any byte is read: the
	// archive below holds only the header.
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	tw.WriteHeader(&tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 60})
	s := openStore(t, Options{})
	if _, err := s.Load(context.Background(), bytes.NewReader(huge.Bytes())); !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), `"l/layer.tar"`) || !strings.Contains(err.Error(), "free") {
		t.Errorf("huge entry: got %v, want ErrBadArchive naming l/layer.tar and the free space", err)
	}
	// The layer that climbs out through its own symlink is refused by the
	// layer code.
	_, err := openStore(t, Options{}).Load(context.Background(), bytes.NewReader(mkTar(t, reg(evilName, evilCfg), reg("manifest.json", evilManifest), reg("l/layer.tar", string(evilLayer)))))
	if !errors.Is(err, layer.ErrUnsafe) {
		t.Errorf("escaping layer: got %v, want layer.ErrUnsafe", err)
	}
	if _, err := os.Lstat("/tmp/bulkhead-load-escaped"); err == nil {
		os.Remove("/tmp/bulkhead-load-escaped")
		t.Errorf("a load wrote the host's /tmp/bulkhead-load-escaped")
	}
}

// noEscape fails if a file named bulkhead-load-escaped exists under dir
// (the test's temp dir, around the store).
func noEscape(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "bulkhead-load-escaped") {
			t.Errorf("load wrote %s", p)
		}
		return nil
	})
}

// TestLoadOCILayoutRefusesBadBlobs: a blob whose content does not match
// its digest, and a digest that is not sha256 hex, are refused by name.
func TestLoadOCILayoutRefusesBadBlobs(t *testing.T) {
	img := imageOf(t, fileLayer(t, map[string]string{"f": "x"}))
	dir := t.TempDir()
	p, err := layout.Write(dir, mutate.AppendManifests(empty.Index))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blob := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = openStore(t, Options{}).Load(context.Background(), bytes.NewReader(testimg.TarDir(t, dir)))
	if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), ld.Hex) {
		t.Errorf("corrupt blob: got %v, want ErrBadArchive naming %s", err, ld.Hex)
	}
	idx := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../etc/passwd","size":1}]}`
	_, err = openStore(t, Options{}).Load(context.Background(), bytes.NewReader(mkTar(t, reg("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), reg("index.json", idx))))
	if !errors.Is(err, ErrBadArchive) {
		t.Errorf("digest with a path: got %v, want ErrBadArchive", err)
	}
}

// TestSaveWithoutBlobsAsksForPull: an image pulled by a hostd that kept
// no layer blobs cannot be saved or pushed, says so, and a pull again
// fetches the blobs without unpacking the layers again.
func TestSaveWithoutBlobsAsksForPull(t *testing.T) {
	s, im, ref := pulled(t)
	m, err := s.manifest(im)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if err := os.Remove(s.blobPath(l.Digest.String())); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(s.LayerDir(im.Layers[0]), "kept-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Save([]string{ref}, io.Discard); !errors.Is(err, ErrNoBlob) {
		t.Errorf("save: got %v, want ErrNoBlob", err)
	}
	if _, err := s.Push(context.Background(), ref, nil); !errors.Is(err, ErrNoBlob) {
		t.Errorf("push: got %v, want ErrNoBlob", err)
	}
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if err := s.Save([]string{ref}, io.Discard); err != nil {
		t.Errorf("save after a pull: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the layer was unpacked again: %v", err)
	}
}
