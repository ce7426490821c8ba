package units

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Unit
		want string
	}{
		{"ok", Unit{Name: "a.service", Command: "restart", DropIns: []DropIn{{Name: "10-x.conf"}}}, ""},
		{"no suffix", Unit{Name: "a"}, `name: "a" is not a unit name such as hello.service`},
		{"path in name", Unit{Name: "../a.service"}, `name: "../a.service" is not a unit name such as hello.service`},
		{"bad drop-in", Unit{Name: "a.service", DropIns: []DropIn{{Name: "x"}}}, `drop_ins[0].name: "x" must be a file name ending in .conf`},
		{"bad command", Unit{Name: "a.service", Command: "rm"}, `command: "rm" is not a systemctl verb (start, stop, restart, ...)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.u.Validate(), "; "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	content := "[Service]\nExecStart=/bin/true\n"
	rec := &run.Recorder{}
	err := Apply(context.Background(), rec, root, []Unit{
		{Name: "a.service", Contents: &content, Enable: true, Command: "start"},
		{Name: "b.service", Mask: true},
		{Name: "c.service", Runtime: true, Contents: &content, Enable: true},
		{Name: "d.service", DropIns: []DropIn{{Name: "10-x.conf", Contents: "[Unit]\n"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "systemctl daemon-reload\nsystemctl enable a.service\nsystemctl --no-block start a.service\nsystemctl enable --runtime c.service\n"
	if got := rec.Transcript(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if target, _ := os.Readlink(root.Join("/etc/systemd/system/b.service")); target != "/dev/null" {
		t.Errorf("got mask link %q, want /dev/null", target)
	}
	for _, p := range []string{"/etc/systemd/system/a.service", "/run/systemd/system/c.service", "/etc/systemd/system/d.service.d/10-x.conf"} {
		if _, err := os.Stat(root.Join(p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
