package reboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/fleetlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/window"
)

// ConfigPath is where cloud-config's bulkhead.update lands.
const ConfigPath = "/etc/bulkhead/update.yaml"

// Strategy names as written in update.yaml.
const (
	StrategyImmediate = "immediate"
	StrategyWindow    = "window"
	StrategyFleetLock = "fleetlock"
	StrategyEtcdLock  = "etcd-lock"
)

// Config is the reboot part of update.yaml. The updater's own keys (channel,
// url, policy, interval) share the file: updater.Config embeds Config with
// `yaml:",inline"` and decodes the whole file strictly. For example:
//
//	channel: stable
//	url: https://updates.example.org/
//	strategy: etcd-lock            # immediate | window | fleetlock | etcd-lock
//	etcd:
//	  endpoints: [https://10.0.0.1:2379]
//	  group: workers               # "" is locksmith's default group
//	  ca_file: /etc/bulkhead/etcd/ca.pem
//	  cert_file: /etc/bulkhead/etcd/client.pem
//	  key_file: /etc/bulkhead/etcd/client-key.pem
//	window:                        # optional with a lock, required by window
//	  days: [mon-fri]
//	  start: "02:00"
//	  length: 2h                   # or end: "04:00"
//	  timezone: Europe/Berlin      # local (default) | UTC | IANA name
//	fleetlock:                     # with strategy fleetlock
//	  base_url: http://airlock.example.org:3333/
//	  group: default
//	rollout_wariness: 0.5          # overrides the machine-id hash
type Config struct {
	// Strategy is immediate (the default), window, fleetlock or etcd-lock.
	Strategy string `yaml:"strategy,omitempty"`
	// Window is required by the window strategy; with fleetlock or
	// etcd-lock it also applies: the host waits for the window, then for
	// the lock.
	Window    *WindowConfig    `yaml:"window,omitempty"`
	FleetLock *FleetLockConfig `yaml:"fleetlock,omitempty"`
	Etcd      *EtcdConfig      `yaml:"etcd,omitempty"`
	// RolloutWariness overrides the machine-id hash in [0, 1]: 0 updates
	// first in every rollout, 1 last.
	RolloutWariness *float64 `yaml:"rollout_wariness,omitempty"`
}

// WindowConfig is a maintenance window: on Days, from Start for Length (or
// until End) in Timezone.
type WindowConfig struct {
	Days     []string `yaml:"days,omitempty"`     // mon..sun, ranges like mon-fri; empty = every day
	Start    string   `yaml:"start"`              // HH:MM
	Length   string   `yaml:"length,omitempty"`   // Go duration, e.g. 2h
	End      string   `yaml:"end,omitempty"`      // HH:MM, the next day if <= start
	Timezone string   `yaml:"timezone,omitempty"` // local (default), UTC or an IANA name
}

// FleetLockConfig points at a FleetLock server (e.g. airlock).
type FleetLockConfig struct {
	BaseURL string `yaml:"base_url"`
	Group   string `yaml:"group,omitempty"` // default "default", as in Zincati
}

// EtcdConfig points at the etcd cluster holding locksmith's semaphore.
type EtcdConfig struct {
	Endpoints []string `yaml:"endpoints"`
	Group     string   `yaml:"group,omitempty"` // "" is locksmith's default group
	// MaxHolders is refused: the group's size is the operator's (hostctl
	// reboot-lock set-max), read by hosts from etcd. It stays a known key
	// so that an old configuration gets that answer, not "unknown field".
	MaxHolders int    `yaml:"max_holders,omitempty"`
	CAFile     string `yaml:"ca_file,omitempty"`
	CertFile   string `yaml:"cert_file,omitempty"`
	KeyFile    string `yaml:"key_file,omitempty"`
}

// ErrInvalidConfig wraps every configuration problem.
var ErrInvalidConfig = errors.New("invalid update configuration")

// ParseConfig decodes a document holding only the reboot keys strictly
// (unknown keys are errors) and validates it. update.yaml as a whole, with
// the updater's keys, is updater.ParseConfig's: that is the one definition
// of the file, and it embeds Config.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if p := c.Validate(); len(p) > 0 {
		return Config{}, fmt.Errorf("%w:\n  %s", ErrInvalidConfig, strings.Join(p, "\n  "))
	}
	return c, nil
}

// Validate returns every problem as "path: message".
func (c Config) Validate() []string {
	var p []string
	add := func(path, format string, a ...any) { p = append(p, path+": "+fmt.Sprintf(format, a...)) }
	switch c.Strategy {
	case "", StrategyImmediate:
	case StrategyWindow:
		if c.Window == nil {
			add("window", "required by strategy window")
		}
	case StrategyFleetLock:
		if c.FleetLock == nil {
			add("fleetlock", "required by strategy fleetlock")
		}
	case StrategyEtcdLock:
		if c.Etcd == nil {
			add("etcd", "required by strategy etcd-lock")
		}
	default:
		add("strategy", "%q is not one of immediate, window, fleetlock, etcd-lock", c.Strategy)
	}
	if w := c.Window; w != nil {
		if _, err := window.ParseDays(w.Days); err != nil {
			for _, e := range strings.Split(err.Error(), "\n") {
				add("window.days", "%s", e)
			}
		}
		start, err := window.ParseClock(w.Start)
		if err != nil {
			add("window.start", "%v", err)
		}
		switch {
		case w.Length == "" && w.End == "":
			add("window", "needs length or end")
		case w.Length != "" && w.End != "":
			add("window", "has both length and end; give one")
		case w.Length != "":
			d, err := time.ParseDuration(w.Length)
			if err != nil {
				add("window.length", "%v", err)
			} else if d <= 0 || d > window.MaxLength {
				add("window.length", "%s must be > 0 and <= %s", w.Length, window.MaxLength)
			}
		default:
			end, err := window.ParseClock(w.End)
			if err != nil {
				add("window.end", "%v", err)
			} else if err == nil && end == start && w.Start != "" {
				add("window.end", "equals start")
			}
		}
		if tz := w.Timezone; tz != "" && tz != "local" && tz != "UTC" {
			if _, err := time.LoadLocation(tz); err != nil && !validZoneName(tz) {
				add("window.timezone", "%q is not local, UTC or an IANA zone name", tz)
			}
		}
	}
	if f := c.FleetLock; f != nil {
		if u, err := url.Parse(f.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("fleetlock.base_url", "%q is not an http(s) URL", f.BaseURL)
		}
		if f.Group != "" && !fleetlock.ValidGroup(f.Group) {
			add("fleetlock.group", "%q does not match ^[a-zA-Z0-9.-]+$", f.Group)
		}
	}
	if e := c.Etcd; e != nil {
		if len(e.Endpoints) == 0 {
			add("etcd.endpoints", "at least one is required")
		}
		for i, ep := range e.Endpoints {
			if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add(fmt.Sprintf("etcd.endpoints[%d]", i), "%q is not an http(s) URL", ep)
			}
		}
		if e.MaxHolders != 0 {
			add("etcd.max_holders", "hosts no longer size the group (each overwrote the others): the operator sets it once with hostctl reboot-lock set-max N")
		}
		if (e.CertFile == "") != (e.KeyFile == "") {
			add("etcd", "cert_file and key_file go together")
		}
	}
	if w := c.RolloutWariness; w != nil && !(*w >= 0 && *w <= 1) {
		add("rollout_wariness", "%v must be within [0, 1]", *w)
	}
	return p
}

// validZoneName accepts names that look like IANA zones when this machine
// cannot load them (the host's tzdata may differ from ours).
func validZoneName(tz string) bool {
	if strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") {
		return false
	}
	return strings.Contains(tz, "/")
}

// StrategyName is the configured strategy, immediate when unset.
func (c Config) StrategyName() string {
	if c.Strategy == "" {
		return StrategyImmediate
	}
	return c.Strategy
}

// FleetLockGroup is the configured group or Zincati's default.
func (f FleetLockConfig) FleetLockGroup() string {
	if f.Group == "" {
		return fleetlock.DefaultGroup
	}
	return f.Group
}

// BuildWindow turns the configuration into window arithmetic, loading the
// time zone under root.
func (w WindowConfig) BuildWindow(root fsroot.Root) (window.Window, error) {
	var out window.Window
	var err error
	if out.Days, err = window.ParseDays(w.Days); err != nil {
		return out, fmt.Errorf("window.days: %w", err)
	}
	if out.Start, err = window.ParseClock(w.Start); err != nil {
		return out, fmt.Errorf("window.start: %w", err)
	}
	if w.End != "" {
		end, err := window.ParseClock(w.End)
		if err != nil {
			return out, fmt.Errorf("window.end: %w", err)
		}
		out.End = &end
	} else if out.Length, err = time.ParseDuration(w.Length); err != nil {
		return out, fmt.Errorf("window.length: %w", err)
	}
	if out.Location, err = window.LoadLocation(root, w.Timezone); err != nil {
		return out, fmt.Errorf("window.timezone: %w", err)
	}
	return out, out.Validate()
}
