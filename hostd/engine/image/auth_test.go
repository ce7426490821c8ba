package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// helperKeychain is a keychain from a config.json whose credHelpers send
// host to docker-credential-bulkheadtest, a script on PATH answering user
// and password for host only.
func helperKeychain(t *testing.T, host, user, password string) *ConfigKeychain {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 2
read server
if [ "$server" = %q ]; then
	printf '{"ServerURL":"%%s","Username":"%s","Secret":"%s"}' "$server"
else
	echo "credentials not found in native keychain"; exit 1
fi
`, host, user, password)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-bulkheadtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"credHelpers":{"`+host+`":"bulkheadtest"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := LoadConfigKeychain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func TestCredentialHelpers(t *testing.T) {
	kc := helperKeychain(t, "reg.example:5000", "bob", "pw")
	resolve := func(kc authn.Keychain, host string) *authn.AuthConfig {
		t.Helper()
		r, _ := name.NewRegistry(host)
		a, err := kc.Resolve(r)
		if err != nil {
			t.Fatalf("resolving %s: %v", host, err)
		}
		c, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := resolve(kc, "reg.example:5000"); c.Username != "bob" || c.Password != "pw" {
		t.Errorf("helper credentials: got %+v, want bob/pw", c)
	}
	if c := resolve(kc, "other.example"); c.Username != "" {
		t.Errorf("a registry without a helper: got %+v, want anonymous", c)
	}
	// credsStore answers for every registry without credentials of its
	// own; a helper that knows none means anonymous.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"credsStore":"bulkheadtest","auths":{"own.example":{"username":"own","password":"x"}}}`), 0o600)
	kc2, err := LoadConfigKeychain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := resolve(kc2, "reg.example:5000"); c.Username != "bob" {
		t.Errorf("credsStore: got %+v, want bob", c)
	}
	if c := resolve(kc2, "own.example"); c.Username != "own" {
		t.Errorf("auths beside credsStore: got %+v, want own", c)
	}
	if c := resolve(kc2, "unknown.example"); c.Username != "" {
		t.Errorf("credsStore without credentials: got %+v, want anonymous", c)
	}
	// A helper name is a name, never a path to run.
	for _, bad := range []string{`{"credHelpers":{"r":"../../tmp/x"}}`, `{"credsStore":"/bin/sh"}`, `{"credsStore":"-rf"}`} {
		os.WriteFile(cfg, []byte(bad), 0o600)
		if _, err := LoadConfigKeychain(cfg); err == nil || !strings.Contains(err.Error(), "not a helper name") {
			t.Errorf("%s: got %v, want a refusal naming the helper", bad, err)
		}
	}
	// A failing helper is an error naming it, not anonymous access.
	os.WriteFile(filepath.Join(dir, "docker-credential-broken"), []byte("#!/bin/sh\necho boom >&2; exit 3\n"), 0o755)
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	os.WriteFile(cfg, []byte(`{"credsStore":"broken"}`), 0o600)
	kc3, _ := LoadConfigKeychain(cfg)
	r, _ := name.NewRegistry("x.example")
	if _, err := kc3.Resolve(r); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing helper: got %v, want an error naming it", err)
	}
}
