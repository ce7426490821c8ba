package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json that holds credentials
// ("auths": registry -> {auth, username, password, identitytoken}) or
// names the credential helpers that hold them ("credHelpers": registry ->
// helper, "credsStore": the helper for every other registry).
type dockerConfig struct {
	Auths       map[string]authn.AuthConfig `json:"auths"`
	CredHelpers map[string]string           `json:"credHelpers"`
	CredsStore  string                      `json:"credsStore"`
}

// ConfigKeychain resolves credentials from one docker config.json file. A
// missing file means anonymous access everywhere.
type ConfigKeychain struct {
	auths   map[string]authn.AuthConfig
	helpers map[string]string
	store   string
}

// LoadConfigKeychain reads a docker config.json.
func LoadConfigKeychain(path string) (*ConfigKeychain, error) {
	k := &ConfigKeychain{auths: map[string]authn.AuthConfig{}}
	if path == "" {
		return k, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading registry credentials %s: %w", path, err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("parsing registry credentials %s: %w", path, err)
	}
	for host, a := range cfg.Auths {
		k.auths[normalizeHost(host)] = a
	}
	k.helpers = map[string]string{}
	for host, h := range cfg.CredHelpers {
		if !helperName.MatchString(h) {
			return nil, fmt.Errorf("parsing registry credentials %s: credential helper %q for %s: not a helper name", path, h, host)
		}
		k.helpers[normalizeHost(host)] = h
	}
	if cfg.CredsStore != "" && !helperName.MatchString(cfg.CredsStore) {
		return nil, fmt.Errorf("parsing registry credentials %s: credsStore %q: not a helper name", path, cfg.CredsStore)
	}
	k.store = cfg.CredsStore
	return k, nil
}

// normalizeHost maps the forms config.json uses for a registry
// ("https://index.docker.io/v1/", "registry:5000") to a bare host[:port].
func normalizeHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "docker.io" || h == "registry-1.docker.io" {
		return "index.docker.io"
	}
	return h
}

// Resolve implements authn.Keychain.
func (k *ConfigKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := normalizeHost(r.RegistryStr())
	if h, ok := k.helpers[host]; ok {
		return helperAuth(h, r.RegistryStr())
	}
	if a, ok := k.auths[host]; ok {
		return authn.FromConfig(a), nil
	}
	if k.store != "" {
		return helperAuth(k.store, r.RegistryStr())
	}
	return authn.Anonymous, nil
}

// helperName is what a credential helper may be called: the program run is
// docker-credential-<name>, found on PATH, so no name may hold a path.
var helperName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// helperAuth asks docker-credential-<helper> for server's credentials
// (the docker-credential-helpers protocol: "get", the server on stdin,
// {"Username", "Secret"} on stdout; a "<token>" user is an identity
// token). A helper that knows no credentials for server means anonymous.
func helperAuth(helper, server string) (authn.Authenticator, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(server)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(string(out)+stderr.String(), "credentials not found") {
			return authn.Anonymous, nil
		}
		return nil, fmt.Errorf("credential helper %s for %s: %w: %s", helper, server, err, strings.TrimSpace(string(out)+stderr.String()))
	}
	var c struct{ Username, Secret string }
	if err := json.Unmarshal(out, &c); err != nil {
		return nil, fmt.Errorf("credential helper %s for %s: parsing its answer: %w", helper, server, err)
	}
	if c.Username == "<token>" {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: c.Secret}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Secret}), nil
}
