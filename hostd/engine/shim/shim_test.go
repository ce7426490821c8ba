package shim

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

func TestArgsRoundTrip(t *testing.T) {
	for name, c := range map[string]Config{
		"plain":    {ID: "abc", Dir: "/d", StateRoot: "/s", LogMax: 1 << 20, LogFiles: 2},
		"terminal": {ID: "abc", Dir: "/d", StateRoot: "/s", LogMax: 5, LogFiles: 1, Tty: true, Stdin: true, StdinOnce: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseArgs(c.Args())
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Errorf("got %+v, %v, want %+v", got, err, c)
			}
		})
	}
	if _, err := ParseArgs([]string{"--id", "x", "--dir", "/d"}); err == nil || !strings.Contains(err.Error(), "--state") {
		t.Errorf("without --state: got %v, want an error naming it", err)
	}
}

// A container that cannot start fails the start with the runtime's error,
// the exit is recorded, and the runtime was handed the container's side
// of its stdio: no terminal socket without a terminal.
func TestStartFailure(t *testing.T) {
	dir := t.TempDir()
	c := Config{ID: "ctr", Dir: dir, StateRoot: filepath.Join(dir, "state"), LogMax: 1 << 20, LogFiles: 1}
	var handed runtime.Files
	start := func(_ context.Context, got Config, files runtime.Files) (int, error) {
		if got.ID != c.ID {
			t.Errorf("starter got %+v, want %+v", got, c)
		}
		handed = files
		return 0, errors.New("no such image layer")
	}
	var started error
	err := Run(context.Background(), c, start, func(err error) { started = err })
	if err == nil || started == nil || !strings.Contains(err.Error(), "no such image layer") {
		t.Fatalf("got %v (started: %v), want the starter's error", err, started)
	}
	if handed.Stdin == nil || handed.Stdout == nil || handed.Stderr == nil || handed.Console != nil {
		t.Errorf("stdio handed to the runtime: %+v, want stdin, stdout and stderr, no console", handed)
	}
	ex, rerr := ReadExit(dir)
	if rerr != nil || ex.Code != -1 || !strings.Contains(ex.Error, "no such image layer") {
		t.Errorf("exit record: got %+v, %v, want code -1 and the error", ex, rerr)
	}
}
