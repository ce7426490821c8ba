package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// tarEntry is a file of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body string
}

// pushImage stores a busybox image with cfg and a layer of entries as
// <registry>/name:latest in te and returns its reference.
func (te *testEngine) pushImage(t *testing.T, name string, cfg v1.Config, entries ...tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cmd == nil {
		cfg.Cmd = []string{"sh"}
	}
	ref := strings.TrimSuffix(te.ref, "/busybox:latest") + "/" + name + ":latest"
	testimg.Push(t, ref, testimg.Image(t, cfg, l))
	if _, err := te.Images().Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// runToEnd runs spec and wants exit code 0.
func (te *testEngine) runToEnd(t *testing.T, spec ContainerSpec) Container {
	t.Helper()
	c := te.run(t, spec)
	if code, err := te.Wait(context.Background(), c.ID); err != nil || code != 0 {
		t.Fatalf("%s: exit %d, %v; logs: %s", spec.Name, code, err, te.logText(t, c.ID))
	}
	c, _ = te.Get(c.ID)
	return c
}

// wantFile wants the file p to hold want.
func wantFile(t *testing.T, p, want string) {
	t.Helper()
	if b, err := os.ReadFile(p); err != nil || string(b) != want {
		t.Errorf("%s: got %q, %v, want %q", p, b, err, want)
	}
}

// A file written under --mount type=volume or type=bind lands in the
// volume or the host directory, not in the container's rootfs; a bind
// whose source is missing is refused naming it.
func TestMountWritesLandInVolumeAndBind(t *testing.T) {
	te := newTestEngine(t)
	host := t.TempDir()
	c := te.runToEnd(t, ContainerSpec{Name: "mv", Command: []string{"sh", "-c", "echo x > /m/f; echo b > /b/f"},
		Mounts: []MountSpec{{Type: MountVolume, Source: "mv", Target: "/m"}, {Type: MountBind, Source: host, Target: "/b"}}})
	v, err := te.Volume("mv")
	if err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(v.Mountpoint, "f"), "x\n")
	wantFile(t, filepath.Join(host, "f"), "b\n")
	for _, p := range []string{"m/f", "b/f"} {
		if _, err := os.Lstat(filepath.Join(te.snaps.Upper(c.ID), p)); err == nil {
			t.Errorf("%s was written to the container's rootfs", p)
		}
	}
	if users := te.VolumeUsers("mv"); len(users) != 1 || users[0] != "mv" {
		t.Errorf("VolumeUsers: got %v, want [mv]", users)
	}
	ro, err := te.Create(context.Background(), ContainerSpec{Name: "ro", Image: te.ref, Command: []string{"sh", "-c", "echo y > /m/f"},
		Mounts: []MountSpec{{Type: MountVolume, Source: "mv", Target: "/m", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Start(context.Background(), ro.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := te.Wait(context.Background(), ro.ID); code == 0 {
		t.Error("a read-only volume mount was written")
	}
	missing := filepath.Join(host, "nosuch")
	bad, err := te.Create(context.Background(), ContainerSpec{Name: "bad", Image: te.ref, Command: []string{"true"},
		Mounts: []MountSpec{{Type: MountBind, Source: missing, Target: "/b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Start(context.Background(), bad.ID); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("bind of a missing source: got %v, want an error naming %s", err, missing)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("--mount type=bind created its missing source")
	}
}

// --tmpfs and --mount type=tmpfs are tmpfs mounts with the given size and
// mode, nosuid,nodev,noexec by default.
func TestTmpfsMounts(t *testing.T) {
	te := newTestEngine(t)
	c := te.runToEnd(t, ContainerSpec{Name: "tmpfs", Command: []string{"sh", "-c", "grep -E ' /(t|u) ' /proc/mounts; busybox df -k /t /u"},
		Tmpfs:  map[string]string{"/t": "size=1m,mode=1770"},
		Mounts: []MountSpec{{Type: MountTmpfs, Target: "/u", TmpfsSize: 2 << 20, TmpfsMode: 0o700}}})
	out := te.logText(t, c.ID)
	for _, re := range []string{`tmpfs /t tmpfs rw,nosuid,nodev,noexec,\S*size=1024k,mode=1770`, `tmpfs /u tmpfs rw,nosuid,nodev,noexec,\S*size=2048k,mode=700`,
		`tmpfs\s+1024\s+0\s+1024\s+0% /t`, `tmpfs\s+2048\s+0\s+2048\s+0% /u`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("want %s in:\n%s", re, out)
		}
	}
	if _, err := te.Create(context.Background(), ContainerSpec{Name: "bad", Image: te.ref, Tmpfs: map[string]string{"/t": "size=1m,huge=always"}}); err == nil ||
		!strings.Contains(err.Error(), `"huge=always"`) {
		t.Errorf("an unknown tmpfs option: got %v, want an error naming it", err)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// -v /path and the image's VOLUME paths get anonymous volumes with random
// 64-hex names; removing the container with volumes (rm -v, run --rm)
// removes them but not its named volumes, and removing it without keeps
// them.
func TestAnonymousVolumes(t *testing.T) {
	te := newTestEngine(t)
	ref := te.pushImage(t, "volimg", v1.Config{Volumes: map[string]struct{}{"/home": {}, "/named": {}}})
	spec := ContainerSpec{Name: "anon", Image: ref, Command: []string{"sh", "-c", "echo a > /data/f"},
		AnonymousVolumes: []string{"/data"}, Volumes: []string{"keep:/named"},
		Mounts: []MountSpec{{Type: MountVolume, Target: "/more"}}}
	c := te.runToEnd(t, spec)
	if !reflect.DeepEqual(c.Spec, spec) {
		t.Errorf("the spec changed at create (declared containers would be replaced at each converge):\ngot  %+v\nwant %+v", c.Spec, spec)
	}
	var anon []string
	for _, m := range c.AnonymousVolumes {
		if !hex64.MatchString(m.Source) {
			t.Errorf("mount %+v: want an anonymous volume with a 64-hex name", m)
			continue
		}
		v, err := te.Volume(m.Source)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := v.Labels[AnonymousLabel]; !ok {
			t.Errorf("volume %s: no %s label", m.Source, AnonymousLabel)
		}
		anon = append(anon, m.Source)
	}
	if got := strings.Join(c.Destinations(), ","); got != "/named,/more,/data,/home" {
		t.Errorf("mount points: got %s, want /named,/more,/data,/home (the image's /named is covered by the named volume)", got)
	}
	if len(anon) != 3 {
		t.Fatalf("anonymous volumes: got %v, want 3", anon)
	}
	if err := te.RemoveWith(context.Background(), c.ID, false, true); err != nil {
		t.Fatal(err)
	}
	for _, n := range anon {
		if _, err := te.Volume(n); !errors.Is(err, ErrNotFound) {
			t.Errorf("anonymous volume %s after rm -v: got %v, want it gone", n, err)
		}
	}
	if _, err := te.Volume("keep"); err != nil {
		t.Errorf("named volume after rm -v: %v", err)
	}
	c = te.runToEnd(t, ContainerSpec{Name: "kept", Image: ref, Command: []string{"true"}})
	if err := te.Remove(context.Background(), c.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Volume(c.AnonymousVolumes[0].Source); err != nil {
		t.Errorf("anonymous volume after rm without -v: %v", err)
	}
	c = te.run(t, ContainerSpec{Name: "autorm", Command: []string{"true"}, AutoRemove: true, AnonymousVolumes: []string{"/data"}})
	eventually(t, "the --rm container and its volume to go", func() bool {
		_, err := te.Volume(c.AnonymousVolumes[0].Source)
		return errors.Is(err, ErrNotFound)
	})
}

// A new named or anonymous volume mounted where the image has content
// gets that content, ownership and modes kept, unless noCopy; a volume
// with data keeps its data.
func TestCopyUp(t *testing.T) {
	te := newTestEngine(t)
	ref := te.pushImage(t, "cu", v1.Config{Volumes: map[string]struct{}{"/data": {}}},
		tarEntry{hdr: tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000}},
		tarEntry{hdr: tar.Header{Name: "data/file", Typeflag: tar.TypeReg, Mode: 0o4640, Uid: 1000, Gid: 100}, body: "content"},
		tarEntry{hdr: tar.Header{Name: "data/sub/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 7, Gid: 8}},
		tarEntry{hdr: tar.Header{Name: "data/sub/deep", Typeflag: tar.TypeReg, Mode: 0o600}, body: "deep"},
		tarEntry{hdr: tar.Header{Name: "data/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
	)
	c := te.runToEnd(t, ContainerSpec{Name: "named", Image: ref, Volumes: []string{"cu:/data"}, Command: []string{"cat", "/data/file", "/data/sub/deep"}})
	if got := te.logText(t, c.ID); got != "contentdeep" {
		t.Errorf("the container read %q, want contentdeep", got)
	}
	v, _ := te.Volume("cu")
	check := func(rel string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(v.Mountpoint, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: got %v %d:%d, want %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check(".", os.ModeDir|0o750, 1000, 1000)
	check("file", os.ModeSetuid|0o640, 1000, 100)
	check("sub", os.ModeDir|0o700, 7, 8)
	check("sub/deep", 0o600, 0, 0)
	if l, err := os.Readlink(filepath.Join(v.Mountpoint, "link")); err != nil || l != "/etc/passwd" {
		t.Errorf("link: got %q, %v, want the symlink copied as is", l, err)
	}
	// The image's VOLUME: an anonymous volume, copied up too.
	c = te.runToEnd(t, ContainerSpec{Name: "anon", Image: ref, Command: []string{"true"}})
	av, _ := te.Volume(c.AnonymousVolumes[0].Source)
	wantFile(t, filepath.Join(av.Mountpoint, "sub/deep"), "deep")
	// noCopy leaves it empty; a volume with data is not overwritten.
	te.runToEnd(t, ContainerSpec{Name: "nocopy", Image: ref, Command: []string{"true"},
		Mounts: []MountSpec{{Type: MountVolume, Source: "nc", Target: "/data", NoCopy: true}}})
	nc, _ := te.Volume("nc")
	if ents, _ := os.ReadDir(nc.Mountpoint); len(ents) != 0 {
		t.Errorf("noCopy volume: got %d entries, want none", len(ents))
	}
	if err := os.WriteFile(filepath.Join(nc.Mountpoint, "mine"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	te.runToEnd(t, ContainerSpec{Name: "full", Image: ref, Command: []string{"true"}, Volumes: []string{"nc:/data"}})
	if _, err := os.Stat(filepath.Join(nc.Mountpoint, "file")); err == nil {
		t.Error("copy-up wrote into a volume that had data")
	}
}

// Attack: the image's mount point is a symlink to a host directory and
// its content has symlinks out of the container; copy-up reads only
// inside the container's root and writes only into the volume.
func TestCopyUpSymlinkAttack(t *testing.T) {
	te := newTestEngine(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := te.pushImage(t, "evil", v1.Config{},
		// /data points at the host directory (absolute and by ..).
		tarEntry{hdr: tar.Header{Name: "data", Typeflag: tar.TypeSymlink, Linkname: host}},
		tarEntry{hdr: tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../../.." + host}},
		// /out holds links out, a copy following them would write there.
		tarEntry{hdr: tar.Header{Name: "out/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "out/escape", Typeflag: tar.TypeSymlink, Linkname: host}},
		tarEntry{hdr: tar.Header{Name: "out/secret", Typeflag: tar.TypeSymlink, Linkname: host + "/secret"}},
	)
	for _, dest := range []string{"/data", "/up"} {
		name := "v" + strings.Trim(dest, "/")
		te.runToEnd(t, ContainerSpec{Name: name, Image: ref, Command: []string{"true"}, Volumes: []string{name + ":" + dest}})
		v, _ := te.Volume(name)
		if ents, _ := os.ReadDir(v.Mountpoint); len(ents) != 0 {
			t.Errorf("%s -> %s: the host directory's content was copied into the volume (%d entries)", dest, host, len(ents))
		}
	}
	te.runToEnd(t, ContainerSpec{Name: "out", Image: ref, Command: []string{"true"}, Volumes: []string{"vout:/out"}})
	v, _ := te.Volume("vout")
	for _, n := range []string{"escape", "secret"} {
		fi, err := os.Lstat(filepath.Join(v.Mountpoint, n))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: got %v, %v, want a symlink copied as a symlink", n, fi, err)
		}
	}
	if ents, _ := os.ReadDir(host); len(ents) != 1 {
		t.Errorf("the host directory changed: %v", ents)
	}
	wantFile(t, filepath.Join(host, "secret"), "host secret")
}

// --log-opt max-size and max-file reach the shim: at most max-file files,
// each at most max-size.
func TestLogRotationLimits(t *testing.T) {
	te := newTestEngine(t)
	c := te.runToEnd(t, ContainerSpec{Name: "chatty", Log: LogSpec{MaxSize: "1k", MaxFile: 2},
		Command: []string{"sh", "-c", `i=0; while [ $i -lt 300 ]; do echo "line $i of the chatty container"; i=$((i+1)); done`}})
	files, err := filepath.Glob(filepath.Join(te.dir(c.ID), logs.FileName+"*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || len(files) > 2 {
		t.Errorf("log files: got %v, want 1 or 2", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 1000 {
			t.Errorf("%s: %d bytes, want at most 1000 (max-size=1k)", f, fi.Size())
		}
	}
	if out := te.logText(t, c.ID); !strings.Contains(out, "line 299 of") || strings.Contains(out, "line 0 of") {
		t.Errorf("logs: want the last lines kept and the first rotated away, got %d bytes", len(out))
	}
	if _, err := te.Create(context.Background(), ContainerSpec{Name: "bad", Image: te.ref, Log: LogSpec{Driver: "syslog"}}); err == nil ||
		!strings.Contains(err.Error(), `"syslog"`) {
		t.Errorf("log driver syslog: got %v, want an error naming it", err)
	}
}

func TestParseTmpfsOptions(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "nosuid,nodev,noexec",
		"size=64m,mode=1777": "nosuid,nodev,noexec,size=67108864,mode=1777",
		"exec,uid=1000,ro":   "nosuid,nodev,noexec,exec,uid=1000,ro",
		"nr_inodes=1k":       "nosuid,nodev,noexec,nr_inodes=1024",
	} {
		got, err := ParseTmpfsOptions(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%q: got %v, %v, want %s", in, got, err, want)
		}
	}
	for in, names := range map[string]string{
		"size=lots": `"size=lots"`, "mode=999": `"mode=999"`, "uid=x": `"uid=x"`, "bogus": `"bogus"`, "size=1m,noatime,huge=always": `"huge=always"`,
	} {
		if _, err := ParseTmpfsOptions(in); err == nil || !strings.Contains(err.Error(), names) {
			t.Errorf("%q: got %v, want an error naming %s", in, err, names)
		}
	}
}

func TestParseLogSize(t *testing.T) {
	for in, want := range map[string]int64{"10m": 10e6, "1k": 1000, "500": 500, "1.5g": 1.5e9, "2MB": 2e6, "3kb": 3000} {
		if got, err := ParseLogSize(in); err != nil || got != want {
			t.Errorf("%q: got %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1m", "lots", "1x"} {
		if _, err := ParseLogSize(in); err == nil {
			t.Errorf("%q: got no error", in)
		}
	}
}

// Validate reports each bad mount, tmpfs and log setting by its field.
func TestValidateMounts(t *testing.T) {
	s := ContainerSpec{Image: "i",
		Mounts: []MountSpec{{Type: "npipe", Target: "/a"}, {Type: MountBind, Source: "rel", Target: "/b"}, {Type: MountTmpfs, Target: "/"},
			{Type: MountVolume, Source: "../x", Target: "/c"}, {Type: MountBind, Source: "/h", Target: "/d", NoCopy: true}, {Type: MountTmpfs, Source: "x", Target: "/e"}},
		Tmpfs:            map[string]string{"rel": "", "/t": "bogus"},
		AnonymousVolumes: []string{"data"},
		Volumes:          []string{"v:/dup"}, Log: LogSpec{Driver: "gelf", MaxSize: "huge", MaxFile: -1},
	}
	s.Mounts = append(s.Mounts, MountSpec{Type: MountTmpfs, Target: "/dup"})
	err := s.Validate()
	for _, want := range []string{`mounts[0]: type "npipe"`, `mounts[1]: bind source "rel"`, `mounts[2]: target "/"`, `mounts[3]: volume source "../x"`,
		"mounts[4]: noCopy", `mounts[5]: tmpfs at /e`, `tmpfs: "rel"`, `tmpfs./t: tmpfs option "bogus"`, `anonymousVolumes[0]: "data"`,
		"duplicate mount point: /dup", `log.driver: "gelf"`, `log.maxSize: log size "huge"`, "log.maxFile: -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// A declared container's YAML takes mounts, tmpfs, anonymous volumes and
// log rotation; a bad one is reported by field.
func TestParseWorkloadStorage(t *testing.T) {
	yml := `
image: nginx:1.25
mounts:
  - {type: volume, source: cache, target: /var/cache/nginx, noCopy: true}
  - {type: tmpfs, target: /scratch, tmpfsSize: 1048576, tmpfsMode: 0o1770}
  - {type: bind, source: /srv/conf, target: /etc/nginx, readOnly: true}
tmpfs: {/run: "size=64m"}
anonymousVolumes: [/data]
log: {maxSize: 10m, maxFile: 3}
`
	got, err := ParseWorkload([]byte(yml), "/etc/hostd/containers/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := ContainerSpec{Name: "web", Image: "nginx:1.25",
		Mounts: []MountSpec{{Type: MountVolume, Source: "cache", Target: "/var/cache/nginx", NoCopy: true},
			{Type: MountTmpfs, Target: "/scratch", TmpfsSize: 1 << 20, TmpfsMode: 0o1770},
			{Type: MountBind, Source: "/srv/conf", Target: "/etc/nginx", ReadOnly: true}},
		Tmpfs: map[string]string{"/run": "size=64m"}, AnonymousVolumes: []string{"/data"}, Log: LogSpec{MaxSize: "10m", MaxFile: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	_, err = ParseWorkload([]byte("image: i\ntmpfs: {/run: \"size=lots\"}\nmounts: [{type: volume, target: rel}]\n"), "/etc/hostd/containers/bad.yaml")
	if err == nil || !strings.Contains(err.Error(), "tmpfs./run") || !strings.Contains(err.Error(), "mounts[0]") {
		t.Errorf("got %v, want errors naming tmpfs./run and mounts[0]", err)
	}
}
