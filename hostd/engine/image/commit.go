package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CommitOptions describe the image docker commit makes.
type CommitOptions struct {
	Ref       string    // repo[:tag] to name it, "" for none
	Author    string    // -a
	Comment   string    // -m
	CreatedBy string    // the container's command, for docker history
	Config    v1.Config // the new image's config (the container's, with -c changes)
}

// Commit makes an image of parent plus one layer, the uncompressed tar
// diff (a container's changes, whiteouts as .wh. files).
func (s *Store) Commit(ctx context.Context, parentID string, diff io.Reader, o CommitOptions) (Image, error) {
	var names []string
	if o.Ref != "" {
		t, err := name.NewTag(o.Ref)
		if err != nil {
			return Image{}, fmt.Errorf("committing as %q: %w", o.Ref, err)
		}
		names = []string{t.Name()}
	}
	parent, err := s.Get(parentID)
	if err != nil {
		return Image{}, err
	}
	pcfg, err := s.Config(parent)
	if err != nil {
		return Image{}, err
	}
	pm, err := s.manifest(parent)
	if err != nil {
		return Image{}, err
	}
	d, diffID, err := s.addUncompressed(ctx, diff, "")
	if err != nil {
		return Image{}, fmt.Errorf("committing: %w", err)
	}
	cfg := pcfg.DeepCopy()
	now := v1.Time{Time: time.Now().UTC()}
	cfg.Created, cfg.Author, cfg.Config = now, o.Author, o.Config
	cfg.Container, cfg.DockerVersion = "", ""
	h, _ := v1.NewHash(diffID)
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
	cfg.History = append(cfg.History, v1.History{Created: now, Author: o.Author, CreatedBy: o.CreatedBy, Comment: o.Comment})
	raw, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	return s.addImage(raw, append(pm.Layers, d), names)
}
