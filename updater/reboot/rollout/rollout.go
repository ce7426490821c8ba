package rollout

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Rollout is a channel's staged release of its current version. The zero
// value releases to every host at once.
type Rollout struct {
	// Start is when the first (least wary) hosts may update.
	Start time.Time
	// Duration spreads the fleet: the most wary host (wariness 1) waits
	// until Start+Duration. In files it is a Go duration string ("48h").
	Duration time.Duration
	// Paused stops every host from starting this update, whatever the time.
	Paused bool
}

// wire is Rollout as it appears in JSON and YAML channel files.
type wire struct {
	Start    time.Time `json:"start,omitzero" yaml:"start,omitempty"`
	Duration string    `json:"duration,omitempty" yaml:"duration,omitempty"`
	Paused   bool      `json:"paused,omitempty" yaml:"paused,omitempty"`
}

func (r Rollout) wire() wire {
	w := wire{Start: r.Start, Paused: r.Paused}
	if r.Duration != 0 {
		w.Duration = r.Duration.String()
	}
	return w
}

func (w wire) rollout() (Rollout, error) {
	r := Rollout{Start: w.Start, Paused: w.Paused}
	if w.Duration != "" {
		d, err := time.ParseDuration(w.Duration)
		if err != nil {
			return Rollout{}, fmt.Errorf("duration: %w", err)
		}
		if d < 0 {
			return Rollout{}, fmt.Errorf("duration: %s is negative", w.Duration)
		}
		r.Duration = d
	}
	return r, nil
}

// MarshalJSON writes {"start","duration","paused"}.
func (r Rollout) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// UnmarshalJSON reads {"start","duration","paused"} and rejects other keys.
func (r *Rollout) UnmarshalJSON(data []byte) error {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	v, err := w.rollout()
	if err != nil {
		return fmt.Errorf("rollout.%w", err)
	}
	*r = v
	return nil
}

// MarshalYAML writes start, duration and paused.
func (r Rollout) MarshalYAML() (any, error) { return r.wire(), nil }

// UnmarshalYAML reads start, duration and paused. yaml.v3 does not pass
// KnownFields down to custom unmarshalers, so unknown keys are checked here.
func (r *Rollout) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var unknown []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch k := n.Content[i].Value; k {
			case "start", "duration", "paused":
			default:
				unknown = append(unknown, fmt.Sprintf("line %d: field %s not found in rollout", n.Content[i].Line, k))
			}
		}
		if len(unknown) > 0 {
			return errors.New(strings.Join(unknown, "; "))
		}
	}
	var w wire
	if err := n.Decode(&w); err != nil {
		return err
	}
	v, err := w.rollout()
	if err != nil {
		return fmt.Errorf("line %d: rollout.%w", n.Line, err)
	}
	*r = v
	return nil
}

// Decision says whether a host may start the update now, and if not, when.
type Decision struct {
	Allowed bool
	// At is the instant this host's turn comes (zero while paused).
	At     time.Time
	Reason string
}

// Decide is the pure rollout rule: a host may take the new version once
// now >= Start + wariness*Duration, unless the rollout is paused.
func Decide(r Rollout, wariness float64, now time.Time) Decision {
	if r.Paused {
		return Decision{Reason: "rollout paused"}
	}
	w := min(max(wariness, 0), 1)
	at := r.Start.Add(time.Duration(w * float64(r.Duration)))
	if now.Before(at) {
		return Decision{At: at, Reason: fmt.Sprintf("rollout reaches wariness %.3f at %s", w, at.UTC().Format(time.RFC3339))}
	}
	return Decision{Allowed: true, At: at, Reason: "in rollout"}
}

// Wariness maps a machine id to a value uniformly spread over [0, 1): the
// first 8 bytes of SHA-256 over a fixed label and the id. The label keeps it
// unrelated to other hashes of the same id; the same id always gets the same
// value, so a host does not hop between early and late from one check to
// the next.
func Wariness(machineID string) float64 {
	sum := sha256.Sum256([]byte("bulkhead rollout wariness\x00" + strings.TrimSpace(machineID)))
	// 53 bits: exactly representable in a float64.
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// HostWariness is the wariness of the host under root: override when set
// (it must lie in [0, 1]), otherwise Wariness of /etc/machine-id.
func HostWariness(root fsroot.Root, override *float64) (float64, error) {
	if override != nil {
		if *override < 0 || *override > 1 || *override != *override {
			return 0, fmt.Errorf("rollout wariness %v: must be within [0, 1]", *override)
		}
		return *override, nil
	}
	path := root.Join("/etc/machine-id")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading machine id: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return 0, fmt.Errorf("reading machine id: %s is empty", path)
	}
	return Wariness(string(b)), nil
}
