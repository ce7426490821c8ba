package testimg

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry starts go-containerregistry's in-memory registry on loopback for
// the test and returns its host:port. wrap, when given, sits in front of it
// (auth, corruption).
func Registry(t testing.TB, wrap ...func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// Push writes img to ref on a plain-HTTP test registry.
func Push(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// BusyboxRegistry starts a registry holding Image(t, {Cmd: [sh]}) as
// <host>/busybox:latest and returns the host and the reference.
func BusyboxRegistry(t testing.TB) (host, ref string) {
	t.Helper()
	host = Registry(t)
	ref = host + "/busybox:latest"
	Push(t, ref, Image(t, v1.Config{Cmd: []string{"sh"}}))
	return host, ref
}
