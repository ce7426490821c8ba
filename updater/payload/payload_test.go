package payload

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func goodManifest() *Manifest {
	return &Manifest{
		Format: FormatVersion, Name: "default", Version: "1.2.0", MinFromVersion: "1.0.0",
		KernelVersion: "6.1.0-40-amd64", KernelArgs: []string{"console=ttyS0,115200", "panic=10"},
		RootHash: sha, VeritySalt: "00ff",
		Parts: map[string]Part{
			PartUsr: {"usr.erofs", 4096, sha}, PartVerity: {"usr.verity", 8192, sha},
			PartKernel: {"vmlinuz", 10, sha}, PartInitrd: {"initrd.img", 11, sha},
		},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	b, err := goodManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "1.2.0" || m.Parts[PartUsr].Size != 4096 {
		t.Errorf("got %+v", m)
	}
}

// TestManifestValidateReportsEverything breaks several fields at once and
// wants each named with its path.
func TestManifestValidateReportsEverything(t *testing.T) {
	m := goodManifest()
	m.Version = "../x"
	m.RootHash = "zz"
	delete(m.Parts, PartKernel)
	m.Parts[PartUsr] = Part{File: "../etc/passwd", Size: 0, SHA256: "x"}
	m.KernelArgs = append(m.KernelArgs, "a b")
	err := m.Validate()
	if !errors.Is(err, ErrInvalidManifest) {
		t.Fatalf("got %v, want ErrInvalidManifest", err)
	}
	for _, want := range []string{"version:", "rootHash:", "parts.kernel: missing", "parts.usr.file:", "parts.usr.size:", "parts.usr.sha256:", "kernelArgs[2]:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
}

func TestParseRefusesUnknownFields(t *testing.T) {
	b, _ := goodManifest().Marshal()
	b = bytes.Replace(b, []byte(`"format": 1,`), []byte(`"format": 1, "surprise": true,`), 1)
	if _, err := Parse(b); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("got %v, want ErrInvalidManifest", err)
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, err := GenerateKey(rand.Reader, "test key")
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if pk.Comment != "test key" {
		t.Errorf("got comment %q, want %q", pk.Comment, "test key")
	}
	otherPub, otherPriv, _ := GenerateKey(rand.Reader, "")
	other, _ := ParsePublicKey(otherPub)
	otherSK, _ := ParsePrivateKey(otherPriv)
	msg, _ := goodManifest().Marshal()
	sig := Sign(msg, sk)
	tampered := bytes.Replace(msg, []byte("1.2.0"), []byte("1.2.1"), 1)
	cases := []struct {
		name string
		msg  []byte
		sig  []byte
		keys []PublicKey
		want error
	}{
		{"good", msg, sig, []PublicKey{pk}, nil},
		{"good among several keys", msg, sig, []PublicKey{other, pk}, nil},
		{"second signature line verifies", msg, append(Sign(msg, otherSK), sig...), []PublicKey{pk}, nil},
		{"tampered manifest", tampered, sig, []PublicKey{pk}, ErrBadSignature},
		{"untrusted signer", msg, sig, []PublicKey{other}, ErrBadSignature},
		{"empty signature file", msg, nil, []PublicKey{pk}, ErrMissingSignature},
		{"garbage signature file", msg, []byte("hello\n"), []PublicKey{pk}, ErrMissingSignature},
		{"malformed signature", msg, []byte(SigPrefix + " abcd !!!\n"), []PublicKey{pk}, ErrBadSignature},
		{"no trusted keys", msg, sig, nil, ErrNoTrustedKeys},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.msg, c.sig, c.keys)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestLoadPublicKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadPublicKeys(dir); !errors.Is(err, ErrNoTrustedKeys) {
		t.Errorf("empty dir: got %v, want ErrNoTrustedKeys", err)
	}
	pub, _, _ := GenerateKey(rand.Reader, "a")
	os.WriteFile(filepath.Join(dir, "a.pub"), pub, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	keys, err := LoadPublicKeys(dir)
	if err != nil || len(keys) != 1 {
		t.Fatalf("got %v, %v, want one key", keys, err)
	}
	os.WriteFile(filepath.Join(dir, "b.pub"), []byte("ssh-ed25519 AAAA"), 0o644)
	if _, err := LoadPublicKeys(dir); !errors.Is(err, ErrBadKey) && !strings.Contains(err.Error(), "b.pub") {
		t.Errorf("got %v, want an error naming b.pub", err)
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0.0", "1.0.1", -1},
		{"1.10.0", "1.9.0", 1},
		{"2026.11.23", "2026.11.3", 1},
		{"1.0", "1.0.0", -1},
		{"1.0.0-rc1", "1.0.0", -1},
		{"1.0.0-rc.2", "1.0.0-rc.10", -1},
		{"1.0.0+build5", "1.0.0", 0},
		{"1.a", "1.2", 1},
	}
	for _, c := range cases {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q): got %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q): got %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := goodManifest().Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"parts":{"usr":{"file":"../x"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must be safe to use as paths and must re-encode
		// into something that parses again.
		for n, p := range m.Parts {
			if strings.Contains(p.File, "/") || strings.HasPrefix(p.File, ".") {
				t.Errorf("part %s file %q accepted", n, p.File)
			}
		}
		if strings.Contains(m.Version, "/") {
			t.Errorf("version %q accepted", m.Version)
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Errorf("re-encoded manifest does not parse: %v", err)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	pub, _, _ := GenerateKey(rand.Reader, "x")
	f.Add(pub)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePublicKey(b)
		if err == nil && len(k.Key) != 32 {
			t.Errorf("accepted key of %d bytes", len(k.Key))
		}
	})
}

// FuzzVerify feeds arbitrary signature files: nothing but a real signature
// by the trusted key may pass.
func FuzzVerify(f *testing.F) {
	pub, priv, _ := GenerateKey(rand.Reader, "")
	pk, _ := ParsePublicKey(pub)
	sk, _ := ParsePrivateKey(priv)
	msg := []byte("manifest")
	f.Add(Sign(msg, sk))
	f.Add([]byte(SigPrefix + " x y\n"))
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := Verify([]byte("other manifest"), sig, []PublicKey{pk}); err == nil {
			t.Error("a signature verified a message nobody signed")
		}
	})
}

// TestBootChainOptional: a manifest from before boot chain updates has no
// chain and still parses; a complete chain parses with a version that
// follows its files; a chain missing a file is refused by name.
func TestBootChainOptional(t *testing.T) {
	old := goodManifest()
	b, _ := old.Marshal()
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("manifest without a boot chain: %v", err)
	}
	if _, ok := m.BootChain(); ok || m.BootChainVersion() != "" {
		t.Errorf("a manifest without chain parts has a chain: version %q", m.BootChainVersion())
	}
	withChain := goodManifest()
	for i, f := range bootabi.ChainFiles {
		withChain.Parts[bootabi.ChainPart(f.Name)] = Part{File: bootabi.ChainPart(f.Name), Size: int64(100 + i), SHA256: sha}
	}
	b, _ = withChain.Marshal()
	if m, err = Parse(b); err != nil {
		t.Fatalf("manifest with a boot chain: %v", err)
	}
	v := m.BootChainVersion()
	if len(v) != 16 {
		t.Errorf("got chain version %q, want 16 hex digits", v)
	}
	changed := strings.Replace(sha, "0", "f", 1)
	m.Parts[bootabi.ChainPart(bootabi.ChainGrubEFI)] = Part{File: bootabi.ChainPart(bootabi.ChainGrubEFI), Size: 100, SHA256: changed}
	if m.BootChainVersion() == v {
		t.Error("a changed grubx64.efi left the chain version as it was")
	}
	delete(m.Parts, bootabi.ChainPart(bootabi.ChainShim))
	if err := m.Validate(); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), "parts.bootchain.shimx64.efi: missing") {
		t.Errorf("got %v, want the missing shim named", err)
	}
}
