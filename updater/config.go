package updater

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// DefaultChannel is the channel a host follows when update.yaml names none.
const DefaultChannel = "stable"

// Policies: what the periodic updater may do with a new version.
const (
	PolicyOff   = "off"   // no periodic checks
	PolicyCheck = "check" // check and report (hostctl status), write nothing
	PolicyStage = "stage" // write the slot and put it on trial, never reboot
	PolicyApply = "apply" // stage, then reboot through the reboot strategy (the default)
)

// MinInterval is the shortest interval update.yaml may set: a fleet
// checking more often would mostly load the repository.
const MinInterval = time.Minute

// Config is /etc/bulkhead/update.yaml (cloud-config's bulkhead.update): the
// updater's keys and the reboot strategy's, decoded strictly as one file.
// It is the one definition of that file: provisioning validates a
// bulkhead.update section with ParseConfig before writing it.
type Config struct {
	reboot.Config `yaml:",inline"`
	// Channel is the channel followed; "" for stable.
	Channel string `yaml:"channel,omitempty"`
	// URL is the update repository (http(s)://, file:// or a directory).
	// Periodic checks run only when it is set.
	URL string `yaml:"url,omitempty"`
	// Policy is off, check, stage or apply ("" is apply).
	Policy string `yaml:"policy,omitempty"`
	// Interval between periodic checks, a Go duration ("" is CheckInterval).
	Interval string `yaml:"interval,omitempty"`
	// Tries is how many boots a new version gets to bless itself before
	// GRUB falls back (greenboot's boot attempts); 0 is
	// bootcfg.DefaultTries.
	Tries int `yaml:"tries,omitempty"`
}

// TrialTries is the configured number of tries, DefaultTries when unset.
func (c Config) TrialTries() int {
	if c.Tries < 1 || c.Tries > bootcfg.MaxTries {
		return bootcfg.DefaultTries
	}
	return c.Tries
}

// PolicyName is the configured policy, apply when unset.
func (c Config) PolicyName() string {
	if c.Policy == "" {
		return PolicyApply
	}
	return c.Policy
}

// CheckEvery is the configured interval, CheckInterval when unset (or, for
// a configuration that did not validate, unreadable).
func (c Config) CheckEvery() time.Duration {
	d, err := time.ParseDuration(c.Interval)
	if err != nil || d < MinInterval {
		return CheckInterval
	}
	return d
}

// Validate returns every problem as "path: message", the reboot strategy's
// included.
func (c Config) Validate() []string {
	p := c.Config.Validate()
	switch c.Policy {
	case "", PolicyOff, PolicyCheck, PolicyStage, PolicyApply:
	default:
		p = append(p, fmt.Sprintf("policy: %q is not one of off, check, stage, apply", c.Policy))
	}
	if c.Interval != "" {
		if d, err := time.ParseDuration(c.Interval); err != nil {
			p = append(p, fmt.Sprintf("interval: %q is not a duration (e.g. 30m, 6h)", c.Interval))
		} else if d < MinInterval {
			p = append(p, fmt.Sprintf("interval: %s is shorter than %s", c.Interval, MinInterval))
		}
	}
	if c.Tries != 0 && (c.Tries < 1 || c.Tries > bootcfg.MaxTries) {
		p = append(p, fmt.Sprintf("tries: %d is not between 1 and %d", c.Tries, bootcfg.MaxTries))
	}
	return p
}

// ParseConfig decodes update.yaml strictly (an unknown key is an error) and
// validates it, reporting every problem with its path. The error wraps
// reboot.ErrInvalidConfig.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %w", reboot.ErrInvalidConfig, err)
	}
	if p := c.Validate(); len(p) > 0 {
		return Config{}, fmt.Errorf("%w:\n  %s", reboot.ErrInvalidConfig, strings.Join(p, "\n  "))
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	return c, nil
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
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return c, nil
}
