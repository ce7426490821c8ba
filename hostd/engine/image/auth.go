package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json that holds credentials
// ("auths": registry -> {auth, username, password, identitytoken}).
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// ConfigKeychain resolves credentials from one docker config.json file. A
// missing file means anonymous access everywhere.
type ConfigKeychain struct {
	auths map[string]authn.AuthConfig
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
	if a, ok := k.auths[normalizeHost(r.RegistryStr())]; ok {
		return authn.FromConfig(a), nil
	}
	return authn.Anonymous, nil
}
