package storagesetup

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"go.yaml.in/yaml/v3"
)

// Input and output files, inside the Root.
const (
	// DockerSetupFile and ContainerSetupFile are the original's input files;
	// both are read, the second overriding the first.
	DockerSetupFile    = "/etc/sysconfig/docker-storage-setup"
	ContainerSetupFile = "/etc/sysconfig/container-storage-setup"
	// CloudConfigFile is the bulkhead.storage section of cloud-config as
	// written by cloudinit: a YAML map keyed by the same option names.
	CloudConfigFile = "/etc/bulkhead/storage.yaml"
	// OutputFile is the original's output (STORAGE_OUT_FILE in compat mode).
	OutputFile = "/etc/sysconfig/docker-storage"
	// ProfileDir is LVM's default profile_dir (lvm.conf config/profile_dir).
	ProfileDir = "/etc/lvm/profile"
	// UnitDir is where the mount unit for the container root LV goes.
	UnitDir = "/etc/systemd/system"
)

// ErrInvalidConfig wraps every configuration problem report.
var ErrInvalidConfig = errors.New("invalid storage configuration")

// Config is the parsed, validated set of docker-storage-setup options.
// Field comments give the option name; sizes keep the user's spelling
// (they are checked here and converted when used).
type Config struct {
	StorageDriver            string        // STORAGE_DRIVER: devicemapper, overlay, overlay2 or "" (do nothing)
	Devs                     []string      // DEVS: whole disks, absolute, bare names (vdb) or symlinks
	VG                       string        // VG: "" means the root filesystem's VG, if any
	RootSize                 string        // ROOT_SIZE: grow the root LV to this (lvextend -L)
	DataSize                 string        // DATA_SIZE: pool data size, N%FREE, N%VG or a size
	MinDataSize              string        // MIN_DATA_SIZE: smallest acceptable pool ("" = no minimum)
	PoolMetaSize             string        // POOL_META_SIZE: "" = VG size / 1000 + 1 sector
	ChunkSize                string        // CHUNK_SIZE: thin pool chunk size ("" = LVM's default)
	GrowPart                 bool          // GROWPART: grow the root PVs' partitions
	AutoExtendPool           bool          // AUTO_EXTEND_POOL: attach the autoextend profile
	PoolAutoextendThreshold  int           // POOL_AUTOEXTEND_THRESHOLD: percent full that triggers growth
	PoolAutoextendPercent    int           // POOL_AUTOEXTEND_PERCENT: growth step in percent
	DeviceWaitTimeout        time.Duration // DEVICE_WAIT_TIMEOUT: seconds; 0 disables waiting
	WipeSignatures           bool          // WIPE_SIGNATURES: wipe signatures found on DEVS
	ContainerThinPool        string        // CONTAINER_THINPOOL: pool LV name
	ContainerRootLVName      string        // CONTAINER_ROOT_LV_NAME
	ContainerRootLVSize      string        // CONTAINER_ROOT_LV_SIZE
	ContainerRootLVMountPath string        // CONTAINER_ROOT_LV_MOUNT_PATH
	ContainerRootLVThin      bool          // CONTAINER_ROOT_LV_THIN (Bulkhead): root LV as a thin volume in the pool
	ExtraStorageOptions      string        // EXTRA_STORAGE_OPTIONS: appended to DOCKER_STORAGE_OPTIONS
}

// optionDefaults are container-storage-setup.conf's defaults with the
// Bulkhead changes marked. The original's compat mode names the pool
// docker-pool (CONTAINER_THINPOOL=docker-pool in container-storage-setup.sh).
var optionDefaults = map[string]string{
	// Bulkhead: hostd's engine uses overlayfs; the original shipped
	// devicemapper and later (Fedora 26) overlay2.
	"STORAGE_DRIVER":            "overlay2",
	"DEVS":                      "",
	"VG":                        "",
	"ROOT_SIZE":                 "",
	"DATA_SIZE":                 "40%FREE",
	"MIN_DATA_SIZE":             "2G",
	"POOL_META_SIZE":            "",
	"CHUNK_SIZE":                "512K",
	"GROWPART":                  "false",
	"AUTO_EXTEND_POOL":          "yes",
	"POOL_AUTOEXTEND_THRESHOLD": "60",
	"POOL_AUTOEXTEND_PERCENT":   "20",
	"DEVICE_WAIT_TIMEOUT":       "60",
	"WIPE_SIGNATURES":           "false",
	"CONTAINER_THINPOOL":        "docker-pool",
	// Bulkhead: the engine's storage gets its own volume by default; the
	// original created none unless CONTAINER_ROOT_LV_MOUNT_PATH was set.
	"CONTAINER_ROOT_LV_NAME":       "container-root-lv",
	"CONTAINER_ROOT_LV_SIZE":       "40%FREE",
	"CONTAINER_ROOT_LV_MOUNT_PATH": "/var/lib/hostd",
	"CONTAINER_ROOT_LV_THIN":       "yes",
	"EXTRA_STORAGE_OPTIONS":        "",
	// Deprecated names the original still read.
	"EXTRA_DOCKER_STORAGE_OPTIONS": "",
	"DOCKER_ROOT_VOLUME":           "",
	"DOCKER_ROOT_VOLUME_SIZE":      "",
}

// setting is one option's raw value and the file it came from.
type setting struct {
	value  string
	source string
}

// Load reads the defaults, then /etc/sysconfig/docker-storage-setup and
// /etc/sysconfig/container-storage-setup, then /etc/bulkhead/storage.yaml,
// each overriding the one before. When file is not "", it is read instead of
// all three (YAML when it ends in .yaml or .yml, KEY=value otherwise), the
// way container-storage-setup takes an INPUTFILE. log receives warnings
// about unknown keys in sysconfig files (they may hold other shell variables).
func Load(root fsroot.Root, file string, log *slog.Logger) (Config, error) {
	if log == nil {
		log = slog.Default()
	}
	raw := map[string]setting{}
	for k, v := range optionDefaults {
		raw[k] = setting{value: v, source: "default"}
	}
	var errs []error
	layer := func(name string, mustExist bool) {
		data, err := os.ReadFile(root.Join(name))
		if errors.Is(err, os.ErrNotExist) && !mustExist {
			return
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", name, err))
			return
		}
		var set map[string]string
		if ext := path.Ext(name); ext == ".yaml" || ext == ".yml" {
			set, err = parseYAMLOptions(data)
		} else {
			set, err = sysconfigOptions(string(data), name, log)
		}
		for _, e := range splitErrors(err) {
			errs = append(errs, fmt.Errorf("%s: %w", name, e))
		}
		for k, v := range set {
			raw[k] = setting{value: v, source: name}
		}
	}
	if file != "" {
		layer(file, true)
	} else {
		layer(DockerSetupFile, false)
		layer(ContainerSetupFile, false)
		layer(CloudConfigFile, false)
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	return cfg, nil
}

// sysconfigOptions parses a KEY=value file and keeps the known options.
func sysconfigOptions(data, name string, log *slog.Logger) (map[string]string, error) {
	as, err := parseSysconfig(data)
	set := map[string]string{}
	for _, a := range as {
		if _, ok := optionDefaults[a.Key]; !ok {
			log.Warn("ignoring unknown option", "file", name, "line", a.Line, "key", a.Key)
			continue
		}
		set[a.Key] = a.Value
	}
	return set, err
}

// parseYAMLOptions reads the bulkhead.storage map. Values are taken as the
// text the user wrote (so "yes" stays "yes"); DEVS may be a list or a
// space-separated string. Unknown keys are errors: unlike a sysconfig file,
// this map holds nothing else.
func parseYAMLOptions(data []byte) (map[string]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return nil, nil
	}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a map of option names to values", m.Line)
	}
	set := map[string]string{}
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		if _, ok := optionDefaults[key]; !ok {
			errs = append(errs, fmt.Errorf("line %d: %s: unknown option", k.Line, key))
			continue
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			set[key] = ""
		case v.Kind == yaml.ScalarNode:
			set[key] = v.Value
		case v.Kind == yaml.SequenceNode && key == "DEVS":
			var parts []string
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("line %d: DEVS: list items must be device names", item.Line))
					continue
				}
				parts = append(parts, item.Value)
			}
			set[key] = strings.Join(parts, " ")
		default:
			errs = append(errs, fmt.Errorf("line %d: %s: want a single value", v.Line, key))
		}
	}
	return set, errors.Join(errs...)
}

// lvmName is LVM's rule for VG and LV names (lvm(8) VALID NAMES).
var lvmName = regexp.MustCompile(`^[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]{0,126}$`)

// buildConfig checks every option and reports all problems, each with its
// option name and the file that set it.
func buildConfig(raw map[string]setting) (Config, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		s := raw[key]
		errs = append(errs, fmt.Errorf("%s: %s: %s", s.source, key, fmt.Sprintf(format, args...)))
	}
	val := func(key string) string { return strings.TrimSpace(raw[key].value) }
	// The original compared with its own spelling only (GROWPART ==
	// "true", AUTO_EXTEND_POOL == "yes") and took anything else as off;
	// cloud-config YAML users write true/false, so both spellings are read
	// and anything else is an error instead of a silent "off".
	boolean := func(key, yes, no string) bool {
		switch strings.ToLower(val(key)) {
		case "yes", "true":
			return true
		case "no", "false":
			return false
		}
		bad(key, "%q is not %s or %s", val(key), yes, no)
		return false
	}
	integer := func(key string, lo, hi int) int {
		n, err := strconv.Atoi(val(key))
		if err != nil || n < lo || n > hi {
			bad(key, "%q is not a whole number from %d to %d", val(key), lo, hi)
		}
		return n
	}
	size := func(key string) {
		if v := val(key); v != "" {
			if _, err := parseBytes(v); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	dsize := func(key string) {
		if _, err := parseDataSize(val(key)); err != nil {
			bad(key, "%v", err)
		}
	}
	name := func(key string) {
		if v := val(key); v != "" && (!lvmName.MatchString(v) || v == "." || v == "..") {
			bad(key, "%q is not a valid LVM name (letters, digits, + _ . -, not starting with -)", v)
		}
	}

	c := Config{
		StorageDriver:            val("STORAGE_DRIVER"),
		VG:                       val("VG"),
		RootSize:                 val("ROOT_SIZE"),
		DataSize:                 val("DATA_SIZE"),
		MinDataSize:              val("MIN_DATA_SIZE"),
		PoolMetaSize:             val("POOL_META_SIZE"),
		ChunkSize:                val("CHUNK_SIZE"),
		ContainerThinPool:        val("CONTAINER_THINPOOL"),
		ContainerRootLVName:      val("CONTAINER_ROOT_LV_NAME"),
		ContainerRootLVSize:      val("CONTAINER_ROOT_LV_SIZE"),
		ContainerRootLVMountPath: val("CONTAINER_ROOT_LV_MOUNT_PATH"),
		ExtraStorageOptions:      val("EXTRA_STORAGE_OPTIONS"),
	}
	if devs := strings.Fields(raw["DEVS"].value); len(devs) > 0 {
		c.Devs = devs
	}
	switch c.StorageDriver {
	case "", "devicemapper", "overlay", "overlay2":
	default:
		bad("STORAGE_DRIVER", "Invalid storage driver: %s. (want devicemapper, overlay, overlay2 or empty)", c.StorageDriver)
	}
	c.GrowPart = boolean("GROWPART", "true", "false")
	c.WipeSignatures = boolean("WIPE_SIGNATURES", "true", "false")
	c.AutoExtendPool = boolean("AUTO_EXTEND_POOL", "yes", "no")
	c.ContainerRootLVThin = boolean("CONTAINER_ROOT_LV_THIN", "yes", "no")
	// LVM clamps thresholds below 50 to 50 and treats 100 as "never".
	c.PoolAutoextendThreshold = integer("POOL_AUTOEXTEND_THRESHOLD", 1, 100)
	c.PoolAutoextendPercent = integer("POOL_AUTOEXTEND_PERCENT", 1, 10000)
	c.DeviceWaitTimeout = time.Duration(integer("DEVICE_WAIT_TIMEOUT", 0, 86400)) * time.Second
	size("ROOT_SIZE")
	size("MIN_DATA_SIZE")
	size("POOL_META_SIZE")
	size("CHUNK_SIZE")
	if v := val("CHUNK_SIZE"); v != "" {
		// lvmthin(7): chunk size is a multiple of 64 KiB from 64 KiB to 1 GiB.
		if b, err := parseBytes(v); err == nil && (b < 64<<10 || b > 1<<30 || b%(64<<10) != 0) {
			bad("CHUNK_SIZE", "%q must be a multiple of 64K between 64K and 1G", v)
		}
	}
	if c.DataSize == "" {
		bad("DATA_SIZE", "DATA_SIZE not specified.")
	} else {
		dsize("DATA_SIZE")
	}
	name("VG")
	name("CONTAINER_THINPOOL")
	name("CONTAINER_ROOT_LV_NAME")
	for _, d := range c.Devs {
		if strings.ContainsAny(d, "\x00") || d == "/" || strings.HasSuffix(d, "/") {
			bad("DEVS", "%q is not a device name", d)
		}
	}
	// check_storage_options in container-storage-setup.sh, same messages.
	if c.StorageDriver == "devicemapper" && c.ContainerThinPool == "" {
		bad("CONTAINER_THINPOOL", "CONTAINER_THINPOOL must be defined for the devicemapper storage driver.")
	}
	if c.ContainerRootLVName != "" && c.ContainerRootLVMountPath == "" {
		bad("CONTAINER_ROOT_LV_MOUNT_PATH", "CONTAINER_ROOT_LV_MOUNT_PATH cannot be empty, when CONTAINER_ROOT_LV_NAME is set")
	}
	if c.ContainerRootLVMountPath != "" && c.ContainerRootLVName == "" {
		bad("CONTAINER_ROOT_LV_NAME", "CONTAINER_ROOT_LV_NAME cannot be empty, when CONTAINER_ROOT_LV_MOUNT_PATH is set")
	}
	if p := c.ContainerRootLVMountPath; p != "" && (!path.IsAbs(p) || path.Clean(p) == "/") {
		bad("CONTAINER_ROOT_LV_MOUNT_PATH", "%q must be an absolute path below /", p)
	} else if p != "" {
		c.ContainerRootLVMountPath = path.Clean(p)
	}
	if c.ContainerRootLVName != "" {
		if c.ContainerRootLVSize == "" {
			bad("CONTAINER_ROOT_LV_SIZE", "Specify a valid value for CONTAINER_ROOT_LV_SIZE.")
		} else {
			dsize("CONTAINER_ROOT_LV_SIZE")
		}
		if c.ContainerRootLVName == c.ContainerThinPool {
			bad("CONTAINER_ROOT_LV_NAME", "%q is also the thin pool's name (CONTAINER_THINPOOL)", c.ContainerRootLVName)
		}
	}
	if strings.EqualFold(val("DOCKER_ROOT_VOLUME"), "yes") {
		bad("DOCKER_ROOT_VOLUME", "DOCKER_ROOT_VOLUME is deprecated. Use CONTAINER_ROOT_LV_MOUNT_PATH instead.")
	}
	if old := val("EXTRA_DOCKER_STORAGE_OPTIONS"); old != "" {
		if c.ExtraStorageOptions != "" {
			bad("EXTRA_DOCKER_STORAGE_OPTIONS", "EXTRA_DOCKER_STORAGE_OPTIONS and EXTRA_STORAGE_OPTIONS are mutually exclusive options.")
		}
		c.ExtraStorageOptions = old
	}
	// Report in a stable order: by option name.
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// Defaults returns the configuration with no input files at all.
func Defaults() Config {
	raw := map[string]setting{}
	for k, v := range optionDefaults {
		raw[k] = setting{value: v, source: "default"}
	}
	c, err := buildConfig(raw)
	if err != nil {
		panic("storagesetup: built-in defaults are invalid: " + err.Error())
	}
	return c
}

// wantsPool tells whether a thin pool is carved: devicemapper hands it to
// the engine; otherwise it holds the thin container root volume.
func (c Config) wantsPool() bool {
	return c.StorageDriver == "devicemapper" || (c.rootLVWanted() && c.rootLVThin())
}

func (c Config) rootLVWanted() bool {
	return c.ContainerRootLVName != "" && c.ContainerRootLVMountPath != ""
}

// rootLVThin: with devicemapper the engine allocates thin device ids in the
// pool itself, so an LVM thin volume there would collide with them; the
// root LV is then a plain LV beside the pool, as in the original.
func (c Config) rootLVThin() bool {
	return c.ContainerRootLVThin && c.StorageDriver != "devicemapper"
}

// splitErrors undoes errors.Join so each problem gets its own prefix.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
