package storagesetup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

func TestStorageOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"devicemapper", Config{StorageDriver: "devicemapper", VG: "docker-vg", ContainerThinPool: "docker-pool"},
			`DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt dm.fs=xfs --storage-opt dm.thinpooldev=/dev/mapper/docker--vg-docker--pool --storage-opt dm.use_deferred_removal=true --storage-opt dm.use_deferred_deletion=true"` + "\n"},
		{"overlay2", Config{StorageDriver: "overlay2"}, `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"` + "\n"},
		{"overlay extra", Config{StorageDriver: "overlay", ExtraStorageOptions: "--storage-opt  overlay.size=10G "},
			`DOCKER_STORAGE_OPTIONS="--storage-driver overlay --storage-opt overlay.size=10G"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := storageOptions(tc.c); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExistingDriver(t *testing.T) {
	for _, tc := range []struct {
		opts, want string
		ok         bool
	}{
		{"", "", true},
		{"--storage-driver overlay2", "overlay2", true},
		{"--storage-driver=overlay", "overlay", true},
		{"-s devicemapper --storage-opt dm.fs=xfs", "devicemapper", true},
		{"--storage-opt dm.thinpooldev=/dev/mapper/a-b", "devicemapper", true},
		{"--storage-opt dm.basesize=10G", "", false},
	} {
		got, ok := existingDriver(tc.opts)
		if got != tc.want || ok != tc.ok {
			t.Errorf("existingDriver(%q): got %q %v, want %q %v", tc.opts, got, ok, tc.want, tc.ok)
		}
	}
	if got := currentOptions("# x\nDOCKER_STORAGE_OPTIONS=\" --storage-driver  overlay2 \"\n"); got != "--storage-driver overlay2" {
		t.Errorf("got %q", got)
	}
	if !isOldDataMetaMode("--storage-opt dm.datadev=/dev/a --storage-opt dm.metadatadev=/dev/b") {
		t.Error("old data/meta mode not recognised")
	}
}

func TestDMName(t *testing.T) {
	for _, tc := range []struct{ vg, lv, want string }{
		{"docker-vg", "docker-pool", "docker--vg-docker--pool"},
		{"vg", "pool", "vg-pool"},
		{"a--b", "c", "a----b-c"},
	} {
		got := dmName(tc.vg, tc.lv)
		if got != tc.want {
			t.Errorf("dmName(%q, %q): got %q, want %q", tc.vg, tc.lv, got, tc.want)
		}
		vg, lv, ok := splitDMName(got)
		if !ok || vg != tc.vg || lv != tc.lv {
			t.Errorf("splitDMName(%q): got %q %q %v", got, vg, lv, ok)
		}
	}
	if _, _, ok := splitDMName("nodash"); ok {
		t.Error("splitDMName accepted a name without a separator")
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/hostd":       "var-lib-hostd.mount",
		"/var/lib/containers/": "var-lib-containers.mount",
		"/srv/my-data":         `srv-my\x2ddata.mount`,
		"/srv/a b":             `srv-a\x20b.mount`,
		"/.hidden":             `\x2ehidden.mount`,
		"/":                    "-.mount",
	} {
		if got := unitName(in); got != want {
			t.Errorf("unitName(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestSplitPartition(t *testing.T) {
	for _, tc := range []struct{ in, disk, num string }{
		{"/dev/vda3", "/dev/vda", "3"},
		{"/dev/sda12", "/dev/sda", "12"},
		{"/dev/nvme0n1p2", "/dev/nvme0n1", "2"},
		{"/dev/mmcblk0p1", "/dev/mmcblk0", "1"},
		{"/dev/xvda1", "/dev/xvda", "1"},
	} {
		disk, num, ok := splitPartition(tc.in)
		if !ok || disk != tc.disk || num != tc.num {
			t.Errorf("splitPartition(%q): got %q %q %v, want %q %q", tc.in, disk, num, ok, tc.disk, tc.num)
		}
	}
	if _, _, ok := splitPartition("/dev/vda"); ok {
		t.Error("splitPartition accepted a whole disk")
	}
}

func TestPartitionScript(t *testing.T) {
	if got, want := partitionScript(2<<40), "label: dos\nstart=2048, type=8e\n"; got != want {
		t.Errorf("2 TiB: got %q, want %q", got, want)
	}
	if got, want := partitionScript(2<<40+512), "label: gpt\nstart=2048, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n"; got != want {
		t.Errorf("over 2 TiB: got %q, want %q", got, want)
	}
}

func TestParseWipefs(t *testing.T) {
	got := parseWipefs("# offset,uuid,label,type\n0x218,abc,,LVM2_member\n0x1fe,,,dos\n")
	if len(got) != 2 || got[0] != (signature{"0x218", "abc", "", "LVM2_member"}) || got[1].Type != "dos" {
		t.Errorf("got %+v", got)
	}
	if got := parseWipefs(""); len(got) != 0 {
		t.Errorf("got %+v, want none", got)
	}
}

func TestResolveInRoot(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	for _, p := range []string{"/dev/vdb", "/dev/disk/by-id/.keep"} {
		if err := os.MkdirAll(filepath.Dir(root.Join(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Join(p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"/dev/disk/by-id/rel":   "../../vdb",
		"/dev/disk/by-id/abs":   "/dev/vdb",
		"/dev/disk/by-id/chain": "rel",
		"/dev/disk/by-id/up":    "../../../../../dev/vdb",
		"/dev/disk/by-id/loop":  "loop",
	}
	for l, target := range links {
		if err := os.Symlink(target, root.Join(l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"/dev/vdb", "/dev/disk/by-id/rel", "/dev/disk/by-id/abs", "/dev/disk/by-id/chain", "/dev/disk/by-id/up"} {
		got, err := resolveInRoot(root, l)
		if err != nil || got != "/dev/vdb" {
			t.Errorf("resolveInRoot(%q): got %q, %v, want /dev/vdb", l, got, err)
		}
	}
	if _, err := resolveInRoot(root, "/dev/disk/by-id/loop"); err == nil {
		t.Error("got nil error for a symlink loop")
	}
	if _, err := resolveInRoot(root, "/dev/missing"); err == nil {
		t.Error("got nil error for a missing device")
	}
}
