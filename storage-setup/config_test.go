package storagesetup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

func writeTree(t *testing.T, files map[string]string) fsroot.Root {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	for name, data := range files {
		p := root.Join(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDefaults(t *testing.T) {
	got := Defaults()
	want := Config{
		StorageDriver:            "overlay2",
		DataSize:                 "40%FREE",
		MinDataSize:              "2G",
		ChunkSize:                "512K",
		AutoExtendPool:           true,
		PoolAutoextendThreshold:  60,
		PoolAutoextendPercent:    20,
		DeviceWaitTimeout:        60 * time.Second,
		ContainerThinPool:        "docker-pool",
		ContainerRootLVName:      "container-root-lv",
		ContainerRootLVSize:      "40%FREE",
		ContainerRootLVMountPath: "/var/lib/hostd",
		ContainerRootLVThin:      true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	cfg, err := Load(writeTree(t, nil), "", quiet)
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load with no files: got %+v, %v", cfg, err)
	}
}

// Every option, set in the sysconfig file.
func TestLoadEveryOption(t *testing.T) {
	root := writeTree(t, map[string]string{DockerSetupFile: `
# a docker-storage-setup file as Atomic Host users wrote them
STORAGE_DRIVER=devicemapper
DEVS="/dev/vdb
      /dev/vdc"   # two disks
VG=docker-vg
ROOT_SIZE=8G
DATA_SIZE=60%VG
MIN_DATA_SIZE=4096
POOL_META_SIZE=64M
CHUNK_SIZE=1M
GROWPART=true
AUTO_EXTEND_POOL=no
POOL_AUTOEXTEND_THRESHOLD=80
POOL_AUTOEXTEND_PERCENT=30
DEVICE_WAIT_TIMEOUT=0
WIPE_SIGNATURES=true
CONTAINER_THINPOOL=thinpool
CONTAINER_ROOT_LV_NAME='root-lv'
CONTAINER_ROOT_LV_SIZE=10GiB
CONTAINER_ROOT_LV_MOUNT_PATH=/var/lib/containers/
CONTAINER_ROOT_LV_THIN=no
export EXTRA_STORAGE_OPTIONS="--storage-opt dm.basesize=30G"
SOMETHING_ELSE=ignored
`})
	got, err := Load(root, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		StorageDriver: "devicemapper", Devs: []string{"/dev/vdb", "/dev/vdc"}, VG: "docker-vg",
		RootSize: "8G", DataSize: "60%VG", MinDataSize: "4096", PoolMetaSize: "64M", ChunkSize: "1M",
		GrowPart: true, AutoExtendPool: false, PoolAutoextendThreshold: 80, PoolAutoextendPercent: 30,
		DeviceWaitTimeout: 0, WipeSignatures: true, ContainerThinPool: "thinpool",
		ContainerRootLVName: "root-lv", ContainerRootLVSize: "10GiB", ContainerRootLVMountPath: "/var/lib/containers",
		ContainerRootLVThin: false, ExtraStorageOptions: "--storage-opt dm.basesize=30G",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// Layers: sysconfig, then container-storage-setup, then cloud-config YAML.
func TestLoadLayers(t *testing.T) {
	root := writeTree(t, map[string]string{
		DockerSetupFile:    "VG=one\nDATA_SIZE=10G\nCHUNK_SIZE=256K\n",
		ContainerSetupFile: "VG=two\nCHUNK_SIZE=128K\n",
		CloudConfigFile:    "VG: three\nDEVS: [vdb, /dev/vdc]\nAUTO_EXTEND_POOL: \"yes\"\nPOOL_AUTOEXTEND_THRESHOLD: 70\nGROWPART: yes\nWIPE_SIGNATURES: true\n",
	})
	got, err := Load(root, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got.VG != "three" || got.DataSize != "10G" || got.ChunkSize != "128K" || !reflect.DeepEqual(got.Devs, []string{"vdb", "/dev/vdc"}) ||
		!got.AutoExtendPool || got.PoolAutoextendThreshold != 70 || !got.GrowPart || !got.WipeSignatures {
		t.Errorf("got %+v", got)
	}
	// DEVS as a space-separated string in YAML.
	root = writeTree(t, map[string]string{CloudConfigFile: "DEVS: vdb vdc\nVG: docker-vg\nSTORAGE_DRIVER: overlay2\n"})
	got, err = Load(root, "", quiet)
	if err != nil || !reflect.DeepEqual(got.Devs, []string{"vdb", "vdc"}) {
		t.Errorf("got %q, %v", got.Devs, err)
	}
	// --config FILE replaces all three.
	root = writeTree(t, map[string]string{DockerSetupFile: "VG=ignored\n", "/tmp/in.yaml": "VG: chosen\n"})
	got, err = Load(root, "/tmp/in.yaml", quiet)
	if err != nil || got.VG != "chosen" {
		t.Errorf("got %q, %v, want the --config file only", got.VG, err)
	}
	if _, err := Load(root, "/tmp/missing", quiet); err == nil {
		t.Error("got nil error for a missing --config file")
	}
}

// Bad values: every problem is reported with its file and option name.
func TestLoadReportsEveryBadValue(t *testing.T) {
	root := writeTree(t, map[string]string{
		DockerSetupFile: `STORAGE_DRIVER=btrfs
DATA_SIZE=40%PVS
MIN_DATA_SIZE=2X
POOL_META_SIZE=-1
CHUNK_SIZE=100K
GROWPART=on
AUTO_EXTEND_POOL=1
POOL_AUTOEXTEND_THRESHOLD=101
POOL_AUTOEXTEND_PERCENT=0
DEVICE_WAIT_TIMEOUT=soon
WIPE_SIGNATURES=1
VG=-bad
CONTAINER_ROOT_LV_SIZE=
ROOT_SIZE=99999999999999999999999T
CONTAINER_ROOT_LV_MOUNT_PATH=relative/path
CONTAINER_ROOT_LV_THIN=maybe
DOCKER_ROOT_VOLUME=yes
`,
		CloudConfigFile: "NOT_AN_OPTION: 1\nDEVS: {a: b}\n",
	})
	_, err := Load(root, "", quiet)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		"/etc/bulkhead/storage.yaml: line 1: NOT_AN_OPTION: unknown option",
		"/etc/bulkhead/storage.yaml: line 2: DEVS: want a single value",
		DockerSetupFile + `: STORAGE_DRIVER: Invalid storage driver: btrfs.`,
		DockerSetupFile + `: DATA_SIZE: "40%PVS": only N%FREE and N%VG are accepted`,
		DockerSetupFile + `: MIN_DATA_SIZE: "2X" is not a size`,
		DockerSetupFile + `: POOL_META_SIZE: "-1" is not a size`,
		DockerSetupFile + `: CHUNK_SIZE: "100K" must be a multiple of 64K between 64K and 1G`,
		DockerSetupFile + `: GROWPART: "on" is not true or false`,
		DockerSetupFile + `: AUTO_EXTEND_POOL: "1" is not yes or no`,
		DockerSetupFile + `: POOL_AUTOEXTEND_THRESHOLD: "101" is not a whole number from 1 to 100`,
		DockerSetupFile + `: POOL_AUTOEXTEND_PERCENT: "0" is not a whole number`,
		DockerSetupFile + `: DEVICE_WAIT_TIMEOUT: "soon" is not a whole number`,
		DockerSetupFile + `: WIPE_SIGNATURES: "1" is not true or false`,
		DockerSetupFile + `: VG: "-bad" is not a valid LVM name`,
		DockerSetupFile + `: CONTAINER_ROOT_LV_SIZE: Specify a valid value for CONTAINER_ROOT_LV_SIZE.`,
		DockerSetupFile + `: ROOT_SIZE: "99999999999999999999999T" is too large to handle`,
		DockerSetupFile + `: CONTAINER_ROOT_LV_MOUNT_PATH: "relative/path" must be an absolute path`,
		DockerSetupFile + `: CONTAINER_ROOT_LV_THIN: "maybe" is not yes or no`,
		DockerSetupFile + `: DOCKER_ROOT_VOLUME: DOCKER_ROOT_VOLUME is deprecated. Use CONTAINER_ROOT_LV_MOUNT_PATH instead.`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
}

// The original's cross-option checks (check_storage_options), same words.
func TestLoadCrossOptionChecks(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"name without path", "CONTAINER_ROOT_LV_MOUNT_PATH=\n", "CONTAINER_ROOT_LV_MOUNT_PATH cannot be empty, when CONTAINER_ROOT_LV_NAME is set"},
		{"path without name", "CONTAINER_ROOT_LV_NAME=\n", "CONTAINER_ROOT_LV_NAME cannot be empty, when CONTAINER_ROOT_LV_MOUNT_PATH is set"},
		{"devicemapper without pool", "STORAGE_DRIVER=devicemapper\nCONTAINER_THINPOOL=\n", "CONTAINER_THINPOOL must be defined for the devicemapper storage driver."},
		{"both extra options", "EXTRA_STORAGE_OPTIONS=a\nEXTRA_DOCKER_STORAGE_OPTIONS=b\n", "EXTRA_DOCKER_STORAGE_OPTIONS and EXTRA_STORAGE_OPTIONS are mutually exclusive options."},
		{"no data size", "DATA_SIZE=\n", "DATA_SIZE not specified."},
		{"root lv named as pool", "CONTAINER_ROOT_LV_NAME=docker-pool\n", "is also the thin pool's name"},
		{"shell command", "DEVS=$(lsblk)\n", "line 1: DEVS: variable expansion and command substitution are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeTree(t, map[string]string{DockerSetupFile: tc.file}), "", quiet)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// The deprecated name still works on its own.
	cfg, err := Load(writeTree(t, map[string]string{DockerSetupFile: "EXTRA_DOCKER_STORAGE_OPTIONS='--storage-opt dm.basesize=20G'\n"}), "", quiet)
	if err != nil || cfg.ExtraStorageOptions != "--storage-opt dm.basesize=20G" {
		t.Errorf("got %q, %v", cfg.ExtraStorageOptions, err)
	}
}

// FuzzParseYAMLOptions: the bulkhead.storage map from cloud-config is outside
// input too; any bytes give options or errors, never a panic, and only
// known option names come out.
func FuzzParseYAMLOptions(f *testing.F) {
	for _, s := range []string{"DEVS: [vdb, vdc]\nVG: docker-vg\n", "DEVS: vdb\n", "AUTO_EXTEND_POOL: yes\n", "- a\n", "X: {a: 1}\n", "~\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		set, _ := parseYAMLOptions(in)
		for k := range set {
			if _, ok := optionDefaults[k]; !ok {
				t.Errorf("unknown option %q accepted", k)
			}
		}
	})
}
