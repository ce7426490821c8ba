package ignition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/internal/testtree"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// configServer serves testdata/served/* at /served/ (with {{SERVER}}
// replaced by its own URL, so referenced configs can reference more) and
// /fetched to requests with the header X-Test: yes.
func configServer(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := strings.CutPrefix(r.URL.Path, "/served/"); ok {
			data, err := os.ReadFile(filepath.Join("testdata/served", filepath.Base(name)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(strings.ReplaceAll(string(data), "{{SERVER}}", srv.URL)))
			return
		}
		if r.URL.Path != "/fetched" || r.Header.Get("X-Test") != "yes" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "from http\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newRoot makes a root with a minimal passwd and group, and seeds what
// some configs need to find there (a masked unit to unmask, a file not
// to overwrite).
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	testtree.WriteFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nold:x:999:999::/home/old:/bin/sh\n")
	testtree.WriteFile(t, filepath.Join(root, "etc/group"), "root:x:0:\nold:x:999:\nlegacy:x:998:\n")
	testtree.WriteFile(t, filepath.Join(root, "etc/existing.conf"), "kept\n")
	testtree.WriteFile(t, filepath.Join(root, "etc/appendme"), "first\n")
	if err := os.Chmod(filepath.Join(root, "etc/appendme"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(root, "etc/systemd/system/was-masked.service")); err != nil {
		t.Fatal(err)
	}
	return root
}

// recorder answers like the shadow tools and a systemd whose units are
// all enabled.
func recorder(root string) *run.Recorder {
	return &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
		testtree.FakeShadow(root, c.Name, c.Args)
		if c.Name == "systemctl" && len(c.Args) > 0 && c.Args[0] == "is-enabled" {
			return []byte("enabled\n"), nil
		}
		return nil, nil
	}}
}

// applyTranscript parses and applies raw to a new root and renders the
// outcome: warnings, the error, the commands run and the tree.
func applyTranscript(t *testing.T, raw []byte, offline bool) string {
	t.Helper()
	cfg, warnings, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	rec := recorder(root)
	res, err := Applier{Root: fsroot.Root(root), Runner: rec, Offline: offline}.Apply(context.Background(), cfg)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	return fmt.Sprintf("## warnings\n%s\n## error\n%s\n## commands\n%s## tree\n%s",
		strings.Join(append(warnings, res.Warnings...), "\n"), errText,
		rec.Transcript(), testtree.Dump(root, "/etc/passwd", "/etc/group"))
}

// TestApply applies every config under testdata/configs to a new root
// and compares the commands run, the error and the resulting tree with
// testdata/out.
func TestApply(t *testing.T) {
	srv := configServer(t)
	configs, _ := filepath.Glob("testdata/configs/*.json")
	if len(configs) == 0 {
		t.Fatal("no configs")
	}
	for _, path := range configs {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			raw = []byte(strings.ReplaceAll(string(raw), "{{SERVER}}", srv.URL))
			out := applyTranscript(t, raw, false)
			golden.Assert(t, "out/"+name+".txt", []byte(strings.ReplaceAll(out, srv.URL, "SERVER")))
		})
	}
}

// TestApplyOffline applies the effects config to an image tree: files
// and unit enablement, nothing that acts on the running system.
func TestApplyOffline(t *testing.T) {
	raw, err := os.ReadFile("testdata/configs/effects.json")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "out/effects-offline.txt", []byte(applyTranscript(t, raw, true)))
}

// TestRefusedWhole checks that a config using what Bulkhead does not
// implement is refused before anything is applied, naming every path.
func TestRefusedWhole(t *testing.T) {
	raw, err := os.ReadFile("testdata/configs/unsupported.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	before := testtree.Dump(root)
	rec := recorder(root)
	_, err = Applier{Root: fsroot.Root(root), Runner: rec}.Apply(context.Background(), cfg)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	for _, want := range []string{
		"storage.disks[0]: not supported by Bulkhead", "storage.disks[1]: not supported by Bulkhead",
		"storage.raid[0]: not supported", "storage.filesystems[0]: not supported", "storage.luks[0]: not supported",
		"kernelArguments.shouldExist[0]: not supported", "kernelArguments.shouldNotExist[0]: not supported",
		`storage.files[1].contents.source: scheme "s3" not supported`,
		`storage.files[1].append[0].source: scheme "gs" not supported`,
		`storage.files[2].contents.source: scheme "tftp" not supported`,
		"storage.files[3]: /etc/existing.conf: a file exists there and overwrite is false",
	} {
		if !strings.Contains(err.Error(), want+"") {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	}
	if calls := rec.Transcript(); calls != "" {
		t.Errorf("got commands %q, want none", calls)
	}
	if after := testtree.Dump(root); after != before {
		t.Errorf("root changed by a refused config:\n%s", after)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"spec 2", `{"ignition":{"version":"2.2.0"}}`, "unsupported config version"},
		{"spec 3.6 experimental", `{"ignition":{"version":"3.6.0-experimental"}}`, "unsupported config version"},
		{"not json", `hostname: x`, "ignition config"},
		{"relative path", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"etc/x"}]}}`, "path not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseWarnsUnknownKey(t *testing.T) {
	_, warnings, err := Parse([]byte(`{"ignition":{"version":"3.4.0"},"storage":{"filez":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "filez") {
		t.Errorf("got warnings %q, want one naming filez", warnings)
	}
}

// FuzzParse feeds arbitrary bytes to Parse. A config Parse accepts must
// survive a round trip through JSON unchanged (what Bulkhead validates is
// what it applies), and Unsupported must agree on both; a panic anywhere
// fails the target (nothing under test recovers).
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/configs/*.json", "testdata/served/*.json"} {
		configs, _ := filepath.Glob(dir)
		for _, c := range configs {
			data, _ := os.ReadFile(c)
			f.Add(data)
		}
	}
	f.Add([]byte(`{"ignition":{"version":"3.0.0"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Parse(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshalling a parsed config: %v", err)
		}
		again, _, err := Parse(out)
		if err != nil {
			t.Fatalf("a parsed config does not parse again: %v\n%s", err, out)
		}
		// Compared as JSON: an empty list and an absent one are the same
		// config (omitempty), not the same Go value.
		if out2, _ := json.Marshal(again); string(out2) != string(out) {
			t.Fatalf("a parsed config changes in a round trip:\n%s\n%s", out, out2)
		}
		if a, b := Unsupported(cfg), Unsupported(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("got unsupported %q after a round trip, want %q", b, a)
		}
	})
}
