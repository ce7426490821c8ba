package storagesetup

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// fakeHost answers the LVM, util-linux and systemd commands Run issues by
// keeping a small model of disks, PVs, VGs, LVs and mounts, so a scenario
// can run twice (idempotence), reboot, or reset against the state the first
// run left. Device nodes are plain files in a t.TempDir() /dev, block
// devices are announced in its /sys/class/block.
type fakeHost struct {
	t       *testing.T
	root    fsroot.Root
	disks   map[string]*fakeDisk
	pvs     map[string]string // pv -> vg ("" for none)
	lvs     map[string]map[string]*fakeLV
	fs      map[string]string // device -> filesystem type
	mnt     map[string]string // target -> source
	rootSrc string
	log     []string         // transcript with stdin
	fail    map[string]error // command line prefix -> error to return
	rec     *run.Recorder
	grown   map[string]bool // disks sfdisk -N grew a partition of
}

type fakeDisk struct {
	size  uint64
	typ   string
	parts []string
	sigs  []signature
}

type fakeLV struct {
	attr, profile string
	size          uint64
	data, meta    string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{
		t:       t,
		root:    fsroot.Root(t.TempDir()),
		disks:   map[string]*fakeDisk{},
		pvs:     map[string]string{},
		lvs:     map[string]map[string]*fakeLV{},
		fs:      map[string]string{},
		mnt:     map[string]string{},
		rootSrc: "/dev/vda6",
		fail:    map[string]error{},
		grown:   map[string]bool{},
	}
	h.rec = &run.Recorder{Respond: h.respond}
	h.writeMounts()
	return h
}

// addDisk creates /dev/NAME and /sys/class/block/NAME in the test tree.
func (h *fakeHost) addDisk(dev string, size uint64, typ string) *fakeDisk {
	h.t.Helper()
	d := &fakeDisk{size: size, typ: typ}
	h.disks[dev] = d
	h.touch(dev)
	h.touch(path.Join("/sys/class/block", path.Base(dev)))
	return d
}

func (h *fakeHost) touch(p string) {
	h.t.Helper()
	full := h.root.Join(p)
	if err := os.MkdirAll(path.Dir(full), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(full, nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) writeFile(p, data string) {
	h.t.Helper()
	if err := fsroot.WriteFile(h.root.Join(p), []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) readFile(p string) string {
	h.t.Helper()
	b, err := os.ReadFile(h.root.Join(p))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func (h *fakeHost) exists(p string) bool {
	_, err := os.Lstat(h.root.Join(p))
	return err == nil
}

func (h *fakeHost) writeMounts() {
	var b strings.Builder
	fmt.Fprintf(&b, "%s / ext4 rw,relatime 0 0\n", h.rootSrc)
	targets := make([]string, 0, len(h.mnt))
	for t := range h.mnt {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		fmt.Fprintf(&b, "%s %s xfs rw,relatime 0 0\n", h.mnt[t], t)
	}
	h.writeFile("/proc/mounts", b.String())
}

// reboot forgets mounts, as a restart does; LVs come back by themselves.
func (h *fakeHost) reboot() {
	h.mnt = map[string]string{}
	h.writeMounts()
	h.log = nil
}

func (h *fakeHost) transcript() string { return strings.Join(h.log, "\n") + "\n" }

// mutations lists the commands that change something.
func (h *fakeHost) mutations() []string {
	var out []string
	for _, l := range h.log {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(l, "  <") {
			continue
		}
		switch f[0] {
		case "lsblk", "pvs", "vgs", "lvs", "blkid", "udevadm":
			continue
		case "wipefs":
			if len(f) > 1 && f[1] == "-p" {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

func (h *fakeHost) vgSize(vg string) (size, free uint64) {
	for p, v := range h.pvs {
		if v == vg {
			size += h.disks[p].size
		}
	}
	free = size
	for _, l := range h.lvs[vg] {
		if !strings.HasPrefix(l.attr, "V") {
			free -= l.size
		}
	}
	return size, free
}

func jsonReport(kind string, rows []map[string]string) []byte {
	if rows == nil {
		rows = []map[string]string{}
	}
	b, _ := json.Marshal(map[string]any{"report": []map[string]any{{kind: rows}}})
	return b
}

// exitErr returns a real *exec.ExitError with the given status.
func exitErr(code int) error {
	return exec.Command("sh", "-c", "exit "+strconv.Itoa(code)).Run()
}

func (h *fakeHost) respond(c run.Cmd) ([]byte, error) {
	line := c.String()
	h.log = append(h.log, line)
	if c.Stdin != nil {
		in, _ := io.ReadAll(c.Stdin)
		for _, l := range strings.Split(strings.TrimRight(string(in), "\n"), "\n") {
			h.log = append(h.log, "  < "+l)
		}
		c.Stdin = strings.NewReader(string(in))
	}
	for prefix, err := range h.fail {
		if strings.HasPrefix(line, prefix) {
			return nil, err
		}
	}
	a := c.Args
	last := ""
	if len(a) > 0 {
		last = a[len(a)-1]
	}
	switch c.Name {
	case "lsblk":
		d, ok := h.disks[last]
		if !ok {
			return nil, fmt.Errorf("lsblk: %s: not a block device", last)
		}
		dev := map[string]any{"name": last, "type": d.typ, "size": d.size}
		var kids []map[string]any
		for _, p := range d.parts {
			kids = append(kids, map[string]any{"name": p, "type": "part", "size": h.disks[p].size})
		}
		if kids != nil {
			dev["children"] = kids
		}
		return json.Marshal(map[string]any{"blockdevices": []any{dev}})
	case "wipefs":
		d := h.disks[last]
		if d == nil {
			return nil, fmt.Errorf("wipefs: %s: no such device", last)
		}
		if a[0] == "-p" {
			if len(d.sigs) == 0 {
				return nil, nil
			}
			out := "# offset,uuid,label,type\n"
			for _, s := range d.sigs {
				out += strings.Join([]string{s.Offset, s.UUID, s.Label, s.Type}, ",") + "\n"
			}
			return []byte(out), nil
		}
		d.sigs = nil
		return nil, nil
	case "sfdisk":
		if slices.Contains(a, "-N") { // growing a partition in place
			h.grown[last] = true
			return nil, nil
		}
		if a[0] == "--json" {
			var nodes []string
			for dev, d := range h.disks {
				if d.typ == "part" && strings.HasPrefix(dev, last) {
					nodes = append(nodes, fmt.Sprintf(`{"node":%q}`, dev))
				}
			}
			sort.Strings(nodes)
			return fmt.Appendf(nil, `{"partitiontable":{"grown":%v,"partitions":[%s]}}`, h.grown[last], strings.Join(nodes, ",")), nil
		}
		d := h.disks[last]
		part := last + "1"
		if last[len(last)-1] >= '0' && last[len(last)-1] <= '9' {
			part = last + "p1"
		}
		for _, p := range d.parts {
			delete(h.disks, p)
		}
		d.parts = []string{part}
		h.addDisk(part, d.size-1<<20, "part")
		return nil, nil
	case "pvcreate":
		h.pvs[last] = ""
		return nil, nil
	case "vgcreate", "vgextend":
		for _, p := range a[1:] {
			h.pvs[p] = a[0]
		}
		if h.lvs[a[0]] == nil {
			h.lvs[a[0]] = map[string]*fakeLV{}
		}
		return nil, nil
	case "pvs":
		var rows []map[string]string
		names := make([]string, 0, len(h.pvs))
		for p := range h.pvs {
			names = append(names, p)
		}
		sort.Strings(names)
		for _, p := range names {
			rows = append(rows, map[string]string{"pv_name": p, "vg_name": h.pvs[p]})
		}
		return jsonReport("pv", rows), nil
	case "vgs":
		var rows []map[string]string
		names := make([]string, 0, len(h.lvs))
		for vg := range h.lvs {
			names = append(names, vg)
		}
		sort.Strings(names)
		for _, vg := range names {
			size, free := h.vgSize(vg)
			rows = append(rows, map[string]string{"vg_name": vg, "vg_size": strconv.FormatUint(size, 10), "vg_free": strconv.FormatUint(free, 10)})
		}
		return jsonReport("vg", rows), nil
	case "lvs":
		return h.lvsReport(a, last)
	case "lvcreate":
		return nil, h.lvcreate(a)
	case "lvchange":
		vg, name, _ := strings.Cut(last, "/")
		l := h.lvs[vg][name]
		switch a[0] {
		case "--metadataprofile":
			l.profile = a[1]
		case "--detachprofile":
			l.profile = ""
		}
		return nil, nil
	case "lvremove":
		vg, name, _ := strings.Cut(last, "/")
		delete(h.lvs[vg], name)
		return nil, nil
	case "mkfs.xfs":
		h.fs[last] = "xfs"
		return nil, nil
	case "blkid":
		if t := h.fs[last]; t != "" {
			return []byte(t + "\n"), nil
		}
		return nil, exitErr(2)
	case "systemctl":
		return nil, h.systemctl(a)
	case "umount":
		delete(h.mnt, last)
		h.writeMounts()
		return nil, nil
	case "lvextend":
		if a[0] == "-L" { // the container volume growing with its VG
			vg, name, _ := strings.Cut(last, "/")
			l := h.lvs[vg][name]
			if l == nil {
				return nil, fmt.Errorf("lvextend: %s not found", last)
			}
			b, err := parseBytes(a[1])
			if err != nil {
				return nil, err
			}
			if b < l.size {
				return nil, fmt.Errorf("lvextend: %s would shrink", last)
			}
			l.size = b
		}
		return nil, nil
	case "xfs_growfs":
		if _, ok := h.mnt[last]; !ok {
			return nil, fmt.Errorf("xfs_growfs: %s is not a mounted filesystem", last)
		}
		return nil, nil
	case "udevadm", "partx", "pvresize":
		return nil, nil
	}
	return nil, fmt.Errorf("fake host: unexpected command %s", line)
}

func (h *fakeHost) lvsReport(a []string, last string) ([]byte, error) {
	fields := a[3]
	if fields == "vg_name" { // lvs -o vg_name ROOTDEV
		for vg, lvs := range h.lvs {
			for name := range lvs {
				if "/dev/mapper/"+dmName(vg, name) == last {
					return jsonReport("lv", []map[string]string{{"vg_name": vg}}), nil
				}
			}
		}
		return nil, exitErr(5)
	}
	vg, only, _ := strings.Cut(last, "/")
	lvs, ok := h.lvs[vg]
	if !ok {
		return nil, exitErr(5)
	}
	var rows []map[string]string
	names := make([]string, 0, len(lvs))
	for n := range lvs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if only != "" && n != only {
			continue
		}
		l := lvs[n]
		rows = append(rows, map[string]string{"lv_name": n, "lv_attr": l.attr, "lv_profile": l.profile, "lv_size": strconv.FormatUint(l.size, 10), "data_percent": l.data, "metadata_percent": l.meta})
	}
	if only != "" && rows == nil {
		return nil, exitErr(5)
	}
	return jsonReport("lv", rows), nil
}

func (h *fakeHost) lvcreate(a []string) error {
	vg := a[len(a)-1]
	var name, typ, sizeArg, extents string
	for i := 0; i < len(a)-1; i++ {
		switch a[i] {
		case "-n":
			name = a[i+1]
		case "--type":
			typ = a[i+1]
		case "-L", "-V":
			sizeArg = a[i+1]
		case "-l":
			extents = a[i+1]
		}
	}
	if h.lvs[vg] == nil {
		return fmt.Errorf("lvcreate: volume group %q not found", vg)
	}
	size, free := h.vgSize(vg)
	var bytes uint64
	if extents != "" {
		d, err := parseDataSize(extents)
		if err != nil {
			return err
		}
		bytes = d.resolve(size, free)
	} else {
		b, err := parseBytes(sizeArg)
		if err != nil {
			return err
		}
		bytes = b
	}
	attr := "-wi-a-----"
	switch typ {
	case "thin-pool":
		attr = "twi-a-tz--"
	case "thin":
		attr = "Vwi-a-tz--"
	}
	if typ != "thin" && bytes > free {
		return fmt.Errorf("lvcreate: Volume group %q has insufficient free space", vg)
	}
	h.lvs[vg][name] = &fakeLV{attr: attr, size: bytes, data: "0.00", meta: "10.55"}
	h.touch("/dev/mapper/" + dmName(vg, name))
	return nil
}

func (h *fakeHost) systemctl(a []string) error {
	switch a[0] {
	case "daemon-reload":
	case "enable":
		link := path.Join(UnitDir, "hostd.service.requires", a[1])
		if err := os.MkdirAll(path.Dir(h.root.Join(link)), 0o755); err != nil {
			return err
		}
		return os.Symlink(path.Join(UnitDir, a[1]), h.root.Join(link))
	case "disable":
		return os.Remove(h.root.Join(UnitDir, "hostd.service.requires", a[1]))
	case "start":
		unit := h.readFile(path.Join(UnitDir, a[1]))
		var what, where string
		for _, l := range strings.Split(unit, "\n") {
			if v, ok := strings.CutPrefix(l, "What="); ok {
				what = v
			}
			if v, ok := strings.CutPrefix(l, "Where="); ok {
				where = v
			}
		}
		if h.fs[what] == "" {
			return fmt.Errorf("mount: %s: wrong fs type", what)
		}
		h.mnt[where] = what
		h.writeMounts()
	case "stop":
		for t := range h.mnt {
			if unitName(t) == a[1] {
				delete(h.mnt, t)
			}
		}
		h.writeMounts()
	default:
		return fmt.Errorf("systemctl: unexpected %v", a)
	}
	return nil
}

func mkdirSymlink(h *fakeHost, target, link string) error {
	full := h.root.Join(link)
	if err := os.MkdirAll(path.Dir(full), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, full)
}
