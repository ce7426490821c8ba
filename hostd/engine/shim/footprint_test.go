package shim

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// programRSS is how much of this program's read-only mappings is
// resident in this process, in kB (from /proc/self/smaps).
func programRSS(t *testing.T) int {
	t.Helper()
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, in := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			_, _, in = programMapping(line, exe.Ino) // a mapping's first line
			continue
		}
		if kb, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			total += n
		}
	}
	return total
}

// TestDropProgramPages: after the drop, this process has far fewer of its
// program's pages mapped, and it still runs (they come back on use: the
// test goes on).
func TestDropProgramPages(t *testing.T) {
	before := programRSS(t)
	if err := dropProgramPages(); err != nil {
		t.Fatal(err)
	}
	after := programRSS(t)
	t.Logf("program pages resident: %d kB before, %d kB after", before, after)
	if before < 1024 || after > before*3/4 {
		t.Errorf("program pages resident: %d kB before, %d kB after; want a quarter of them unmapped at least", before, after)
	}
}
