package qemutests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// containersUserData declares storage on vdb and one web server container
// whose image comes from the test's registry on the host (10.0.2.2 in
// QEMU's user network). hostd learns that the plain-HTTP registry is
// allowed from its --insecure-registry flag, given in a drop-in (coreos
// units reload systemd before hostd starts).
const containersUserData = `#cloud-config
coreos:
  units:
    - name: hostd.service
      drop_ins:
        - name: 50-test-registry.conf
          content: |
            [Service]
            ExecStart=
            ExecStart=/usr/bin/hostd --insecure-registry %[1]s
bulkhead:
  storage:
    DEVS: [vdb]
    VG: vg-containers
  containers:
    - name: web
      image: %[1]s/test/busybox:1
      command: [sh, -c, "echo hello from web; mkdir -p /www; echo served-by-bulkhead > /www/index.html; exec httpd -f -p 80 -h /www"]
      ports: ["8080:80"]
      restart: always
      healthcheck:
        command: [wget, -q, -O, /dev/null, "http://127.0.0.1/"]
        interval: 2s
        retries: 3
`

// freePort returns a TCP port free on the host's loopback now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// psEntry is the part of `hostctl ps --json` the test reads.
type psEntry struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	State   string `json:"state"`
	Pid     int    `json:"pid"`
	Health  string `json:"health"`
	Managed bool   `json:"managed"`
	Spec    struct {
		Image string `json:"image"`
	} `json:"spec"`
}

// waitContainer polls `hostctl ps --json` until name is running and
// healthy, and returns it.
func waitContainer(t *testing.T, vm *VM, name string) psEntry {
	t.Helper()
	deadline := time.Now().Add(bootTimeout)
	var last string
	for time.Now().Before(deadline) {
		r := guestRun(t, vm, "hostctl ps --all --json")
		last = r.Stdout + r.Stderr
		var cs []psEntry
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &cs) == nil {
			for _, c := range cs {
				if c.Name == name && c.State == "running" && c.Health == "healthy" {
					return c
				}
			}
		}
		time.Sleep(3 * time.Second)
	}
	t.Fatalf("container %s not running and healthy; last ps: %s\nhostd:\n%s", name, last,
		sh(t, vm, "journalctl -b -u hostd --no-pager | tail -40"))
	return psEntry{}
}

// journalMono is the monotonic time (µs since boot) of the first entry
// of unit's journal matching grep, 0 when none.
func journalMono(t *testing.T, vm *VM, unit, grep string) int64 {
	t.Helper()
	out := sh(t, vm, fmt.Sprintf("journalctl -b -u %s -o json -g '%s' --no-pager | head -1", unit, grep))
	var e struct {
		Mono string `json:"__MONOTONIC_TIMESTAMP"`
	}
	if out == "" || json.Unmarshal([]byte(out), &e) != nil {
		return 0
	}
	v, _ := strconv.ParseInt(e.Mono, 10, 64)
	return v
}

// TestDeclaredContainers boots with a NoCloud seed whose cloud-config
// declares container storage on a spare disk and a web server container
// pulled from a registry the test serves: the container runs on the
// storage-setup volume under cgroup v2, logs, answers on its published
// port, and its health check gates the blessing of the boot.
func TestDeclaredContainers(t *testing.T) {
	image(t)
	testimg.RequireHost(t)
	host := testimg.Registry(t)
	testimg.Push(t, host+"/test/busybox:1", testimg.Image(t, v1.Config{Cmd: []string{"sh"}}))
	_, port, _ := net.SplitHostPort(host)
	guestRegistry := "10.0.2.2:" + port
	seed := makeSeed(t, fmt.Sprintf(containersUserData, guestRegistry), "-i", "iid-containers")
	fwd := freePort(t)
	vm := bootVM(t, BootOpts{
		Extra:   []Disk{newDisk(t, "vdb", "10G"), {File: seed, Bus: "sata", CDROM: true}},
		NetOpts: []string{fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:8080", fwd)},
	})
	checkBooted(t, vm)
	web := waitContainer(t, vm, "web")

	t.Run("storage-setup made the pool and /var/lib/hostd is on it", func(t *testing.T) {
		checkPool(t, vm, "vg-containers")
		got := strings.Fields(sh(t, vm, "findmnt -n -o SOURCE,FSTYPE /var/lib/hostd || true"))
		if len(got) != 2 || got[0] != "/dev/mapper/vg--containers-container--root--lv" || got[1] != "xfs" {
			t.Errorf("/var/lib/hostd mounted as %q, want the container root LV of vg-containers, xfs", got)
		}
		// The container's root filesystem is an overlay on that volume.
		if mnt := sh(t, vm, fmt.Sprintf("findmnt -n -o TARGET,OPTIONS -N %d /", web.Pid)); !strings.Contains(mnt, "/var/lib/hostd/") {
			t.Errorf("container root mount %q, want layers under /var/lib/hostd", mnt)
		}
	})
	t.Run("declared container runs", func(t *testing.T) {
		if !web.Managed || web.Spec.Image != guestRegistry+"/test/busybox:1" || web.Pid == 0 {
			t.Errorf("ps entry %+v, want managed, image %s/test/busybox:1 and a pid", web, guestRegistry)
		}
	})
	t.Run("cgroup v2", func(t *testing.T) {
		if ctl := sh(t, vm, "cat /sys/fs/cgroup/cgroup.controllers"); !strings.Contains(ctl, "memory") || !strings.Contains(ctl, "pids") {
			t.Errorf("cgroup.controllers %q, want the unified hierarchy with memory and pids", ctl)
		}
		if fs := sh(t, vm, "stat -f -c %T /sys/fs/cgroup"); fs != "cgroup2fs" {
			t.Errorf("/sys/fs/cgroup is %q, want cgroup2fs", fs)
		}
		cg := sh(t, vm, fmt.Sprintf("cat /proc/%d/cgroup", web.Pid))
		if !strings.HasPrefix(cg, "0::/") || strings.Contains(cg, "\n") {
			t.Fatalf("container cgroup %q, want a single v2 entry 0::/...", cg)
		}
		// A subtree systemd delegated: the container's own scope, which
		// systemd accounts and never trims.
		scope := "hostd-" + web.ID + ".scope"
		if want := "0::/hostd.slice/" + scope; cg != want {
			t.Errorf("container cgroup %q, want %q", cg, want)
		}
		if got := sh(t, vm, "systemctl show -p ActiveState -p Delegate "+scope); !strings.Contains(got, "ActiveState=active") || !strings.Contains(got, "Delegate=yes") {
			t.Errorf("%s: %q, want ActiveState=active and Delegate=yes", scope, got)
		}
		dir := "/sys/fs/cgroup" + strings.TrimPrefix(cg, "0::")
		if procs := sh(t, vm, "cat "+dir+"/cgroup.procs"); !strings.Contains("\n"+procs+"\n", fmt.Sprintf("\n%d\n", web.Pid)) {
			t.Errorf("%s/cgroup.procs = %q lacks the container's pid %d", dir, procs, web.Pid)
		}
		if self := sh(t, vm, "cat /proc/self/cgroup"); self == cg {
			t.Errorf("container shares the guest shell's cgroup %q", cg)
		}
	})
	t.Run("logs", func(t *testing.T) {
		if logs := sh(t, vm, "hostctl logs web"); !strings.Contains(logs, "hello from web") {
			t.Errorf("hostctl logs web = %q, want the container's greeting", logs)
		}
	})
	t.Run("published port answers inside the guest", func(t *testing.T) {
		got := sh(t, vm, `bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; printf "GET / HTTP/1.0\r\n\r\n" >&3; cat <&3'`)
		if !strings.Contains(got, "served-by-bulkhead") {
			t.Errorf("GET 127.0.0.1:8080 in the guest = %q", got)
		}
	})
	t.Run("published port answers from outside", func(t *testing.T) {
		c := http.Client{Timeout: 30 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", fwd))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "served-by-bulkhead") {
			t.Errorf("GET through the forwarded port: %s %q", resp.Status, body)
		}
	})
	t.Run("bless came after the container was healthy", func(t *testing.T) {
		healthy := journalMono(t, vm, "hostd", "health=healthy")
		blessed, _ := strconv.ParseInt(sh(t, vm, "systemctl show -p ExecMainStartTimestampMonotonic --value bulkhead-bless.service"), 10, 64)
		gate := sh(t, vm, "journalctl -b -u bulkhead-health --no-pager | tail -5")
		if healthy == 0 || blessed == 0 || blessed < healthy {
			t.Errorf("container healthy at %d µs, bless started at %d µs: want bless after healthy\nhealth gate:\n%s", healthy, blessed, gate)
		}
	})
}
