package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCopyStaysInContainer plants /escape -> / and /dir/up -> / in a
// container, running and stopped, and copies through them both ways: the
// links lead to the container's root, never the host's, and a link in a
// copied directory is copied as a link.
func TestCopyStaysInContainer(t *testing.T) {
	te := newTestEngine(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := "ln -s / /escape && mkdir /dir && ln -s / /dir/up && echo inside > /marker"
	for _, tc := range []struct {
		name    string
		command string
		running bool
	}{
		{"running", plant + " && sleep 300", true},
		{"stopped", plant, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := te.run(t, ContainerSpec{Name: "cp" + tc.name, Command: []string{"sh", "-c", tc.command}})
			if tc.running {
				eventually(t, "the links", func() bool { _, err := te.StatPath(c.ID, "/marker"); return err == nil })
			} else if code, _ := te.Wait(ctx, c.ID); code != 0 {
				t.Fatalf("planting the links: exit %d", code)
			}

			var buf bytes.Buffer
			err := te.CopyFrom(c.ID, "/escape"+hostDir+"/secret", func(PathStat) {}, &buf)
			if !errors.Is(err, ErrNoPath) || strings.Contains(buf.String(), "host secret") {
				t.Errorf("copying /escape%s/secret: got %v (the host's secret in the copy: %t), want ErrNoPath",
					hostDir, err, strings.Contains(buf.String(), "host secret"))
			}
			buf.Reset()
			if err := te.CopyFrom(c.ID, "/escape/marker", func(PathStat) {}, &buf); err != nil || !strings.Contains(buf.String(), "inside") {
				t.Errorf("copying /escape/marker: %v, %q", err, buf.String())
			}
			buf.Reset()
			if err := te.CopyFrom(c.ID, "/dir", func(PathStat) {}, &buf); err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(&buf)
			for {
				hdr, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(hdr.Name, "dir/up/") || (hdr.Name == "dir/up" && hdr.Typeflag != tar.TypeSymlink) {
					t.Errorf("copying /dir followed its link up: entry %s", hdr.Name)
				}
			}

			name := "bulkhead-engine-cp-" + c.ID[:12]
			var in bytes.Buffer
			tw := tar.NewWriter(&in)
			_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, ModTime: time.Now()})
			_, _ = tw.Write([]byte("in\n"))
			tw.Close()
			if err := te.CopyTo(ctx, c.ID, "/escape/tmp", &in, CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join("/tmp", name)); err == nil {
				os.Remove(filepath.Join("/tmp", name))
				t.Errorf("copying into /escape/tmp wrote the host's /tmp/%s", name)
			}
			if _, err := os.Lstat(filepath.Join(te.snaps.Upper(c.ID), "tmp", name)); err != nil {
				t.Errorf("the copy is not in the container: %v", err)
			}
			if err := te.CopyTo(ctx, c.ID, "/escape"+hostDir, bytes.NewReader(in.Bytes()), CopyOptions{}); !errors.Is(err, ErrNoPath) {
				t.Errorf("copying into /escape%s: got %v, want ErrNoPath", hostDir, err)
			}
		})
	}
}

// TestEventsLifecycle runs a container through its life and reads its
// events back, in order, with their attributes.
func TestEventsLifecycle(t *testing.T) {
	te := newTestEngine(t)
	since := time.Now()
	ctx := context.Background()
	c := te.run(t, ContainerSpec{Name: "ev", Labels: map[string]string{"app": "x"}, Command: []string{"sh", "-c", "exit 5"}})
	te.Wait(ctx, c.ID)
	if err := te.Remove(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	past, _, cancel := te.Events(since)
	cancel()
	var got []string
	for _, ev := range past {
		if ev.ID != c.ID || ev.Attributes["name"] != "ev" || ev.Attributes["app"] != "x" {
			t.Errorf("event %+v: not of the container ev", ev)
		}
		if ev.Action == "die" && ev.Attributes["exitCode"] != "5" {
			t.Errorf("die: exitCode %q, want 5", ev.Attributes["exitCode"])
		}
		got = append(got, ev.Action)
	}
	if strings.Join(got, ",") != "create,start,die,destroy" {
		t.Errorf("events: got %v, want create,start,die,destroy", got)
	}
}
