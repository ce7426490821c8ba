package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

// progress writes the JSON message stream of pull, push and load.
type progress struct {
	w   http.ResponseWriter
	enc *json.Encoder
}

func newProgress(w http.ResponseWriter) *progress {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return &progress{w: w, enc: json.NewEncoder(w)}
}

func (p *progress) send(m map[string]any) {
	_ = p.enc.Encode(m)
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *progress) status(s string) { p.send(map[string]any{"status": s}) }

// fail ends the stream with an error, which the CLI prints and exits 1 on.
func (p *progress) fail(err error) {
	p.send(map[string]any{"error": err.Error(), "errorDetail": map[string]string{"message": err.Error()}})
}

// registryAuth decodes the X-Registry-Auth header (base64url of the JSON
// auth config the CLI sends); nil when absent or empty.
func registryAuth(r *http.Request) (authn.Authenticator, error) {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return nil, nil
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding} {
		if b, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil, badRequest("X-Registry-Auth: not base64: %v", err)
	}
	var c authn.AuthConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, badRequest("X-Registry-Auth: %v", err)
	}
	if c == (authn.AuthConfig{}) {
		return nil, nil
	}
	return authn.FromConfig(c), nil
}

// imageSave is GET /images/get?names=... and GET /images/{name}/get
// (docker save): a docker-archive of the images.
func (a *API) imageSave(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		apiError(w, badRequest("docker save needs at least one image (names)"))
		return
	}
	for _, n := range names {
		if _, err := a.E.Images().Get(n); err != nil {
			// A repository without a tag may name several images; Save
			// resolves it.
			if _, rerr := name.NewRepository(n); rerr != nil {
				apiError(w, fmt.Errorf("%w: No such image: %s", image.ErrNotFound, n))
				return
			}
		}
	}
	sw := &startWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
	}}
	if err := a.E.Images().Save(names, sw); err != nil {
		if !sw.started {
			apiError(w, err)
			return
		}
		a.log().Warn("docker save", "images", names, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// imageLoad is POST /images/load (docker load): a docker-archive or an
// OCI image layout tar.
func (a *API) imageLoad(w http.ResponseWriter, r *http.Request) {
	loaded, err := a.E.Images().Load(r.Context(), r.Body)
	if err != nil {
		apiError(w, fmt.Errorf("loading images: %w", err))
		return
	}
	p := newProgress(w)
	for _, l := range loaded {
		if l.Name != "" {
			p.send(map[string]any{"stream": "Loaded image: " + image.FamiliarName(l.Name) + "\n"})
		} else {
			p.send(map[string]any{"stream": "Loaded image ID: " + l.Image.ID + "\n"})
		}
	}
}

// imageHistory is GET /images/{name}/history.
func (a *API) imageHistory(w http.ResponseWriter, r *http.Request, ref string) {
	im, err := a.E.Images().Get(ref)
	if err != nil {
		apiError(w, fmt.Errorf("%w: No such image: %s", image.ErrNotFound, ref))
		return
	}
	hist, err := a.E.Images().History(im)
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, h := range hist {
		tags := []string{}
		for _, t := range h.Tags {
			tags = append(tags, image.FamiliarName(t))
		}
		out = append(out, map[string]any{
			"Id": h.ID, "Created": h.Created.Unix(), "CreatedBy": h.CreatedBy, "Tags": tags, "Size": h.Size, "Comment": h.Comment,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// push is POST /images/{name}/push?tag= (docker push), with the client's
// credentials in X-Registry-Auth.
func (a *API) push(w http.ResponseWriter, r *http.Request, ref string) {
	auth, err := registryAuth(r)
	if err != nil {
		apiError(w, err)
		return
	}
	if tag := r.URL.Query().Get("tag"); tag != "" {
		ref += ":" + tag
	}
	repo := ref
	if t, err := name.NewTag(ref, name.StrictValidation); err == nil {
		if _, err := a.E.Images().Get(ref); err != nil {
			apiError(w, fmt.Errorf("%w: An image does not exist locally with the tag: %s", image.ErrNotFound, ref))
			return
		}
		repo = t.Context().Name()
	}
	p := newProgress(w)
	p.status(fmt.Sprintf("The push refers to repository [%s]", image.FamiliarName(repo)))
	pushed, err := a.E.Images().Push(r.Context(), ref, auth)
	if err != nil {
		p.fail(err)
		return
	}
	for _, x := range pushed {
		t, _ := name.NewTag(x.Tag)
		p.status(fmt.Sprintf("%s: digest: %s size: %d", t.TagStr(), x.Digest, x.Size))
		p.send(map[string]any{"progressDetail": map[string]any{}, "aux": map[string]any{"Tag": t.TagStr(), "Digest": x.Digest, "Size": x.Size}})
	}
}

// auth is POST /auth (docker login): the credentials are checked against
// the registry, as dockerd checks them.
func (a *API) auth(w http.ResponseWriter, r *http.Request) {
	var c struct {
		Username, Password, Auth, ServerAddress, IdentityToken, RegistryToken string
	}
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		apiError(w, badRequest("parsing credentials: %v", err))
		return
	}
	server := c.ServerAddress
	if server == "" {
		server = "https://index.docker.io/v1/"
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password, Auth: c.Auth, IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken})
	if err := a.E.Images().Login(r.Context(), server, auth); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Status": "Login Succeeded", "IdentityToken": ""})
}

// commit is POST /commit (docker commit).
func (a *API) commit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("repo")
	if ref != "" && q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	pause := q.Get("pause") != "0" && q.Get("pause") != "false"
	// API clients may send a container config to merge; the CLI sends
	// none (its -c goes in changes). hostd refuses one rather than drop it.
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if b := strings.TrimSpace(string(body)); b != "" && b != "null" && b != "{}" {
		apiError(w, badRequest("commit: a container config in the request body is not supported by hostd (use changes)"))
		return
	}
	im, err := a.E.Commit(r.Context(), q.Get("container"), engine.CommitOptions{
		Ref: ref, Author: q.Get("author"), Comment: q.Get("comment"), Changes: q["changes"], Pause: pause,
	})
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": im.ID})
}
