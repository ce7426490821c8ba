package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUnauthorized marks credentials a registry refused.
var ErrUnauthorized = errors.New("unauthorized")

// transport is the HTTP transport to registries: plain HTTP only to the
// registries listed as insecure.
func (s *Store) transport() http.RoundTripper {
	allow := map[string]bool{}
	for _, h := range s.opts.Insecure {
		allow[h] = true
	}
	return insecureGuard{base: s.opts.Transport, allow: allow}
}

// Pushed is one tag docker push sent.
type Pushed struct {
	Tag    string // full reference
	Digest string // manifest digest
	Size   int64  // manifest size
}

// Push sends the image named ref to its registry (docker push): ref with
// a tag pushes that tag, a repository without one every tag of it. auth
// is the client's credentials (X-Registry-Auth); nil uses the store's
// keychain.
func (s *Store) Push(ctx context.Context, ref string, auth authn.Authenticator) ([]Pushed, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	var tags []name.Tag
	if t, err := name.NewTag(ref, name.StrictValidation); err == nil {
		tags = append(tags, t)
	} else if repo, err := name.NewRepository(ref); err == nil {
		for _, im := range imgs {
			for _, n := range im.Names {
				if t, err := name.NewTag(n); err == nil && t.Context().Name() == repo.Name() {
					tags = append(tags, t)
				}
			}
		}
		sort.Slice(tags, func(i, j int) bool { return tags[i].Name() < tags[j].Name() })
	} else {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	var out []Pushed
	for _, t := range tags {
		im, ok := match(imgs, t.Name())
		if !ok {
			return out, fmt.Errorf("%w: %s", ErrNotFound, FamiliarName(t.Name()))
		}
		img, err := s.v1Image(im)
		if err != nil {
			return out, fmt.Errorf("pushing %s: %w", FamiliarName(t.Name()), err)
		}
		r, err := s.parseRef(t.Name())
		if err != nil {
			return out, err
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(s.transport())}
		if auth != nil {
			opts = append(opts, remote.WithAuth(auth))
		} else {
			opts = append(opts, remote.WithAuthFromKeychain(s.opts.Keychain))
		}
		if err := remote.Write(r, img, opts...); err != nil {
			return out, fmt.Errorf("pushing %s: %w", FamiliarName(t.Name()), err)
		}
		raw, _ := img.RawManifest()
		out = append(out, Pushed{Tag: t.Name(), Digest: im.ManifestDigest, Size: int64(len(raw))})
		// The pushed manifest names the image in that repository now.
		im.Names, im.RepoDigests = nil, []string{t.Context().Name() + "@" + im.ManifestDigest}
		if _, err := s.record(im); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Login checks credentials against a registry (docker login, POST /auth):
// the registry's /v2/ must answer them with success.
func (s *Store) Login(ctx context.Context, server string, auth authn.Authenticator) error {
	host := normalizeHost(server)
	var opts []name.Option
	if slices.Contains(s.opts.Insecure, host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("parsing registry %q: %w", server, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr, err := transport.NewWithContext(ctx, reg, auth, s.transport(), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", host, loginError(err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", host, loginError(err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("logging in to %s: %w: the registry refused the credentials (%s)", host, ErrUnauthorized, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("logging in to %s: registry answered %s", host, resp.Status)
	}
	return nil
}

// loginError marks a registry's 401 as ErrUnauthorized.
func loginError(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return err
}

// History is one entry of docker image history, newest first.
type History struct {
	ID        string // the image ID for the top entry, "<missing>" below
	Created   time.Time
	CreatedBy string
	Comment   string
	Size      int64
	Tags      []string
}

// History lists how im was built, from its config's history (one entry
// per layer when the config has none), newest first.
func (s *Store) History(im Image) ([]History, error) {
	cfg, err := s.Config(im)
	if err != nil {
		return nil, err
	}
	hist := cfg.History
	if len(hist) == 0 {
		for range im.Layers {
			hist = append(hist, v1.History{Created: cfg.Created})
		}
	}
	var out []History
	li := 0
	for _, h := range hist {
		e := History{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer && li < len(im.Layers) {
			e.Size = dirSize(s.LayerDir(im.Layers[li]))
			li++
		}
		out = append(out, e)
	}
	slices.Reverse(out)
	out[0].ID, out[0].Tags = im.ID, im.Names
	return out, nil
}
