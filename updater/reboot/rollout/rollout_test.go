package rollout

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

var start = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	r := Rollout{Start: start, Duration: 10 * time.Hour}
	for _, tc := range []struct {
		name     string
		r        Rollout
		wariness float64
		now      time.Time
		allowed  bool
		at       time.Time
	}{
		{"no rollout", Rollout{}, 0.9, start, true, time.Time{}},
		{"eager host at start", r, 0, start, true, start},
		{"before start", r, 0, start.Add(-time.Second), false, start},
		{"half wary, too early", r, 0.5, start.Add(4 * time.Hour), false, start.Add(5 * time.Hour)},
		{"half wary, on time", r, 0.5, start.Add(5 * time.Hour), true, start.Add(5 * time.Hour)},
		{"most wary at end", r, 1, start.Add(10 * time.Hour), true, start.Add(10 * time.Hour)},
		{"out of range clamps", r, 7, start.Add(10 * time.Hour), true, start.Add(10 * time.Hour)},
		{"paused", Rollout{Start: start, Duration: time.Hour, Paused: true}, 0, start.Add(48 * time.Hour), false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.r, tc.wariness, tc.now)
			if d.Allowed != tc.allowed || !d.At.Equal(tc.at) {
				t.Errorf("got %v at %v (%s), want %v at %v", d.Allowed, d.At, d.Reason, tc.allowed, tc.at)
			}
		})
	}
}

// TestWarinessDistribution checks that 10,000 machine ids spread evenly: each
// of 10 buckets holds 10% +- 1.5% (about 5 standard deviations), the mean is
// near 0.5, and the value is stable.
func TestWarinessDistribution(t *testing.T) {
	const n, buckets = 10000, 10
	var count [buckets]int
	sum := 0.0
	for i := range n {
		id := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)
		w := Wariness(id)
		if w < 0 || w >= 1 {
			t.Fatalf("Wariness(%s) = %v, want in [0, 1)", id, w)
		}
		if w != Wariness(id+"\n") {
			t.Fatalf("Wariness(%s) changes with a trailing newline", id)
		}
		count[int(w*buckets)]++
		sum += w
	}
	for i, c := range count {
		if c < 850 || c > 1150 {
			t.Errorf("bucket %d: got %d ids, want 1000 +- 150", i, c)
		}
	}
	if mean := sum / n; math.Abs(mean-0.5) > 0.01 {
		t.Errorf("got mean %.4f, want 0.5 +- 0.01", mean)
	}
}

func TestHostWariness(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	if _, err := HostWariness(root, nil); err == nil {
		t.Error("missing machine-id: got nil error")
	}
	id := "3d1219c7c4c5404aaa1f6d2a48adfda4\n"
	if err := os.MkdirAll(filepath.Join(string(root), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Join("/etc/machine-id"), []byte(id), 0o444); err != nil {
		t.Fatal(err)
	}
	got, err := HostWariness(root, nil)
	if err != nil || got != Wariness(id) {
		t.Errorf("got %v, %v, want %v", got, err, Wariness(id))
	}
	o := 0.25
	if got, _ := HostWariness(root, &o); got != 0.25 {
		t.Errorf("override: got %v, want 0.25", got)
	}
	bad := 1.5
	if _, err := HostWariness(root, &bad); err == nil {
		t.Error("override 1.5: got nil error")
	}
}

func TestEncoding(t *testing.T) {
	r := Rollout{Start: start, Duration: 36 * time.Hour, Paused: true}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"start":"2026-11-23T12:00:00Z","duration":"36h0m0s","paused":true}`; string(j) != want {
		t.Errorf("got %s, want %s", j, want)
	}
	y, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "start: 2026-11-23T12:00:00Z\nduration: 36h0m0s\npaused: true\n"; string(y) != want {
		t.Errorf("got %q, want %q", y, want)
	}
	var back Rollout
	if err := json.Unmarshal(j, &back); err != nil || back != r {
		t.Errorf("JSON round trip: got %+v, %v", back, err)
	}
	back = Rollout{}
	if err := yaml.Unmarshal(y, &back); err != nil || !back.Start.Equal(r.Start) || back.Duration != r.Duration || !back.Paused {
		t.Errorf("YAML round trip: got %+v, %v", back, err)
	}
}

// TestEmbedded is how the updater's channel file carries a rollout.
func TestEmbedded(t *testing.T) {
	type channel struct {
		Version string  `yaml:"version" json:"version"`
		Rollout Rollout `yaml:"rollout" json:"rollout"`
	}
	for _, tc := range []struct {
		name, in, err string
	}{
		{"yaml ok", "version: \"2\"\nrollout:\n  start: 2026-11-23T12:00:00Z\n  duration: 48h\n", ""},
		{"yaml unknown", "version: \"2\"\nrollout:\n  start: 2026-11-23T12:00:00Z\n  lenght: 48h\n", "field lenght not found"},
		{"yaml bad duration", "rollout:\n  duration: two days\n", "rollout.duration"},
		{"yaml negative", "rollout:\n  duration: -1h\n", "negative"},
		{"json ok", `{"version":"2","rollout":{"start":"2026-11-23T12:00:00Z","duration":"48h"}}`, ""},
		{"json unknown", `{"rollout":{"pause":true}}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c channel
			var err error
			if strings.HasPrefix(tc.name, "json") {
				err = json.Unmarshal([]byte(tc.in), &c)
			} else {
				dec := yaml.NewDecoder(strings.NewReader(tc.in))
				dec.KnownFields(true)
				err = dec.Decode(&c)
			}
			if tc.err == "" {
				if err != nil || c.Rollout.Duration != 48*time.Hour {
					t.Errorf("got %+v, %v, want 48h", c.Rollout, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error with %q", err, tc.err)
			}
		})
	}
}

func FuzzRolloutYAML(f *testing.F) {
	f.Add([]byte("start: 2026-11-23T12:00:00Z\nduration: 48h\npaused: false\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rollout
		if yaml.Unmarshal(data, &r) == nil {
			_ = Decide(r, 0.5, start)
		}
	})
}
