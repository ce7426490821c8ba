package qemutests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkBootToHostdReady boots the image under BIOS and measures the time
// from starting QEMU to hostd reporting ready (its unit active), polled once
// a second through the guest agent, and systemd's own count from kernel
// start (ActiveEnterTimestampMonotonic). TCG here; KVM where it works.
func BenchmarkBootToHostdReady(b *testing.B) {
	for i := 0; i < b.N; i++ {
		vm := bootVM(b, BootOpts{Firmware: BIOS})
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		if err := vm.WaitAgent(ctx); err != nil {
			b.Fatal(err)
		}
		for {
			r, err := vm.Exec(ctx, "systemctl", "is-active", "hostd.service")
			if err != nil {
				b.Fatal(err)
			}
			if strings.TrimSpace(r.Stdout) == "active" {
				break
			}
			time.Sleep(time.Second)
		}
		wall := time.Since(start)
		r, _ := vm.Exec(ctx, "systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "hostd.service")
		cancel()
		vm.Shutdown(time.Minute)
		b.ReportMetric(wall.Seconds(), "s-to-hostd-ready")
		if us := strings.TrimSpace(r.Stdout); us != "" {
			if v, err := strconv.ParseFloat(us, 64); err == nil {
				b.ReportMetric(v/1e6, "s-kernel-to-hostd")
			}
		}
	}
}
