package updater

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// DefaultChannel is the channel a host follows when update.yaml names none.
const DefaultChannel = "stable"

// Config is /etc/bulkhead/update.yaml (cloud-config's bulkhead.update): the
// updater's keys and the reboot strategy's, decoded strictly as one file.
type Config struct {
	reboot.Config `yaml:",inline"`
	// Channel is the channel followed; "" for stable.
	Channel string `yaml:"channel,omitempty"`
	// URL is the update repository (http(s)://, file:// or a directory).
	// Periodic checks run only when it is set.
	URL string `yaml:"url,omitempty"`
}

// LoadConfig reads update.yaml under root; a missing file is the default.
func LoadConfig(root fsroot.Root) (Config, error) {
	path := root.Join(reboot.ConfigPath)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Config{Channel: DefaultChannel}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("reading %s: %w", path, err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("reading %s: %w: %w", path, reboot.ErrInvalidConfig, err)
	}
	if p := c.Config.Validate(); len(p) > 0 {
		return Config{}, fmt.Errorf("reading %s: %w: %v", path, reboot.ErrInvalidConfig, p)
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	return c, nil
}
