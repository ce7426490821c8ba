package qemutests

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/benchtable"
)

// bootRuns is how many boots BenchmarkBootToHostdReady times (each a first
// boot of a fresh copy of the image), for a median, min and max.
const bootRuns = 3

// BenchmarkBootToHostdReady boots the image under BIOS bootRuns times and
// prints a table (median, min, max) of the time from starting QEMU to hostd
// reporting ready (its unit active), polled once a second through the guest
// agent; systemd's own count from kernel start (ActiveEnterTimestampMonotonic);
// and systemd-analyze's phases. The chain to hostd is logged (-v). TCG here;
// KVM where it works.
func BenchmarkBootToHostdReady(b *testing.B) {
	tab := benchtable.New("s")
	for i := 0; i < b.N; i++ {
		for run := 0; run < bootRuns; run++ {
			bootOnce(b, tab, run)
		}
	}
	tab.Write(os.Stdout)
	b.ReportMetric(tab.Stats("QEMU start to hostd ready").Median, "s-to-hostd-ready")
	b.ReportMetric(tab.Stats("kernel start to hostd ready").Median, "s-kernel-to-hostd")
}

func bootOnce(b *testing.B, tab *benchtable.Table, run int) {
	vm := bootVM(b, BootOpts{Firmware: BIOS})
	defer vm.Shutdown(time.Minute)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
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
	tab.Add("QEMU start to hostd ready", time.Since(start).Seconds())
	r, _ := vm.Exec(ctx, "systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "hostd.service")
	if v, err := strconv.ParseFloat(strings.TrimSpace(r.Stdout), 64); err == nil {
		tab.Add("kernel start to hostd ready", v/1e6)
	}
	// Where the boot went: systemd's phases, and the chain to hostd, once
	// the boot has settled.
	a, err := vm.Exec(ctx, "/bin/sh", "-c", "systemctl is-system-running --wait >/dev/null; systemd-analyze; "+
		"systemd-analyze critical-chain hostd.service local-fs.target; systemd-analyze blame | head -15")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"kernel", "initrd", "userspace"} {
		if v, ok := bootPhases(a.Stdout)[name]; ok {
			tab.Add(name+" (systemd-analyze)", v)
		}
	}
	b.Logf("boot %d:\n%s", run, a.Stdout)
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
