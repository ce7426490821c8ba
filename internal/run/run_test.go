package run

import (
	"context"
	"strings"
	"testing"
)

func TestExecReportsStderrAndExitCode(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo boom >&2; exit 3"}})
	if err == nil {
		t.Fatal("got nil error, want exit status 3")
	}
	if !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "sh -c") {
		t.Errorf("got %q, want argv and stderr in the error", err)
	}
	if got := ExitCode(err); got != 3 {
		t.Errorf("got exit code %d, want 3", got)
	}
}

func TestExecReturnsStdout(t *testing.T) {
	out, err := Exec{}.Run(context.Background(), Cmd{Name: "echo", Args: []string{"hi"}})
	if err != nil || string(out) != "hi\n" {
		t.Errorf("got %q, %v, want %q", out, err, "hi\n")
	}
}

func TestCmdStringQuotes(t *testing.T) {
	got := Cmd{Name: "lvcreate", Args: []string{"-n", "a b", "it's", ""}}.String()
	want := `lvcreate -n 'a b' 'it'\''s' ''`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRecorderTranscript(t *testing.T) {
	r := &Recorder{Respond: func(c Cmd) ([]byte, error) { return []byte("ok"), nil }}
	out, _ := r.Run(context.Background(), Cmd{Name: "pvcreate", Args: []string{"/dev/vdb1"}})
	if string(out) != "ok" {
		t.Errorf("got %q, want %q", out, "ok")
	}
	if got := r.Transcript(); got != "pvcreate /dev/vdb1\n" {
		t.Errorf("got %q", got)
	}
}
