package image

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// archiveManifest is one image of a docker-archive's manifest.json.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// FamiliarName is the short form docker prints and writes in archives
// (index.docker.io/library/busybox:latest -> busybox:latest).
func FamiliarName(n string) string {
	n = strings.TrimPrefix(n, "index.docker.io/")
	return strings.TrimPrefix(n, "library/")
}

// saveItem is one image to save and the names it is saved under.
type saveItem struct {
	im    Image
	names []string
}

// resolveSave finds the images refs name, as docker save does: a tag
// saves that tag, a repository without a tag every tag of it, an ID the
// image without names.
func (s *Store) resolveSave(refs []string) ([]saveItem, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	var items []saveItem
	add := func(im Image, n string) {
		for i := range items {
			if items[i].im.ID == im.ID {
				if n != "" && !slices.Contains(items[i].names, n) {
					items[i].names = append(items[i].names, n)
				}
				return
			}
		}
		it := saveItem{im: im}
		if n != "" {
			it.names = []string{n}
		}
		items = append(items, it)
	}
	for _, ref := range refs {
		if repo, err := name.NewRepository(ref); err == nil && !strings.ContainsAny(ref[strings.LastIndex(ref, "/")+1:], ":@") {
			found := false
			for _, im := range imgs {
				for _, n := range im.Names {
					if t, err := name.NewTag(n); err == nil && t.Context().Name() == repo.Name() {
						add(im, n)
						found = true
					}
				}
			}
			if found {
				continue
			}
		}
		im, ok := match(imgs, ref)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		n := ""
		if r, err := name.ParseReference(ref); err == nil {
			if _, isTag := r.(name.Tag); isTag && slices.Contains(im.Names, r.Name()) {
				n = r.Name()
			}
		}
		add(im, n)
	}
	return items, nil
}

// Save writes the images refs name to w as a docker-archive, the format
// dockerd 20.10's docker save writes: per layer <id>/VERSION, <id>/json
// and <id>/layer.tar (uncompressed; a layer already written under another
// id is a symlink to it), <config-hex>.json, manifest.json and
// repositories.
func (s *Store) Save(refs []string, w io.Writer) error {
	items, err := s.resolveSave(refs)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	now := time.Unix(0, 0)
	written := map[string]string{} // diffID -> path of its layer.tar
	dirs := map[string]bool{}
	var manifest []archiveManifest
	repos := map[string]map[string]string{}
	file := func(p string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	for _, it := range items {
		rawConfig, err := os.ReadFile(s.blobPath(it.im.ID))
		if err != nil {
			return fmt.Errorf("saving %s: reading config: %w", it.im.ID, err)
		}
		cfg, err := s.Config(it.im)
		if err != nil {
			return err
		}
		m, err := s.manifest(it.im)
		if err != nil {
			return err
		}
		if len(m.Layers) != len(it.im.Layers) {
			return fmt.Errorf("saving %s: %d layers in the manifest, %d in the image", it.im.ID, len(m.Layers), len(it.im.Layers))
		}
		am := archiveManifest{Config: strings.TrimPrefix(it.im.ID, "sha256:") + ".json"}
		parent := ""
		for i, diffID := range it.im.Layers {
			id := sum256([]byte(parent + "\n" + diffID))[len("sha256:"):]
			if i == len(it.im.Layers)-1 {
				id = sum256([]byte(parent + "\n" + diffID + "\n" + it.im.ID))[len("sha256:"):]
			}
			p := id + "/layer.tar"
			am.Layers = append(am.Layers, p)
			if !dirs[id] {
				dirs[id] = true
				if err := s.saveLayer(tw, id, parent, cfg, i == len(it.im.Layers)-1, m.Layers[i], diffID, written, file); err != nil {
					return fmt.Errorf("saving %s: %w", it.im.ID, err)
				}
			}
			parent = id
		}
		for _, n := range it.names {
			t, err := name.NewTag(n)
			if err != nil {
				continue
			}
			am.RepoTags = append(am.RepoTags, FamiliarName(n))
			repo := FamiliarName(t.Context().Name())
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][t.TagStr()] = parent
		}
		if err := file(am.Config, rawConfig); err != nil {
			return err
		}
		manifest = append(manifest, am)
	}
	mb, _ := json.Marshal(manifest)
	if err := file("manifest.json", mb); err != nil {
		return err
	}
	if len(repos) > 0 {
		rb, _ := json.Marshal(repos)
		if err := file("repositories", rb); err != nil {
			return err
		}
	}
	return tw.Close()
}

// saveLayer writes one layer directory of a docker-archive.
func (s *Store) saveLayer(tw *tar.Writer, id, parent string, cfg *v1.ConfigFile, top bool, d v1.Descriptor, diffID string, written map[string]string, file func(string, []byte) error) error {
	now := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: id + "/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	if err := file(id+"/VERSION", []byte("1.0")); err != nil {
		return err
	}
	v1json := map[string]any{"id": id, "created": cfg.Created.Time.UTC().Format(time.RFC3339Nano)}
	if parent != "" {
		v1json["parent"] = parent
	}
	if top {
		v1json["config"] = cfg.Config
		v1json["os"] = cfg.OS
		v1json["architecture"] = cfg.Architecture
	}
	jb, _ := json.Marshal(v1json)
	if err := file(id+"/json", jb); err != nil {
		return err
	}
	p := id + "/layer.tar"
	if prev, ok := written[diffID]; ok {
		return tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: "../" + prev, Mode: 0o644, ModTime: now})
	}
	written[diffID] = p
	// The tar's size is needed before its bytes: count them in a first
	// pass over the blob.
	size, err := s.countLayer(d)
	if err != nil {
		return err
	}
	rc, err := s.openLayerTar(d)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	uh := newDigester()
	if _, err := io.CopyN(tw, io.TeeReader(rc, uh), size); err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	if got := uh.String(); got != diffID {
		return fmt.Errorf("layer %s: %w: stored blob holds %s", diffID, ErrDigest, got)
	}
	return nil
}

func (s *Store) countLayer(d v1.Descriptor) (int64, error) {
	rc, err := s.openLayerTar(d)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return 0, fmt.Errorf("reading layer %s: %w", d.Digest, err)
	}
	return n, nil
}
