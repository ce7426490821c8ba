package dockerapi_test

import (
	"archive/tar"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// TestArchivePutRefusesEscapes sends docker cp tars no docker CLI makes:
// entries climbing out with "..", absolute names, and a link followed by
// a file through it. Each is refused with a 400, and nothing lands on
// the host.
func TestArchivePutRefusesEscapes(t *testing.T) {
	testimg.RequireHost(t)
	b := startHostd(t)
	testimg.Push(t, b.push+"/busybox:latest", linuxImage(t, v1.Config{Cmd: []string{"sh"}}))
	for _, args := range [][]string{
		{"pull", b.reg + "/busybox:latest"},
		{"create", "--network", "none", "--name", "put", b.reg + "/busybox:latest", "true"},
	} {
		if out, code := b.docker(t, args...); code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, code, out)
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", b.sock)
	}}}
	hostDir := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dotdot", []tar.Header{{Name: "../../../../../../.." + hostDir + "/dotdot", Typeflag: tar.TypeReg}}},
		{"absolute", []tar.Header{{Name: hostDir + "/absolute", Typeflag: tar.TypeReg}}},
		{"through a link", []tar.Header{
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: hostDir},
			{Name: "l/through", Typeflag: tar.TypeReg},
		}},
		{"whiteout", []tar.Header{{Name: ".wh.etc", Typeflag: tar.TypeReg}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tc.entries {
				h.Mode = 0o644
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			req, _ := http.NewRequest(http.MethodPut, "http://docker/containers/put/archive?path=/tmp", &buf)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("PUT archive: got status %d, want 400", resp.StatusCode)
			}
			ents, _ := os.ReadDir(hostDir)
			for _, e := range ents {
				t.Errorf("a docker cp tar wrote the host's %s/%s", hostDir, e.Name())
			}
		})
	}
	if out, code := b.docker(t, "cp", "put:/etc", "-"); code != 0 || !strings.Contains(out, "passwd") {
		t.Errorf("docker cp put:/etc after the refused copies: exit %d", code)
	}
}
