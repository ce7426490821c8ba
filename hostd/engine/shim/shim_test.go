package shim

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestArgsRoundTrip(t *testing.T) {
	for name, c := range map[string]Config{
		"plain":    {ID: "abc", Dir: "/d", StateRoot: "/s", Launcher: "/usr/bin/hostd-launch", LogMax: 1 << 20, LogFiles: 2},
		"terminal": {ID: "abc", Dir: "/d", StateRoot: "/s", Launcher: "/l", LogMax: 5, LogFiles: 1, Tty: true, Stdin: true, StdinOnce: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseArgs(c.Args())
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Errorf("got %+v, %v, want %+v", got, err, c)
			}
		})
	}
	if _, err := ParseArgs([]string{"--id", "x", "--dir", "/d", "--state", "/s"}); err == nil || !strings.Contains(err.Error(), "--launcher") {
		t.Errorf("without --launcher: got %v, want an error naming it", err)
	}
}

// A launcher that cannot run, or ends without reporting, fails the start
// with what happened, and the exit is recorded.
func TestLauncherFailures(t *testing.T) {
	for name, tc := range map[string]struct{ launcher, want string }{
		"missing":   {"/nonexistent/hostd-launch", "running the launcher /nonexistent/hostd-launch"},
		"no report": {"/bin/true", "the launcher ended (exit status 0) without a report"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c := Config{ID: "ctr", Dir: dir, StateRoot: filepath.Join(dir, "state"), Launcher: tc.launcher, LogMax: 1 << 20, LogFiles: 1}
			var started error
			err := Run(context.Background(), c, func(err error) { started = err })
			if err == nil || started == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (started: %v), want %q", err, started, tc.want)
			}
			ex, rerr := ReadExit(dir)
			if rerr != nil || ex.Code != -1 || !strings.Contains(ex.Error, tc.want) {
				t.Errorf("exit record: got %+v, %v, want code -1 and %q", ex, rerr, tc.want)
			}
		})
	}
}
