package grubenv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestEncodeGolden(t *testing.T) {
	b, err := Encode(Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "3", "odd": "x\\y\nz"}, Size)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != Size {
		t.Fatalf("got %d bytes, want %d", len(b), Size)
	}
	golden.Assert(t, "try-b.grubenv", b)
}

func TestRoundTrip(t *testing.T) {
	in := Env{"a": "1", "b": "", "c": "with=equals", "d": "back\\slash\nnewline"}
	b, err := Encode(in, Size)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		if out[k] != v {
			t.Errorf("%s: got %q, want %q", k, out[k], v)
		}
	}
	if len(out) != len(in) {
		t.Errorf("got %d variables, want %d", len(out), len(in))
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"no header":    "saved_entry=1\n",
		"no equals":    Header + "junk\n",
		"unterminated": Header + "a=1",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestEncodeTooBig(t *testing.T) {
	big := make([]byte, Size)
	for i := range big {
		big[i] = 'x'
	}
	if _, err := Encode(Env{"v": string(big)}, Size); err == nil {
		t.Error("got nil error, want a too-big error")
	}
}

func TestWriteInPlaceKeepsInode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grubenv")
	if err := Create(p, Env{"bulkhead_default": "a"}); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p)
	if err := WriteInPlace(p, Env{"bulkhead_default": "b", "bulkhead_try": ""}); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p)
	if !os.SameFile(st1, st2) || st2.Size() != Size {
		t.Errorf("file was replaced or resized: size %d", st2.Size())
	}
	env, err := Read(p)
	if err != nil || env["bulkhead_default"] != "b" {
		t.Errorf("got %v, %v, want bulkhead_default=b", env, err)
	}
}

func TestWriteInPlaceRefusesMoreThanOneSector(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grubenv")
	if err := Create(p, Env{}); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'v'
	}
	if err := WriteInPlace(p, Env{"x": string(long)}); err == nil {
		t.Error("got nil error, want refusal")
	}
	env, _ := Read(p)
	if _, ok := env["x"]; ok {
		t.Error("the refused write changed the file")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Header + "a=1\nb=2\n###"))
	f.Add([]byte(Header + "x=\\\\\\\n\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Encode(env, len(b)+4096)
		if err != nil {
			return // names that cannot be re-encoded
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of encoded env failed: %v", err)
		}
		for k, v := range env {
			if again[k] != v {
				t.Fatalf("%q: got %q, want %q", k, again[k], v)
			}
		}
	})
}
