package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStatsFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := readUint(write("current", "12345\n")); got != 12345 {
		t.Errorf("readUint: got %d, want 12345", got)
	}
	if got := readUint(write("max", "max\n")); got != 0 {
		t.Errorf("readUint(max): got %d, want 0", got)
	}
	if got := readUint(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("readUint(missing): got %d, want 0", got)
	}
	kv := readKV(write("cpu.stat", "usage_usec 1500\nuser_usec 1000\nbad line here\n"))
	if kv["usage_usec"] != 1500 || kv["user_usec"] != 1000 || len(kv) != 2 {
		t.Errorf("readKV: got %v", kv)
	}
	// user nice system idle iowait irq softirq: 100 jiffies each.
	if got, want := systemNanos(write("stat", "cpu  100 100 100 100 100 100 100 0 0 0\ncpu0 1 2 3\n")), uint64(7*time.Second); got != want {
		t.Errorf("systemNanos: got %d, want %d", got, want)
	}
	if got := systemNanos(write("stat2", "intr 1\n")); got != 0 {
		t.Errorf("systemNanos(no cpu line): got %d, want 0", got)
	}
	if got := hostMemory(write("meminfo", "MemTotal:        2048 kB\nMemFree: 1 kB\n")); got != 2048*1024 {
		t.Errorf("hostMemory: got %d, want %d", got, 2048*1024)
	}
}
