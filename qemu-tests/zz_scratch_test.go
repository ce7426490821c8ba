package qemutests

import (
	"context"
	"testing"
	"time"
)

func TestZZScratch(t *testing.T) {
	srv := newCountingServer(t, "/work/main/out/bench-update-repo")
	vm := bootVM(t, BootOpts{Firmware: BIOS})
	waitReady(t, vm)
	waitUnit(t, vm, "bulkhead-bless.service")
	g := &qemuGuest{vm: vm}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, repo := range []string{"v3", "v2"} {
		out, err := g.Run(ctx, "hostctl upgrade --from "+srv.url+"/"+repo+" 2>&1 | while IFS= read -r l; do echo \"$(cut -d' ' -f1 /proc/uptime) $l\"; done; journalctl -u hostd --no-pager -n 0 >/dev/null")
		t.Logf("%s: %v\n%s", repo, err, out)
	}
}
