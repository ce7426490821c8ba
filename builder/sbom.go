package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// SBOM renders the image's software bill of materials as CycloneDX 1.5
// JSON (github.com/CycloneDX/cyclonedx-go): the image as the described
// component, every Debian package (with a pkg:deb purl and its .deb's
// sha256) and our binaries as its components, the builder as the tool.
// Its serial number and timestamp come from the build's IDs and epoch, so
// the same inputs give the same bytes.
func SBOM(m *manifest.Build, suite string, ids IDs) ([]byte, error) {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + ids.UUID("sbom")
	image := cdx.Component{
		BOMRef: "image", Type: cdx.ComponentTypeOS, Name: m.Name, Version: m.Version,
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: time.Unix(m.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
		Component: &image,
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "bulkhead-builder", Version: m.Builder.Version,
			Properties: &[]cdx.Property{{Name: "go:version", Value: m.Builder.GoVersion}},
		}}},
	}
	var comps []cdx.Component
	for _, b := range m.Binaries {
		c := cdx.Component{
			BOMRef: "bin/" + b.Name, Type: cdx.ComponentTypeApplication, Name: b.Name, Version: b.Version,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: b.SHA256}},
		}
		if b.GoVersion != "" {
			c.Properties = &[]cdx.Property{{Name: "go:version", Value: b.GoVersion}}
		}
		comps = append(comps, c)
	}
	for _, p := range m.Packages {
		purl := debPURL(p, suite)
		comps = append(comps, cdx.Component{
			BOMRef: purl, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: purl,
			Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: p.SHA256}},
		})
	}
	bom.Components = &comps
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_5); err != nil {
		return nil, fmt.Errorf("encoding the SBOM: %w", err)
	}
	return buf.Bytes(), nil
}

// debPURL is a Debian package's package URL (purl-spec's deb type).
func debPURL(p manifest.Package, suite string) string {
	q := url.Values{"arch": {p.Architecture}}
	if suite != "" {
		q.Set("distro", "debian-"+suite)
	}
	return "pkg:deb/debian/" + url.PathEscape(p.Name) + "@" + url.PathEscape(p.Version) + "?" + q.Encode()
}

// writeSBOM writes the SBOM beside the manifest and records its hash.
func (s *buildState) writeSBOM(m *manifest.Build) error {
	data, err := SBOM(m, s.def.Debian.Suite, s.ids)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.path(manifest.SBOMFile), data, 0o644); err != nil {
		return fmt.Errorf("writing the SBOM: %w", err)
	}
	m.SBOM = manifest.Part{File: manifest.SBOMFile, Size: int64(len(data)), SHA256: sha256Hex(data)}
	return nil
}
