package image

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// TestPullFromDistributionRegistry pulls from a real registry: Debian's
// docker-registry (the CNCF distribution registry), started on loopback.
func TestPullFromDistributionRegistry(t *testing.T) {
	addr := testimg.DistributionRegistry(t, testimg.RegistryOptions{})
	img := imageOf(t, fileLayer(t, map[string]string{"etc/release": "real registry"}), fileLayer(t, map[string]string{"bin/app": "x"}))
	push(t, addr+"/team/app:1.0", img)
	s := openStore(t, Options{Insecure: []string{addr}})
	im, err := s.Pull(context.Background(), addr+"/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayerFile(t, s, im, "etc/release"); got != "real registry" {
		t.Errorf("got %q, want %q", got, "real registry")
	}
	md, _ := img.Digest()
	if im.ManifestDigest != md.String() {
		t.Errorf("got manifest %s, want %s", im.ManifestDigest, md)
	}
}

// TestPushAndLoginWithHtpasswd pushes to, and logs in to, Debian's
// docker-registry with htpasswd auth: wrong credentials and none are
// refused, the right ones push an image that pulls back identical.
func TestPushAndLoginWithHtpasswd(t *testing.T) {
	addr := testimg.DistributionRegistry(t, testimg.RegistryOptions{Users: map[string]string{"alice": "s3cret"}})
	good := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "s3cret"})
	bad := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "wrong"})
	ctx := context.Background()

	// The image to push: loaded from an open registry into a store.
	open := testRegistry(t, nil)
	img := imageOf(t, fileLayer(t, map[string]string{"etc/pushed": "yes"}), fileLayer(t, map[string]string{"bin/x": "x"}))
	push(t, open+"/src:1", img)
	s := openStore(t, Options{Insecure: []string{open, addr}})
	src, err := s.Pull(ctx, open+"/src:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, addr, bad); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("login with a wrong password: got %v, want ErrUnauthorized", err)
	}
	if err := s.Login(ctx, "http://"+addr, authn.Anonymous); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("login without credentials: got %v, want ErrUnauthorized", err)
	}
	if err := s.Login(ctx, addr, good); err != nil {
		t.Errorf("login: %v", err)
	}
	if _, err := s.Tag(src.ID, addr+"/team/app:2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, addr+"/team/app:2", bad); err == nil {
		t.Errorf("push with a wrong password succeeded")
	}
	if _, err := s.Push(ctx, addr+"/team/app:2", nil); err == nil {
		t.Errorf("push without credentials succeeded")
	}
	pushed, err := s.Push(ctx, addr+"/team/app", good)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := img.Digest()
	if len(pushed) != 1 || pushed[0].Digest != md.String() {
		t.Errorf("pushed %+v, want one tag with the pulled manifest %s", pushed, md)
	}
	// Back from the registry into a new store, with credentials from a
	// credential helper.
	kc := helperKeychain(t, addr, "alice", "s3cret")
	s2 := openStore(t, Options{Insecure: []string{addr}, Keychain: kc})
	im, err := s2.Pull(ctx, addr+"/team/app:2")
	if err != nil {
		t.Fatal(err)
	}
	if im.ID != src.ID || readLayerFile(t, s2, im, "etc/pushed") != "yes" {
		t.Errorf("pulled back %s, want %s with etc/pushed", im.ID, src.ID)
	}
}
