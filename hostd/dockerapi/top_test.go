package dockerapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPsRow reads a process from a /proc written by the test: a command
// name with spaces and parentheses must not shift the stat fields.
func TestPsRow(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ... utime(14) stime(15) ... starttime(22)
	stat := "42 (my (odd) cmd) S 7 42 42 0 -1 4194560 100 0 0 0 6000 300 0 0 20 0 1 0 500 1000 10\n"
	files := map[string]string{"stat": stat, "status": "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n", "cmdline": "sleep\x00300\x00"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	boot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.Local)
	row, err := psRow(proc, 42, boot)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(row, "|"), "1000|42|7|0|10:00|?|00:01:03|sleep 300"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := psRow(proc, 43, boot); err == nil {
		t.Error("missing pid: got no error")
	}
}
