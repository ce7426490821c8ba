package builder

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func defaultDef(t *testing.T) *images.Definition {
	t.Helper()
	d, err := images.Default()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGrubConfigGolden(t *testing.T) {
	golden.Assert(t, "grub.cfg", []byte(GrubConfig()))
	golden.Assert(t, "efi-stub.cfg", []byte(EFIStubConfig("1234-ABCD")))
}

func TestMmdebstrapArgsGolden(t *testing.T) {
	in := newRootfsInputs(defaultDef(t), DefaultEpoch)
	args := MmdebstrapArgs(in, "/cache/hooks", "/cache/debs", "/cache/tree.tmp")
	golden.Assert(t, "mmdebstrap.args", []byte(strings.Join(args, "\n")+"\n"))
	golden.Assert(t, "pin-users.sh", []byte(in.PinnedUsers))
}

func TestRootfsKeyFollowsInputs(t *testing.T) {
	d := defaultDef(t)
	a := newRootfsInputs(d, DefaultEpoch).key()
	d.Debian.Packages = append(d.Debian.Packages, "less")
	if b := newRootfsInputs(d, DefaultEpoch).key(); a == b {
		t.Error("adding a package did not change the root tree cache key")
	}
	d2 := defaultDef(t)
	d2.Version = "9.9.9" // the version does not change the Debian tree
	if c := newRootfsInputs(d2, DefaultEpoch).key(); a != c {
		t.Error("changing only the version changed the root tree cache key")
	}
}

func TestLayoutGolden(t *testing.T) {
	parts, size := Layout(defaultDef(t), IDs{Name: "default", Version: "1.0.0"})
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%-13s %s %s start=%d size=%d\n", p.Label, p.Type, p.UUID, p.Start, p.Size)
		if p.Start%mib != 0 {
			t.Errorf("%s starts at %d, not MiB-aligned", p.Label, p.Start)
		}
	}
	fmt.Fprintf(&b, "disk %d\n", size)
	golden.Assert(t, "layout.txt", []byte(b.String()))
	if parts[1].Label != LabelESP || parts[len(parts)-1].Label != LabelRoot {
		t.Error("the ESP must be partition 2 (GRUB's BIOS prefix) and root the last (it grows)")
	}
}

func TestIDsAreStableAndDistinct(t *testing.T) {
	a := IDs{Name: "default", Version: "1.0.0"}
	if a.UUID("x") != a.UUID("x") {
		t.Error("same inputs, different UUIDs")
	}
	if a.UUID("x") == a.UUID("y") || a.UUID("x") == (IDs{Name: "default", Version: "1.0.1"}).UUID("x") {
		t.Error("different inputs, same UUID")
	}
	if u := a.UUID("x"); u[14] != '8' {
		t.Errorf("got %s, want a version-8 UUID", u)
	}
}

func TestKeepModules(t *testing.T) {
	dep := []byte(`kernel/fs/erofs/erofs.ko: kernel/lib/lz4_decompress.ko
kernel/lib/lz4_decompress.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/xen-netfront.ko:
kernel/net/netfilter/nf_nat.ko: kernel/net/netfilter/nf_conntrack.ko
kernel/net/netfilter/nf_conntrack.ko:
kernel/sound/snd.ko:
`)
	keep, total, missing, err := KeepModules(dep, []string{"erofs", "virtio-blk", "xen_netfront", "nf_*", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/xen-netfront.ko", "kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/erofs/erofs.ko", "kernel/lib/lz4_decompress.ko", "kernel/net/netfilter/nf_conntrack.ko", "kernel/net/netfilter/nf_nat.ko"}
	var got []string
	for _, m := range want {
		if keep[m] {
			got = append(got, m)
		}
	}
	if len(keep) != len(want) || !reflect.DeepEqual(got, want) || total != 8 {
		t.Errorf("kept %v of %d", keep, total)
	}
	if !reflect.DeepEqual(missing, []string{"nosuch"}) {
		t.Errorf("got missing %v, want [nosuch]", missing)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
