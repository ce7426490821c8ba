package runtime

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

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
		// docker run --device --ulimit --sysctl --shm-size --init and the
		// CPU and memory options, with no_new_privs left unset.
		{"docker-options", SpecInput{
			ID: "opt789", Rootfs: "/r", Args: []string{"sh", "-c", "ulimit -n"},
			Security: Security{AllowNewPrivileges: true},
			Devices:  []Device{{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: 0o666, Permissions: "rw"}},
			Rlimits:  []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}},
			Sysctls:  map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000"},
			ShmSize:  1 << 20, Init: "/usr/bin/hostd-shim",
			Limits: Limits{MemoryBytes: 64 << 20, MemorySwap: -1, MemoryReservation: 32 << 20, CPUShares: 512,
				CPUQuota: 50000, CPUPeriod: 200000, CpusetCpus: "0", CpusetMems: "0"},
		}},
		// --privileged: every capability and device, nothing masked,
		// /sys writable, no seccomp (even in a seccomp build).
		{"privileged", SpecInput{
			ID: "priv1", Rootfs: "/r", Args: []string{"true"}, Seccomp: true,
			Caps:     []string{"CAP_CHOWN", "CAP_SYS_ADMIN"},
			Security: Security{Privileged: true},
			Devices:  []Device{{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0, FileMode: 0o660, GID: 6, Permissions: "rwm"}},
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

func TestBuildSpecSeccompOptions(t *testing.T) {
	base := SpecInput{ID: "sec", Rootfs: "/r", Args: []string{"true"}, Seccomp: true}
	def, err := BuildSpec(base)
	if err != nil {
		t.Fatal(err)
	}
	if def.Linux.Seccomp == nil || def.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("default: got %+v, want Docker's default profile", def.Linux.Seccomp)
	}
	un := base
	un.Security.SeccompUnconfined = true
	if s, err := BuildSpec(un); err != nil || s.Linux.Seccomp != nil {
		t.Errorf("seccomp=unconfined: got %v, %v, want no filter", s.Linux.Seccomp, err)
	}
	custom := base
	custom.Security.SeccompProfile = `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	s, err := BuildSpec(custom)
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Linux.Seccomp; p == nil || p.DefaultAction != specs.ActAllow || len(p.Syscalls) != 1 || strings.Join(p.Syscalls[0].Names, ",") != "mkdir,mkdirat" {
		t.Errorf("custom profile: got %+v, want allow all but mkdir, mkdirat", p)
	}
	// A privileged container with a profile of its own still gets it.
	custom.Security.Privileged = true
	if s, err := BuildSpec(custom); err != nil || s.Linux.Seccomp == nil {
		t.Errorf("privileged with a profile: got %v, %v, want the profile", s.Linux.Seccomp, err)
	}
	noSupport := custom
	noSupport.Seccomp = false
	if _, err := BuildSpec(noSupport); err == nil || !strings.Contains(err.Error(), "without seccomp") {
		t.Errorf("a profile without seccomp support: got %v, want an error", err)
	}
	bad := base
	bad.Security.SeccompProfile = "{not json"
	if _, err := BuildSpec(bad); err == nil || !strings.Contains(err.Error(), "seccomp profile") {
		t.Errorf("a bad profile: got %v, want an error naming it", err)
	}
	if err := CheckSeccompProfile(custom.Security.SeccompProfile); err != nil {
		t.Errorf("CheckSeccompProfile: %v", err)
	}
	if err := CheckSeccompProfile(`{"syscalls": 1}`); err == nil {
		t.Error("CheckSeccompProfile: a profile whose syscalls are not a list passed")
	}
}

// TestDefaultSeccompArchitectures: Docker's profile covers x86-64 and i386
// always, and x32 exactly where the kernel runs x32 calls.
func TestDefaultSeccompArchitectures(t *testing.T) {
	s, err := BuildSpec(SpecInput{ID: "arch", Rootfs: "/r", Args: []string{"true"}, Seccomp: true})
	if err != nil {
		t.Fatal(err)
	}
	archs := s.Linux.Seccomp.Architectures
	for _, a := range []specs.Arch{specs.ArchX86_64, specs.ArchX86} {
		if !slices.Contains(archs, a) {
			t.Errorf("architectures %v lack %s", archs, a)
		}
	}
	if got := slices.Contains(archs, specs.ArchX32); got != X32Enabled() {
		t.Errorf("architectures %v: x32 listed %v, but the kernel runs x32 calls: %v", archs, got, X32Enabled())
	}
}
