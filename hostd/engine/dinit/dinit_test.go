package dinit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The child's exit code, or 128+signal, is the init's.
func TestExitCode(t *testing.T) {
	for args, want := range map[string]int{"exit 3": 3, "kill -9 $$": 137, "true": 0} {
		if got := Main([]string{"--", "sh", "-c", args}); got != want {
			t.Errorf("sh -c %q: got %d, want %d", args, got, want)
		}
	}
	if got := Main([]string{"--", "/nonexistent/cmd"}); got != 127 {
		t.Errorf("a missing command: got %d, want 127", got)
	}
	if got := Main(nil); got != 1 {
		t.Errorf("no command: got %d, want 1", got)
	}
}

// A signal the init gets reaches the child, whose trap decides the exit.
func TestForwardsSignals(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--", "sh", "-c", "trap 'exit 5' USR1; touch " + ready + "; while :; do sleep 0.05; done"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never set its trap")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 5 {
			t.Errorf("got %d, want 5 (the trap's)", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the child did not exit: the signal was not forwarded")
	}
}
