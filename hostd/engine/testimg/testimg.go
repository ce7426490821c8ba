package testimg

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Busybox is where Debian's busybox-static puts the static binary.
const Busybox = "/bin/busybox"

// Applets are linked to busybox in the test root filesystem.
var Applets = []string{"sh", "true", "false", "echo", "cat", "ls", "ps", "mount", "id", "hostname",
	"sleep", "insmod", "touch", "mkdir", "env", "pwd", "nc", "wget", "ip", "kill", "test", "grep", "whoami", "umount", "unshare", "wc", "httpd",
	"rm", "mkfifo", "mknod", "chmod", "cp"}

// RequireHost fails unless the test can run containers here: root,
// overlayfs and a static busybox.
func RequireHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers need namespaces, cgroups and overlayfs")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !bytes.Contains(b, []byte("overlay")) {
		t.Fatal("needs overlayfs in the kernel (/proc/filesystems has no overlay)")
	}
	out, err := exec.Command("file", "-L", Busybox).Output()
	if _, serr := os.Stat(Busybox); serr != nil || (err == nil && bytes.Contains(out, []byte("dynamically"))) {
		t.Fatal("needs a static /bin/busybox: apt-get install busybox-static")
	}
}

// files is the busybox root filesystem as tar entries.
func files() ([]*tar.Header, []byte, error) {
	bin, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, nil, err
	}
	hs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "proc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "sys/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "home/app/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000},
	}
	for _, a := range Applets {
		hs = append(hs, &tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	return hs, bin, nil
}

var passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
var group = "root:x:0:\napp:x:1000:\n"

// Tar returns the busybox root filesystem as an uncompressed layer tar.
func Tar(t testing.TB) []byte {
	t.Helper()
	hs, bin, err := files()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		body := []byte(nil)
		switch h.Name {
		case "bin/busybox":
			body = bin
		case "etc/passwd":
			body = []byte(passwd)
		case "etc/group":
			body = []byte(group)
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

// Layer returns the busybox root filesystem as an image layer.
func Layer(t testing.TB) v1.Layer {
	t.Helper()
	b := Tar(t)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image is a busybox image with cfg (entrypoint, cmd, env) and extra layers.
func Image(t testing.TB, cfg v1.Config, extra ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, append([]v1.Layer{Layer(t)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/bin"}
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Rootfs writes the busybox root filesystem into dir (plain files; for
// tests of the runtime without the image store).
func Rootfs(t testing.TB, dir string) {
	t.Helper()
	hs, bin, err := files()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, os.FileMode(h.Mode)&os.ModePerm)
			os.Chmod(p, os.FileMode(h.Mode)&os.ModePerm|modeSticky(h.Mode))
			os.Chown(p, h.Uid, h.Gid)
		case tar.TypeSymlink:
			os.Symlink(h.Linkname, p)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "bin/busybox"), bin, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "etc/group"), []byte(group), 0o644))
}

func modeSticky(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
