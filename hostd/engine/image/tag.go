package image

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Tag adds the tag newRef (repo[:tag], latest by default) to the image
// ref names, moving it off any image that had it (docker tag).
func (s *Store) Tag(ref, newRef string) (Image, error) {
	im, err := s.Get(ref)
	if err != nil {
		return Image{}, err
	}
	t, err := name.NewTag(newRef)
	if err != nil {
		return Image{}, fmt.Errorf("tagging %s as %q: %w", ref, newRef, err)
	}
	im.Names, im.RepoDigests = []string{t.Name()}, nil
	return s.record(im)
}
