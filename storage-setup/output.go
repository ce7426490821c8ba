package storagesetup

import (
	"fmt"
	"regexp"
	"strings"
)

// storageOptions renders the output file's one line, as
// get_config_options in the original: for devicemapper the thin pool device
// plus xfs (unless EXTRA_STORAGE_OPTIONS sets dm.fs) and deferred removal
// and deletion (the original enabled those only for docker >= 1.7 / 1.9;
// every engine in use today has them); otherwise just the driver. The
// original built the line with `echo $storage_options`, which squeezed
// repeated spaces; so does this.
func storageOptions(c Config) string {
	var parts []string
	if c.StorageDriver == "devicemapper" {
		parts = append(parts, "--storage-driver devicemapper")
		if !strings.Contains(c.ExtraStorageOptions, "dm.fs=") {
			parts = append(parts, "--storage-opt dm.fs=xfs")
		}
		parts = append(parts,
			"--storage-opt dm.thinpooldev=/dev/mapper/"+dmName(c.VG, c.ContainerThinPool),
			"--storage-opt dm.use_deferred_removal=true",
			"--storage-opt dm.use_deferred_deletion=true")
	} else {
		parts = append(parts, "--storage-driver "+c.StorageDriver)
	}
	parts = append(parts, c.ExtraStorageOptions)
	return `DOCKER_STORAGE_OPTIONS="` + strings.Join(strings.Fields(strings.Join(parts, " ")), " ") + `"` + "\n"
}

// currentOptions returns the value of DOCKER_STORAGE_OPTIONS= in an existing
// output file (get_current_storage_options), "" when absent.
func currentOptions(file string) string {
	for _, line := range strings.Split(file, "\n") {
		if v, ok := strings.CutPrefix(line, "DOCKER_STORAGE_OPTIONS="); ok {
			v = strings.TrimSpace(v)
			v = strings.TrimPrefix(v, `"`)
			v = strings.TrimSuffix(v, `"`)
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

var (
	driverLong  = regexp.MustCompile(`--storage-driver[ =]+([a-z0-9]+)`)
	driverShort = regexp.MustCompile(`(?:^| )-s +([a-z0-9]+)`)
)

// existingDriver finds the driver in the current options the way
// get_existing_storage_driver does: --storage-driver X, then -s X, then
// devicemapper when only dm.thinpooldev= is there (early versions wrote no
// driver). ok is false when options are set but name no driver.
func existingDriver(options string) (driver string, ok bool) {
	if options == "" {
		return "", true
	}
	if m := driverLong.FindStringSubmatch(options); m != nil {
		return m[1], true
	}
	if m := driverShort.FindStringSubmatch(options); m != nil {
		return m[1], true
	}
	if strings.Contains(options, "--storage-opt dm.thinpooldev=") {
		return "devicemapper", true
	}
	return "", false
}

// configuredThinPool returns the dm.thinpooldev= value (get_configured_thin_pool).
func configuredThinPool(options string) string {
	for _, f := range strings.Fields(options) {
		if v, ok := strings.CutPrefix(f, "dm.thinpooldev="); ok {
			return v
		}
	}
	return ""
}

// isOldDataMetaMode: dm.datadev / dm.metadatadev mean a loop-file setup from
// before thin pools, which the original refused to touch.
func isOldDataMetaMode(options string) bool {
	return strings.Contains(options, "dm.datadev") || strings.Contains(options, "dm.metadatadev")
}

// profileName is the LVM profile the original attached to the pool:
// "${volume_group}--${pool_volume}-extend".
func profileName(vg, pool string) string { return vg + "--" + pool + "-extend" }

// profileText is enable_auto_pool_extension's profile, byte for byte.
func profileText(threshold, percent int) string {
	return fmt.Sprintf("activation {\n\tthin_pool_autoextend_threshold=%d\n\tthin_pool_autoextend_percent=%d\n\n}\n", threshold, percent)
}

// unitName escapes a mount path the way `systemd-escape --path --suffix=mount`
// does (systemd.unit(5) "String Escaping for Inclusion in Unit Names"):
// slashes become '-', and '-', non-ASCII and other special bytes \xNN. The
// original's systemd_escaped_filename only escaped '-'.
func unitName(mountPath string) string {
	p := strings.Trim(mountPath, "/")
	if p == "" {
		return "-.mount"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c == '_' || c == '.' || c == ':' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".mount"
}

// mountUnit is the unit mount_extra_volume wrote (docker-storage-setup.sh
// before it switched to a plain mount), pointed at hostd instead of docker:
// RequiredBy=hostd.service keeps the engine from starting on the empty
// directory below when the volume is missing.
func mountUnit(vg, lvName, mountPath string) string {
	return fmt.Sprintf(`[Unit]
Description=Mount %[2]s on %[3]s directory.
Before=bulkhead-storage-setup.service hostd.service

[Mount]
What=/dev/%[1]s/%[2]s
Where=%[3]s
Type=xfs
Options=defaults

[Install]
WantedBy=bulkhead-storage-setup.service
RequiredBy=hostd.service
`, vg, lvName, mountPath)
}
