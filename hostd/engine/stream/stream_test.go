package stream

import (
	"bytes"
	"fmt"
	"testing"
)

func TestMuxDemux(t *testing.T) {
	var buf bytes.Buffer
	m := NewMux(&buf)
	fmt.Fprint(m.Writer(Stdout), "out1")
	fmt.Fprint(m.Writer(Stderr), "err")
	fmt.Fprint(m.Writer(Stdout), "out2")
	want := []byte{1, 0, 0, 0, 0, 0, 0, 4, 'o', 'u', 't', '1'}
	if !bytes.HasPrefix(buf.Bytes(), want) {
		t.Errorf("got header %v, want %v (Docker's framing)", buf.Bytes()[:12], want)
	}
	var o, e bytes.Buffer
	if err := Demux(&buf, &o, &e); err != nil {
		t.Fatal(err)
	}
	if o.String() != "out1out2" || e.String() != "err" {
		t.Errorf("got %q and %q, want %q and %q", o.String(), e.String(), "out1out2", "err")
	}
}

func FuzzDemux(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 1, 'x'})
	f.Add([]byte{2, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		var o, e bytes.Buffer
		_ = Demux(bytes.NewReader(b), &o, &e)
		if o.Len()+e.Len() > len(b) {
			t.Fatalf("demuxed more than was read")
		}
	})
}
