package networkd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/internal/testtree"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// TestRenderCorpus parses each network-config under testdata/in (v1 and v2
// examples from cloud-init's documentation, bad ones, and *.meta-data with
// network-interfaces as older NoCloud seeds have it) and compares the
// rendered files, or the errors, with testdata/out.
func TestRenderCorpus(t *testing.T) {
	ins, _ := filepath.Glob("testdata/in/*")
	if len(ins) == 0 {
		t.Fatal("no corpus")
	}
	for _, in := range ins {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			var nc cloudconfig.NetworkConfig
			if strings.HasSuffix(name, ".meta-data") {
				// Older NoCloud seeds: network-interfaces inside meta-data.
				var md cloudconfig.MetaData
				if md, err = cloudconfig.ParseMetaData(data); err == nil {
					nc, err = cloudconfig.ParseENI(md.NetworkInterfaces)
				}
			} else {
				nc, err = cloudconfig.ParseNetworkConfig(data)
			}
			if err != nil {
				fmt.Fprintf(&b, "## errors\n%s\n", err)
			} else {
				files := Render(nc, "iid-test")
				if len(files) == 0 {
					b.WriteString("## no files\n")
				}
				for _, f := range files {
					fmt.Fprintf(&b, "## %s\n%s", f.Name, f.Data)
				}
			}
			golden.Assert(t, "out/"+strings.TrimSuffix(name, ".yaml")+".txt", []byte(b.String()))
		})
	}
}

// host is a root with one virtio NIC in sysfs, an earlier instance's file
// and an administrator's file in /etc/systemd/network.
func host(t *testing.T) fsroot.Root {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	testtree.WriteFile(t, root.Join("/sys/class/net/ens3/address"), "52:54:00:12:34:56\n")
	testtree.WriteFile(t, root.Join("/sys/class/net/lo/address"), "00:00:00:00:00:00\n")
	// A bond took ens3's MAC: virtual, so not reconfigured as ens3's match.
	testtree.WriteFile(t, root.Join("/sys/class/net/bond0/address"), "52:54:00:12:34:56\n")
	testtree.WriteFile(t, root.Join("/sys/bus/virtio/drivers/virtio_net/bind"), "")
	testtree.WriteFile(t, root.Join("/sys/class/net/ens3/device/vendor"), "0x1af4\n")
	if err := os.Symlink(root.Join("/sys/bus/virtio/drivers/virtio_net"), root.Join("/sys/class/net/ens3/device/driver")); err != nil {
		t.Fatal(err)
	}
	testtree.WriteFile(t, root.Join(Dir, "10-cloud-init-old.network"), Marker+" (instance iid-old).\n[Match]\nName=eth9\n")
	testtree.WriteFile(t, root.Join(Dir, "20-admin.network"), "[Match]\nName=eth9\n")
	return root
}

func renderDoc(t *testing.T, doc string) []File {
	t.Helper()
	nc, err := cloudconfig.ParseNetworkConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return Render(nc, "iid-new")
}

const byMAC = "version: 2\nethernets:\n  nic0:\n    match: {macaddress: '52:54:00:12:34:56'}\n    addresses: [10.0.2.15/24]\n"

func listDir(t *testing.T, root fsroot.Root) string {
	t.Helper()
	entries, err := os.ReadDir(root.Join(Dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// exitErr is a real non-zero exit, as run.Exec returns.
func exitErr(t *testing.T) error {
	t.Helper()
	_, err := run.Exec{}.Run(context.Background(), run.Cmd{Name: "false"})
	if err == nil {
		t.Fatal("false(1) succeeded")
	}
	return err
}

// TestApply runs Apply against networkd in each state it can be found in
// during boot and compares the commands with a golden transcript.
func TestApply(t *testing.T) {
	fail := exitErr(t)
	for _, tc := range []struct {
		name    string
		respond func(c run.Cmd) ([]byte, error)
		offline bool
		want    string
	}{
		{"running", nil, false, Reloaded},
		{"not started yet", func(c run.Cmd) ([]byte, error) {
			switch c.Name {
			case "networkctl":
				return nil, fmt.Errorf("running networkctl reload: %w: Failed to connect to bus: No such file or directory", fail)
			case "systemctl":
				return []byte("inactive\n"), fail
			}
			return nil, nil
		}, false, NotRunning},
		{"running without D-Bus", func(c run.Cmd) ([]byte, error) {
			switch {
			case c.Name == "networkctl":
				return nil, fmt.Errorf("running networkctl reload: %w: Failed to connect to bus: No such file or directory", fail)
			case c.Name == "systemctl" && c.Args[0] == "is-active":
				return []byte("activating\n"), fail
			}
			return nil, nil
		}, false, Restarted},
		{"offline image tree", nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := host(t)
			rec := &run.Recorder{Respond: tc.respond}
			res, err := Applier{Root: root, Runner: rec, Offline: tc.offline}.Apply(context.Background(), renderDoc(t, byMAC))
			if err != nil {
				t.Fatal(err)
			}
			if res.Networkd != tc.want {
				t.Errorf("got networkd %q, want %q", res.Networkd, tc.want)
			}
			got := fmt.Sprintf("written %v\nremoved %v\nlinks %v\nfiles %s\n## commands\n%s",
				res.Written, res.Removed, res.Links, listDir(t, root), rec.Transcript())
			golden.Assert(t, "apply/"+strings.ReplaceAll(tc.name, " ", "-")+".txt", []byte(got))
		})
	}
}

// TestApplyAgainIsQuiet: the same files on disk are neither rewritten nor
// re-applied.
func TestApplyAgainIsQuiet(t *testing.T) {
	root := host(t)
	files := renderDoc(t, byMAC)
	if _, err := (Applier{Root: root, Runner: &run.Recorder{}}).Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	rec := &run.Recorder{}
	res, err := Applier{Root: root, Runner: rec}.Apply(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || rec.Transcript() != "" {
		t.Errorf("got %+v and commands %q, want nothing done", res, rec.Transcript())
	}
}

// TestApplyNothingRemovesOurs: an instance without network-config removes
// the files of the previous one, and only those.
func TestApplyNothingRemovesOurs(t *testing.T) {
	root := host(t)
	rec := &run.Recorder{}
	res, err := Applier{Root: root, Runner: rec}.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listDir(t, root), "20-admin.network"; got != want {
		t.Errorf("got files %q, want %q", got, want)
	}
	if got, want := rec.Transcript(), "networkctl reload\n"; got != want {
		t.Errorf("got commands %q, want %q", got, want)
	}
	if fmt.Sprint(res.Removed) != "[10-cloud-init-old.network]" {
		t.Errorf("got removed %v, want [10-cloud-init-old.network]", res.Removed)
	}
}

// TestApplyRefusesForeignFile: a file of the same name that we did not
// write is an error, and nothing is written or removed.
func TestApplyRefusesForeignFile(t *testing.T) {
	root := host(t)
	testtree.WriteFile(t, root.Join(Dir, "10-cloud-init-nic0.network"), "[Match]\nName=mine\n")
	before := listDir(t, root)
	rec := &run.Recorder{}
	_, err := Applier{Root: root, Runner: rec}.Apply(context.Background(), renderDoc(t, byMAC))
	if err == nil || !strings.Contains(err.Error(), "not written by bulkhead-provision") {
		t.Fatalf("got %v, want an error about a file we did not write", err)
	}
	if got := listDir(t, root); got != before {
		t.Errorf("got files %q, want %q (unchanged)", got, before)
	}
	if rec.Transcript() != "" {
		t.Errorf("got commands %q, want none", rec.Transcript())
	}
}

// TestApplyReconfigureFails: networkd answered reload but could not
// reconfigure the link: that is an error.
func TestApplyReconfigureFails(t *testing.T) {
	root := host(t)
	boom := errors.New("running networkctl reconfigure ens3: exit status 1: Interface ens3 is busy")
	rec := &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
		if len(c.Args) > 0 && c.Args[0] == "reconfigure" {
			return nil, boom
		}
		return nil, nil
	}}
	_, err := Applier{Root: root, Runner: rec}.Apply(context.Background(), renderDoc(t, byMAC))
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    File
		want bool
	}{
		{"mac", File{Match: cloudconfig.NetMatch{MAC: "52:54:00:12:34:56"}}, true},
		{"mac other", File{Match: cloudconfig.NetMatch{MAC: "52:54:00:12:34:57"}}, false},
		{"glob", File{Match: cloudconfig.NetMatch{Name: "en*"}, Names: []string{"en*"}}, true},
		{"old or new name", File{Match: cloudconfig.NetMatch{Name: "eth0 ens3"}, Names: []string{"eth0", "ens3"}}, true},
		{"driver", File{Match: cloudconfig.NetMatch{Driver: "virtio*"}}, true},
		{"driver and other mac", File{Match: cloudconfig.NetMatch{Driver: "virtio_net", MAC: "00:11:22:33:44:55"}}, false},
		{"empty", File{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := matches(tc.f, "ens3", "52:54:00:12:34:56", "virtio_net"); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
