package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

const dpkgStatus = `Package: bsdutils
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+deb12u3
Description: basic utilities from 4.4BSD-Lite
 This package contains the bare minimum of BSD utilities.
 .
 Version: not a field

Package: adduser
Status: install ok installed
Architecture: all
Version: 3.134

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
`

// The lock lists installed packages only, sorted, and hashes the .deb
// apt keeps under its escaped name; a missing .deb is an error naming it.
func TestTreePackages(t *testing.T) {
	tree, debs := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "var/lib/dpkg/status"), []byte(dpkgStatus), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(debs, "adduser_3.134_all.deb"), []byte("adduser"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := treePackages(tree, debs)
	if err == nil || !strings.Contains(err.Error(), "bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb") {
		t.Fatalf("got %v, want the missing .deb named", err)
	}
	if err := os.WriteFile(filepath.Join(debs, "bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb"), []byte("bsdutils"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := treePackages(tree, debs)
	if err != nil {
		t.Fatal(err)
	}
	want := []manifest.Package{
		{Name: "adduser", Version: "3.134", Architecture: "all", SHA256: sha256Hex([]byte("adduser"))},
		{Name: "bsdutils", Version: "1:2.38.1-5+deb12u3", Architecture: "amd64", SHA256: sha256Hex([]byte("bsdutils"))},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestDiffPackages(t *testing.T) {
	lock := []manifest.Package{
		{Name: "a", Version: "1", Architecture: "amd64", SHA256: "11"},
		{Name: "b", Version: "1", Architecture: "amd64", SHA256: "22"},
		{Name: "c", Version: "1", Architecture: "all", SHA256: "33"},
	}
	tree := []manifest.Package{
		{Name: "a", Version: "1", Architecture: "amd64", SHA256: "11"},
		{Name: "b", Version: "1", Architecture: "amd64", SHA256: "99"},
		{Name: "d", Version: "2", Architecture: "amd64", SHA256: "44"},
	}
	want := []string{
		"b:amd64 1: .deb sha256 lock 22, tree 99",
		"c:all 1: in the lock, not in the tree",
		"d:amd64 2: in the tree, not in the lock",
	}
	if got := DiffPackages(lock, tree); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := DiffPackages(lock, lock); len(got) != 0 {
		t.Errorf("a lock differs from itself: %q", got)
	}
}

// --locked takes a manifest.json or the output directory holding one, and
// refuses one without packages.
func TestReadLock(t *testing.T) {
	dir := t.TempDir()
	m := &manifest.Build{Name: "default", Packages: []manifest.Package{{Name: "a", Version: "1", Architecture: "all", SHA256: "11"}}}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, manifest.ManifestFile)} {
		if got, err := ReadLock(p); err != nil || !slices.Equal(got, m.Packages) {
			t.Errorf("ReadLock(%s) = %v, %v", p, got, err)
		}
	}
	if err := manifest.Write(dir, &manifest.Build{Name: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLock(dir); err == nil || !strings.Contains(err.Error(), "lists no packages") {
		t.Errorf("a manifest without packages: %v", err)
	}
}

// The SBOM is CycloneDX 1.5 JSON that the library reads back with every
// package (purl, hash) and binary, and the same bytes for the same build.
func TestSBOM(t *testing.T) {
	m := &manifest.Build{
		Name: "default", Version: "1.0.0", SourceDateEpoch: DefaultEpoch,
		Builder:  manifest.Tool{Version: "1.0.0", GoVersion: "go1.26.8"},
		Binaries: []manifest.Binary{{Name: "hostd", Tool: manifest.Tool{Version: "1.0.0", GoVersion: "go1.26.8"}, SHA256: "aa"}},
		Packages: []manifest.Package{{Name: "bsdutils", Version: "1:2.38.1-5+deb12u3", Architecture: "amd64", SHA256: "bb"}},
	}
	ids := IDs{Name: "default", Version: "1.0.0"}
	data, err := SBOM(m, "bookworm", ids)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := SBOM(m, "bookworm", ids)
	if !bytes.Equal(data, again) {
		t.Error("two SBOMs of one build differ")
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["bomFormat"] != "CycloneDX" || raw["specVersion"] != "1.5" {
		t.Errorf("bomFormat %v specVersion %v, want CycloneDX 1.5", raw["bomFormat"], raw["specVersion"])
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.Metadata == nil || bom.Metadata.Timestamp != "2026-01-01T00:00:00Z" || bom.Metadata.Component.Name != "default" {
		t.Errorf("metadata %+v", bom.Metadata)
	}
	if bom.Components == nil || len(*bom.Components) != 2 {
		t.Fatalf("components %+v, want hostd and bsdutils", bom.Components)
	}
	pkg := (*bom.Components)[1]
	if pkg.PackageURL != "pkg:deb/debian/bsdutils@1:2.38.1-5+deb12u3?arch=amd64&distro=debian-bookworm" ||
		pkg.Hashes == nil || (*pkg.Hashes)[0].Value != "bb" {
		t.Errorf("package component %+v", pkg)
	}
}

// The version make bin links in (-X .../hostd.Version=) is read from a
// binary's Go build information.
func TestLinkedVersion(t *testing.T) {
	info := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "-ldflags", Value: "-s -w -X github.com/bulkhead-os/bulkhead/hostd.Version=1.2.3"},
	}}
	if v := linkedVersion(info); v != "1.2.3" {
		t.Errorf("got %q, want 1.2.3", v)
	}
	info.Settings = nil
	if v := linkedVersion(info); v != "(devel)" {
		t.Errorf("without -X: got %q, want the module version", v)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if b := binaryInfo("self", data); b.GoVersion == "" || b.SHA256 != sha256Hex(data) {
		t.Errorf("a Go binary's info %+v", b)
	}
	if b := binaryInfo("script", []byte("#!/bin/sh\n")); b.GoVersion != "" || b.Version != "" {
		t.Errorf("a script's info %+v", b)
	}
}

// versionRunner answers `PATH --version` as cobra does.
type versionRunner string

func (v versionRunner) Run(_ context.Context, c run.Cmd) ([]byte, error) {
	if len(c.Args) != 1 || c.Args[0] != "--version" {
		return nil, fmt.Errorf("unexpected %s %v", c.Name, c.Args)
	}
	return []byte(string(v)), nil
}

// TestAskVersion: the manifest gets hostd's linked version from the binary
// itself, since a -trimpath build's information has no -ldflags.
func TestAskVersion(t *testing.T) {
	s := &buildState{b: &Builder{Runner: versionRunner("hostd version 1.4.2\n")}}
	if v := s.askVersion(context.Background(), "/bin/hostd", "(devel)"); v != "1.4.2" {
		t.Errorf("got %q, want 1.4.2", v)
	}
	s.b.Runner = versionRunner("Usage: hostd-shim ...\n")
	if v := s.askVersion(context.Background(), "/bin/hostd-shim", "(devel)"); v != "(devel)" {
		t.Errorf("got %q from a binary that printed no version, want the fallback", v)
	}
}
