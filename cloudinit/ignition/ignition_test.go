package ignition

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/internal/testtree"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// TestApply applies every config under testdata/configs to an empty root
// and compares the commands run, the report and the resulting tree.
func TestApply(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fetched" || r.Header.Get("X-Test") != "yes" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "from http\n")
	}))
	defer srv.Close()
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
			cfg, warnings, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
			os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
			rec := &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
				testtree.FakeShadow(root, c.Name, c.Args)
				return nil, nil
			}}
			res := Applier{Root: fsroot.Root(root), Runner: rec, HTTP: srv.Client()}.Apply(context.Background(), cfg)
			var b strings.Builder
			fmt.Fprintf(&b, "## warnings\n%s\n## errors\n%s\n## unsupported\n%s\n## commands\n%s## tree\n%s",
				strings.Join(warnings, "\n"), strings.Join(res.Errors, "\n"), strings.Join(res.Unsupported, "\n"),
				rec.Transcript(), testtree.Dump(root, "/etc/passwd", "/etc/group"))
			golden.Assert(t, "out/"+name+".txt", []byte(strings.ReplaceAll(b.String(), srv.URL, "SERVER")))
		})
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

func FuzzParse(f *testing.F) {
	configs, _ := filepath.Glob("testdata/configs/*.json")
	for _, c := range configs {
		data, _ := os.ReadFile(c)
		f.Add(data)
	}
	f.Add([]byte(`{"ignition":{"version":"3.0.0"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse(data)
	})
}
