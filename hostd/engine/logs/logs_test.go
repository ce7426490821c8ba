package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func collect(t *testing.T, dir string, opts ReadOptions) string {
	t.Helper()
	var b strings.Builder
	if err := Read(context.Background(), dir, opts, func(e Entry) error {
		b.WriteString(e.Stream[:3] + ":" + e.Log)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestLinesAndStreams(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Dir: dir}
	out, errs := w.Stream("stdout"), w.Stream("stderr")
	fmt.Fprint(out, "hel")
	fmt.Fprint(out, "lo\nworld\npart")
	fmt.Fprint(errs, "oops\n")
	out.Flush()
	w.Close()
	got := collect(t, dir, ReadOptions{})
	want := "std:hello\nstd:world\nstd:oops\nstd:part"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := collect(t, dir, ReadOptions{Tail: 2}); got != "std:oops\nstd:part" {
		t.Errorf("tail 2: got %q", got)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Dir: dir, MaxBytes: 300, Files: 3}
	s := w.Stream("stdout")
	for i := range 20 {
		fmt.Fprintf(s, "line %02d\n", i)
	}
	w.Close()
	ents, _ := filepath.Glob(filepath.Join(dir, FileName+"*"))
	if len(ents) != 3 {
		t.Errorf("got %d log files, want 3", len(ents))
	}
	got := collect(t, dir, ReadOptions{})
	if !strings.HasSuffix(got, "std:line 19\n") || strings.Contains(got, "line 00") {
		t.Errorf("got %q, want the newest lines only, ending with line 19", got)
	}
	// Lines come in order across files.
	lines := strings.Split(strings.TrimSpace(got), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] <= lines[i-1] {
			t.Errorf("out of order: %q after %q", lines[i], lines[i-1])
		}
	}
}

func TestFollowUntilDone(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Dir: dir}
	s := w.Stream("stdout")
	var done atomic.Bool
	var seen atomic.Int32
	go func() {
		for i := range 10 {
			fmt.Fprintf(s, "follow %d\n", i)
		}
		w.Close()
		done.Store(true)
	}()
	err := Read(context.Background(), dir, ReadOptions{Follow: true, Done: done.Load}, func(e Entry) error {
		seen.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 10 {
		t.Errorf("got %d lines, want 10", seen.Load())
	}
	os.RemoveAll(dir)
}
