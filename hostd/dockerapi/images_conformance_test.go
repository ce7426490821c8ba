package dockerapi_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// registryUsers are the htpasswd users of the scenario's auth registry.
var registryUsers = map[string]string{"alice": "s3cret"}

// imageScenario is the image commands both backends run: history,
// commit with -c changes, save and load (docker-archive, an OCI layout,
// hostile archives), login and push to Debian's docker-registry with
// htpasswd auth.
func imageScenario(ociTar []byte) []step {
	run := func(args ...string) []string { return append([]string{"run", "--rm", "--network", "none"}, args...) }
	return []step{
		{args: []string{"pull", "{reg}/busybox:latest"}, want: "exit 0"},
		{args: []string{"history", "-q", "{reg}/busybox"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"history", "nosuch"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"run", "--network", "none", "--name", "base", "{reg}/busybox", "sh", "-c", "echo committed > /f; rm /etc/group; mkdir -p /home/app/d"}, want: "exit 0"},
		{args: []string{"commit", "-a", "tester", "-m", "made by test", "-c", "ENV MODE=prod", "-c", `CMD ["cat", "/f"]`, "-c", "LABEL tier=web",
			"-c", "EXPOSE 8080", "-c", "WORKDIR /home", "base", "{auth}/team/app:1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: run("{auth}/team/app:1"), kind: words, want: "exit 0: committed"},
		{args: run("{auth}/team/app:1", "sh", "-c", `echo $MODE; pwd; test -e /etc/group || echo gone; test -d /home/app/d && echo dir`),
			kind: words, want: "exit 0: /home,dir,gone,prod"},
		{args: []string{"inspect", "-f", "{{.Author}} {{.Comment}} {{.Config.Labels.tier}} {{.Config.ExposedPorts}} {{.Config.WorkingDir}}", "{auth}/team/app:1"},
			kind: words, want: "exit 0: tester made by test web map[8080/tcp:{}] /home"},
		{args: []string{"history", "--format", "{{.Comment}}", "{auth}/team/app:1"}, kind: errText, want: "exit 0: made by test"},
		{args: []string{"history", "-q", "{auth}/team/app:1"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"commit", "-c", "RUN echo x", "base"}, kind: errText, want: "exit 1: run is not a valid change command"},
		{args: []string{"commit", "-c", "COPY a b", "base"}, kind: errText, want: "exit 1: copy is not a valid change command"},
		{args: []string{"commit", "nosuch"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"commit", "-c", "ONBUILD RUN echo x", "base", "{auth}/team/onbuild:1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.Config.OnBuild}}", "{auth}/team/onbuild:1"}, kind: words, want: "exit 0: [RUN echo x]"},
		{args: []string{"commit", "-c", "HEALTHCHECK --interval=5s --retries=2 CMD true", "base", "{auth}/team/health:1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Retries}}", "{auth}/team/health:1"},
			kind: words, want: "exit 0: [CMD-SHELL true] 5s 2"},
		{args: []string{"commit", "-c", "USER nobody", "-c", `VOLUME ["/data"]`, "base", "{auth}/team/misc:1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.Config.User}} {{.Config.Volumes}}", "{auth}/team/misc:1"}, kind: words, want: "exit 0: nobody map[/data:{}]"},
		{args: []string{"commit", "-c", "STOPSIGNAL SIGINT", "base"}, kind: errText, want: "exit 1: stopsignal is not a valid change command"},
		{args: []string{"commit", "-c", "MAINTAINER me", "base"}, kind: errText, want: "exit 1: maintainer is not a valid change command"},
		{args: []string{"commit", "-c", "ENV", "base"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"rm", "base"}, want: "exit 0"},
		// A directory removed and made again hides what the image had in
		// it (an opaque directory in the layer).
		{args: []string{"run", "--network", "none", "--name", "opq", "{auth}/team/app:1", "sh", "-c", "rm -rf /home/app && mkdir /home/app && touch /home/app/new"}, want: "exit 0"},
		{args: []string{"commit", "opq", "{auth}/team/app:2"}, kind: lines, want: "exit 0, 1 lines"},
		{args: run("{auth}/team/app:2", "ls", "/home/app"), kind: words, want: "exit 0: new"},
		{args: []string{"rm", "opq"}, want: "exit 0"},
		// A running container is committed (paused meanwhile) and keeps
		// running.
		{args: []string{"run", "-d", "--network", "none", "--name", "live", "{reg}/busybox", "sleep", "300"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"exec", "live", "sh", "-c", "echo live > /g"}, want: "exit 0"},
		{args: []string{"commit", "live", "{auth}/team/live:1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.State.Status}}", "live"}, kind: words, want: "exit 0: running"},
		{args: run("{auth}/team/live:1", "cat", "/g"), kind: words, want: "exit 0: live"},
		{args: []string{"rm", "-f", "live"}, kind: exitOnly, want: "exit 0"},

		// save and load: the archive brings the image back.
		{args: []string{"save", "-o", "{dir}/app.tar", "{auth}/team/app:1"}, want: "exit 0"},
		{args: []string{"save", "-o", "{dir}/nosuch.tar", "nosuch:1"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"rmi", "{auth}/team/app:1"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"load", "-i", "{dir}/app.tar"}, kind: errText, want: "exit 0: Loaded image: "},
		{args: run("{auth}/team/app:1"), kind: words, want: "exit 0: committed"},
		{args: []string{"image", "save", "{reg}/busybox", "-o", "{dir}/busybox.tar"}, want: "exit 0"},
		// Several images in one archive; a repository without a tag
		// saves all its tags.
		{args: []string{"save", "-o", "{dir}/two.tar", "{reg}/busybox:latest", "{auth}/team/app:1"}, want: "exit 0"},
		{args: []string{"save", "-o", "{dir}/repo.tar", "{auth}/team/app"}, want: "exit 0"},
		{args: []string{"rmi", "{auth}/team/app:1", "{auth}/team/app:2"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"load", "-i", "{dir}/repo.tar"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"images", "--format", "{{.Tag}}", "{auth}/team/app"}, kind: words, want: "exit 0: 1,2"},
		{args: []string{"load", "-i", "{dir}/two.tar"}, kind: lines, want: "exit 0, 2 lines"},
		// Hostile archives: a layer.tar symlinked to a host file, a layer
		// whose content does not match the config.
		{args: []string{"load", "-i", "{dir}/link.tar"}, kind: errText, want: "exit 1: ",
			hostd: `exit 1: entry "l/layer.tar"`, before: writeFile("link.tar", hostileArchive("link"))},
		{args: []string{"load", "-i", "{dir}/mismatch.tar"}, kind: errText, want: "exit 1: ",
			hostd: `exit 1: layer "l/layer.tar"`, before: writeFile("mismatch.tar", hostileArchive("mismatch"))},
		{args: []string{"images", "-q", "-f", "reference=evil"}, kind: lines, want: "exit 0, 0 lines"},
		// An OCI image layout: hostd loads it (the air-gapped way in);
		// dockerd 20.10 knows docker-archives only.
		{args: []string{"load", "-i", "{dir}/oci.tar"}, kind: errText, want: "exit 0: Loaded image: registry.example/oci:1",
			dockerd: "exit 1: ", before: writeFile("oci.tar", ociTar)},

		// login and push to the htpasswd registry.
		{args: []string{"login", "-u", "alice", "-p", "wrong", "{auth}"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"push", "{auth}/team/app:1"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"login", "-u", "alice", "-p", "s3cret", "{auth}"}, kind: errText, want: "exit 0: Login Succeeded"},
		{args: []string{"push", "{auth}/team/app:1"}, kind: errText, want: "exit 0: 1: digest: sha256:"},
		{args: []string{"push", "{auth}/team/nosuch:1"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"push", "-a", "{auth}/team/app"}, kind: errText, want: "exit 0: 2: digest: sha256:"},
		{args: []string{"rmi", "{auth}/team/app:1"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"pull", "{auth}/team/app:1"}, want: "exit 0"},
		{args: run("{auth}/team/app:1"), kind: words, want: "exit 0: committed"},
		{args: []string{"logout", "{auth}"}, want: "exit 0"},
		{args: []string{"rmi", "{auth}/team/app:1"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"pull", "{auth}/team/app:1"}, kind: exitOnly, want: "exit 1"},
	}
}

// writeFile writes content as name in the backend's {dir}.
func writeFile(name string, content []byte) func(t *testing.T, b backend) {
	return func(t *testing.T, b backend) {
		if err := os.WriteFile(filepath.Join(b.dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostileArchive is a docker-archive of one image "evil:1" whose
// layer.tar is a symlink to the host's /etc/passwd ("link"), or a tar
// whose digest is not the config's diff_id ("mismatch").
func hostileArchive(kind string) []byte {
	var layerBuf bytes.Buffer
	lw := tar.NewWriter(&layerBuf)
	lw.WriteHeader(&tar.Header{Name: "evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	lw.Write([]byte("evil"))
	lw.Close()
	diffID := "sha256:" + strings.Repeat("ab", 32)
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["` + diffID + `"]}}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(n string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	file("cfg.json", cfg)
	file("manifest.json", []byte(`[{"Config":"cfg.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]`))
	if kind == "link" {
		tw.WriteHeader(&tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	} else {
		file("l/layer.tar", layerBuf.Bytes())
	}
	tw.Close()
	return buf.Bytes()
}

// ociLayoutTar is an OCI image layout holding img as registry.example/oci:1.
func ociLayoutTar(t *testing.T, img v1.Image) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": "registry.example/oci:1", "org.opencontainers.image.ref.name": "1",
	})); err != nil {
		t.Fatal(err)
	}
	return testimg.TarDir(t, dir)
}

// TestDockerImageConformance runs the image scenario through the docker
// CLI against hostd and Debian's dockerd 20.10, then moves images between
// them: docker save on one, docker load on the other, and the image runs.
func TestDockerImageConformance(t *testing.T) {
	testimg.RequireHost(t)
	for _, bin := range []string{"docker", "dockerd", "nsenter", "ip", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needs %s (apt-get install docker.io docker-registry): %v", bin, err)
		}
	}
	img := linuxImage(t, v1.Config{Cmd: []string{"sh"}})
	authHost := testimg.DistributionRegistry(t, testimg.RegistryOptions{Users: registryUsers})
	h := startHostd(t, authHost)
	h.auth, h.dir = authHost, t.TempDir()
	d := startDockerd(t)
	d.auth, d.dir = testimg.DistributionRegistry(t, testimg.RegistryOptions{Users: registryUsers, Netns: d.netns}), t.TempDir()
	backends := []backend{h, d}
	for _, b := range backends {
		testimg.Push(t, b.push+"/busybox:latest", img)
	}
	runScenario(t, backends, imageScenario(ociLayoutTar(t, linuxImage(t, v1.Config{Cmd: []string{"echo", "from oci"}}))))

	// Across: each backend's save of busybox loads into the other and
	// runs there.
	for _, c := range []struct {
		from, to backend
		file     string
		ref      string
		cmd      []string
		want     string
	}{
		{h, d, "busybox.tar", h.reg + "/busybox", []string{"echo", "across"}, "across"},
		{d, h, "busybox.tar", d.reg + "/busybox", []string{"echo", "across"}, "across"},
		{h, d, "app.tar", h.auth + "/team/app:1", nil, "committed"},
		{d, h, "app.tar", d.auth + "/team/app:1", nil, "committed"},
	} {
		tarPath := filepath.Join(c.from.dir, c.file)
		if out, code := c.to.docker(t, "load", "-i", tarPath); code != 0 {
			t.Errorf("%s's docker save of %s loaded into %s: exit %d\n%s", c.from.name, c.ref, c.to.name, code, out)
			continue
		}
		ref := c.ref
		if out, code := c.to.docker(t, append([]string{"run", "--rm", "--network", "none", ref}, c.cmd...)...); code != 0 || strings.TrimSpace(out) != c.want {
			t.Errorf("%s's image %s on %s: exit %d, %q, want exit 0, %s", c.from.name, ref, c.to.name, code, out, c.want)
		}
		// The image keeps its ID: the config the archive names.
		toID, _ := c.to.docker(t, "inspect", "-f", "{{.Id}}", ref)
		if want := archiveConfig(t, tarPath); strings.TrimSpace(toID) != want {
			t.Errorf("%s's %s on %s: ID %s, want the archive's %s", c.from.name, ref, c.to.name, toID, want)
		}
	}
}

// archiveConfig is the image ID a single-image docker-archive names: its
// manifest.json's config file, sha256:<hex>.json.
func archiveConfig(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no manifest.json: %v", path, err)
		}
		if hdr.Name != "manifest.json" {
			continue
		}
		var ms []struct{ Config string }
		if err := json.NewDecoder(tr).Decode(&ms); err != nil || len(ms) != 1 {
			t.Fatalf("%s: manifest.json: %v, %d images", path, err, len(ms))
		}
		return "sha256:" + strings.TrimSuffix(filepath.Base(ms[0].Config), ".json")
	}
}
