package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyChanges(t *testing.T) {
	cfg := v1.Config{Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/srv"}
	err := ApplyChanges(&cfg, []string{
		`ENV A=2 B="two words"`, "ENV LEGACY some value", `CMD ["echo", "hi"]`, "ENTRYPOINT /init --flag",
		`LABEL tier=web "quoted"="x"`, "EXPOSE 80 53/UDP", "USER app:app", "WORKDIR data",
		`VOLUME ["/v1", "/v2"]`, "VOLUME /v3", "ONBUILD RUN make", "HEALTHCHECK --interval=5s --retries=2 CMD [\"probe\", \"-q\"]",
		"# a comment\nUSER 1000",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "A=2", "B=two words", "LEGACY=some value"}; !slices.Equal(cfg.Env, want) {
		t.Errorf("Env: got %q, want %q", cfg.Env, want)
	}
	if !slices.Equal(cfg.Cmd, []string{"echo", "hi"}) || !slices.Equal(cfg.Entrypoint, []string{"/bin/sh", "-c", "/init --flag"}) {
		t.Errorf("Cmd %q, Entrypoint %q", cfg.Cmd, cfg.Entrypoint)
	}
	if cfg.Labels["tier"] != "web" {
		t.Errorf("Labels: got %v", cfg.Labels)
	}
	for _, p := range []string{"80/tcp", "53/udp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("ExposedPorts: got %v, want %s", cfg.ExposedPorts, p)
		}
	}
	for _, v := range []string{"/v1", "/v2", "/v3"} {
		if _, ok := cfg.Volumes[v]; !ok {
			t.Errorf("Volumes: got %v, want %s", cfg.Volumes, v)
		}
	}
	if cfg.User != "1000" || cfg.WorkingDir != "/srv/data" || !slices.Equal(cfg.OnBuild, []string{"RUN make"}) {
		t.Errorf("User %q, WorkingDir %q, OnBuild %q", cfg.User, cfg.WorkingDir, cfg.OnBuild)
	}
	if hc := cfg.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "probe", "-q"}) || hc.Interval != 5*time.Second || hc.Retries != 2 {
		t.Errorf("Healthcheck: got %+v", cfg.Healthcheck)
	}
	for _, bad := range []string{"RUN rm -rf /", "COPY a b", "FROM scratch", "STOPSIGNAL SIGINT", "ENV", "LABEL novalue", `ENV A="unterminated`,
		"ONBUILD FROM x", "HEALTHCHECK --interval=x CMD true", "HEALTHCHECK --bogus=1 CMD true", "HEALTHCHECK true"} {
		c := v1.Config{}
		if err := ApplyChanges(&c, []string{bad}); !errors.Is(err, ErrBadChange) {
			t.Errorf("%q: got %v, want ErrBadChange", bad, err)
		}
	}
	c := v1.Config{}
	if err := ApplyChanges(&c, []string{"RUN x"}); err == nil || !strings.Contains(err.Error(), "RUN is not a valid change command") {
		t.Errorf("RUN: got %v, want it refused by name", err)
	}
}

func TestCommitAddsLayerAndHistory(t *testing.T) {
	s, base, _ := pulled(t)
	var diff bytes.Buffer
	tw := tar.NewWriter(&diff)
	tw.WriteHeader(&tar.Header{Name: "etc/new", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("new"))
	tw.WriteHeader(&tar.Header{Name: "etc/.wh.motd", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	im, err := s.Commit(context.Background(), base.ID, &diff, CommitOptions{
		Ref: "example.com/team/committed:1", Author: "me", Comment: "why", CreatedBy: "sh -c x", Config: v1.Config{Cmd: []string{"true"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Layers) != len(base.Layers)+1 || !slices.Equal(im.Layers[:len(base.Layers)], base.Layers) {
		t.Fatalf("layers: got %q, want %q plus one", im.Layers, base.Layers)
	}
	if got := readLayerFile(t, s, im, "etc/new"); got != "new" {
		t.Errorf("etc/new: got %q", got)
	}
	if got, err := s.Get("example.com/team/committed:1"); err != nil || got.ID != im.ID {
		t.Errorf("by name: got %v, %v", got.ID, err)
	}
	hist, err := s.History(im)
	if err != nil {
		t.Fatal(err)
	}
	if hist[0].ID != im.ID || hist[0].Comment != "why" || hist[0].CreatedBy != "sh -c x" || hist[0].Size == 0 {
		t.Errorf("history top: got %+v", hist[0])
	}
	if _, err := s.v1Image(im); err != nil {
		t.Errorf("committed image cannot be pushed: %v", err)
	}
	if _, err := s.Commit(context.Background(), base.ID, &diff, CommitOptions{Ref: "Bad Name"}); err == nil {
		t.Errorf("commit to an invalid name succeeded")
	}
}
