package runtime

import (
	"encoding/json"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestBuildSpecGolden(t *testing.T) {
	cases := []struct {
		name string
		in   SpecInput
	}{
		{"bridged-limited", SpecInput{
			ID: "abc123", Rootfs: "/var/lib/hostd/snapshots/abc123/rootfs", Args: []string{"nginx", "-g", "daemon off;"},
			Env: []string{"PATH=/usr/bin:/bin"}, Cwd: "/srv", UID: 101, GID: 101, Groups: []uint32{4},
			Hostname: "web", ReadOnly: true, Network: "/run/hostd/netns/abc123",
			Mounts: []Mount{{Source: "/srv/data", Destination: "/data", ReadOnly: true},
				{Destination: "/run", Tmpfs: true, ReadOnly: true, Options: []string{"nosuid", "nodev", "noexec", "size=1048576", "mode=1777"}}},
			Limits: Limits{MemoryBytes: 256 << 20, CPUs: 1.5, Pids: 100},
		}},
		{"host-network-root", SpecInput{
			ID: "def456", Rootfs: "/r", Args: []string{"true"}, Network: NetworkHost, Hostname: "ignored",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := BuildSpec(c.in)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(s, "", "  ")
			golden.Assert(t, "spec-"+c.name+".json", append(got, '\n'))
		})
	}
}

func TestBuildSpecNeedsBasics(t *testing.T) {
	for _, in := range []SpecInput{{Rootfs: "/r", Args: []string{"x"}}, {ID: "a", Rootfs: "rel", Args: []string{"x"}}, {ID: "a", Rootfs: "/r"}} {
		if _, err := BuildSpec(in); err == nil {
			t.Errorf("BuildSpec(%+v): got no error", in)
		}
	}
}

func TestParseMemory(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"", 0, false}, {"1048576", 1 << 20, false}, {"64k", 64 << 10, false}, {"512m", 512 << 20, false},
		{"2G", 2 << 30, false}, {"1gb", 1 << 30, false}, {"lots", 0, true}, {"-1m", 0, true}, {"1.5g", 0, true},
	}
	for _, c := range cases {
		got, err := ParseMemory(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseMemory(%q): got %d, %v, want %d (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
}
