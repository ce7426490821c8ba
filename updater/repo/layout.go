package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
)

// ChannelFormat is the channel file format.
const ChannelFormat = 1

// Paths inside a repository.
const (
	ChannelsDir  = "channels"
	VersionsDir  = "versions"
	ManifestName = "manifest.json"
	SigName      = "manifest.json.sig"
	// ChunksDir is the chunk store every version's chunk indexes share
	// (casync layout: chunks/<4 hex>/<id>.cacnk).
	ChunksDir = "chunks"
)

// ChannelPath is channels/<channel>.json.
func ChannelPath(channel string) string { return path.Join(ChannelsDir, channel+".json") }

// VersionPath is versions/<version>/<name>.
func VersionPath(version, name string) string { return path.Join(VersionsDir, version, name) }

// ErrInvalidChannel wraps problems with a channel name or file.
var ErrInvalidChannel = errors.New("invalid update channel")

// CheckChannelName accepts names usable as a file name.
func CheckChannelName(c string) error {
	if c == "" || strings.ContainsAny(c, "/\\") || strings.HasPrefix(c, ".") {
		return fmt.Errorf("%w: name %q", ErrInvalidChannel, c)
	}
	return nil
}

// Channel is channels/<channel>.json.
type Channel struct {
	Format  int              `json:"format"`
	Channel string           `json:"channel"`
	Image   string           `json:"image,omitempty"` // the image name the channel is for (TUF repositories)
	Version string           `json:"version"`
	Rollout *rollout.Rollout `json:"rollout,omitempty"` // nil: every host at once
}

// ParseChannel decodes and checks a channel file.
func ParseChannel(b []byte) (*Channel, error) {
	var c Channel
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidChannel, err)
	}
	var p []string
	if c.Format != ChannelFormat {
		p = append(p, fmt.Sprintf("format: %d, want %d", c.Format, ChannelFormat))
	}
	if err := payload.CheckVersion(c.Version); err != nil {
		p = append(p, fmt.Sprintf("version: %v", err))
	}
	if len(p) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidChannel, strings.Join(p, "; "))
	}
	return &c, nil
}
