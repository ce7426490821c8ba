package qemutests

import (
	"context"
	"regexp"
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
		// Where the boot went: systemd's phases, and the chain to hostd
		// (printed with -v), once the boot has settled.
		if a, err := vm.Exec(ctx, "/bin/sh", "-c", "systemctl is-system-running --wait >/dev/null; systemd-analyze; systemd-analyze critical-chain hostd.service; systemd-analyze blame | head -15"); err == nil {
			for name, v := range bootPhases(a.Stdout) {
				b.ReportMetric(v, "s-"+name)
			}
			b.Logf("boot %d:\n%s", i, a.Stdout)
		}
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

// phaseRE matches one phase of systemd-analyze's "Startup finished in 1.2s
// (kernel) + 3.4s (initrd) + 1min 2.3s (userspace)".
var phaseRE = regexp.MustCompile(`(?:(\d+)min )?([\d.]+)(ms|s) \((\w+)\)`)

// bootPhases reads systemd-analyze's phases, in seconds, by name.
func bootPhases(out string) map[string]float64 {
	line, _, _ := strings.Cut(out, "\n")
	m := map[string]float64{}
	for _, p := range phaseRE.FindAllStringSubmatch(line, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		if p[3] == "ms" {
			v /= 1000
		}
		if p[1] != "" {
			mins, _ := strconv.ParseFloat(p[1], 64)
			v += 60 * mins
		}
		m[p[4]] = v
	}
	return m
}

func TestBootPhases(t *testing.T) {
	got := bootPhases("Startup finished in 2.517s (kernel) + 812ms (initrd) + 1min 3.250s (userspace) = 1min 6.579s\ngraphical.target reached\n")
	want := map[string]float64{"kernel": 2.517, "initrd": 0.812, "userspace": 63.25}
	for k, v := range want {
		if d := got[k] - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
}
