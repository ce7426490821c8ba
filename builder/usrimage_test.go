package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsrImageLeavesOutBuildOnly makes a /usr image with the builder's
// mkfs.erofs arguments from a small tree and lists it with dump.erofs: the
// boot chain's and dracut's files are not in it, their neighbours are.
func TestUsrImageLeavesOutBuildOnly(t *testing.T) {
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr")
	for _, f := range []string{
		"lib/grub/i386-pc/boot.img", "lib/shim/shimx64.efi.signed", "share/grub/unicode.pf2", "lib/dracut/dracut-init.sh",
		"bin/grub-editenv", "sbin/grub-install", "bin/dracut", "bin/lsinitrd",
		"lib/grubby/keep", "bin/hostctl", "bin/lsinitrd-not", "share/shim-keep", "sbin/sgrub-keep",
	} {
		p := filepath.Join(usr, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(f, 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "usr.erofs")
	if out, err := exec.Command("mkfs.erofs", usrImageArgs(0, "66dec141-9bb5-8d88-941c-547ecb8fa8e5", img, usr)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
	}
	ls := func(d string) string {
		out, err := exec.Command("dump.erofs", "--ls", "--path="+d, img).CombinedOutput()
		if err != nil {
			t.Fatalf("dump.erofs --ls %s: %v\n%s", d, err, out)
		}
		var names []string
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				names = append(names, f[len(f)-1])
			}
		}
		return " " + strings.Join(names, " ") + " "
	}
	for d, want := range map[string][]string{
		"/lib": {"grubby"}, "/bin": {"hostctl", "lsinitrd-not"}, "/share": {"shim-keep"}, "/sbin": {"sgrub-keep"},
	} {
		got := ls(d)
		for _, w := range want {
			if !strings.Contains(got, " "+w+" ") {
				t.Errorf("%s lacks %s: %s", d, w, got)
			}
		}
		for _, bad := range []string{" grub ", " shim ", " dracut ", " grub-editenv ", " grub-install ", " lsinitrd "} {
			if strings.Contains(got, bad) {
				t.Errorf("%s holds build-only %s: %s", d, strings.TrimSpace(bad), got)
			}
		}
	}
}
