package etcdlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ group, want string }{
		{"", "coreos.com/updateengine/rebootlock/semaphore"},
		{"database", "coreos.com/updateengine/rebootlock/groups/database/semaphore"},
		{"prod/database", "coreos.com/updateengine/rebootlock/groups/prod%2Fdatabase/semaphore"},
	} {
		if got := Key(tc.group); got != tc.want {
			t.Errorf("Key(%q): got %q, want %q", tc.group, got, tc.want)
		}
	}
}

// TestSemaphoreSteps walks a semaphore through locks, unlocks and resizes
// and compares each JSON document (as stored in etcd) with a golden file.
func TestSemaphoreSteps(t *testing.T) {
	var out strings.Builder
	s := NewSemaphore(2)
	step := func(op string, err error) {
		b, _ := json.Marshal(s)
		fmt.Fprintf(&out, "%-16s err=%v\n  %s\n", op, err, b)
	}
	step("new max=2", nil)
	step("lock b", s.Lock("b"))
	step("lock a", s.Lock("a"))
	step("lock c (full)", s.Lock("c"))
	step("lock a (again)", s.Lock("a"))
	step("unlock x", s.Unlock("x"))
	step("setmax 1", func() error { s.SetMax(1); return nil }())
	step("unlock b", s.Unlock("b"))
	step("lock c (full)", s.Lock("c"))
	step("unlock a", s.Unlock("a"))
	step("lock c", s.Lock("c"))
	step("setmax 3", func() error { s.SetMax(3); return nil }())
	golden.Assert(t, "semaphore-steps.txt", []byte(out.String()))
}

func TestSemaphoreErrors(t *testing.T) {
	s := NewSemaphore(1)
	if err := s.Lock("a"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"relock", s.Lock("a"), ErrExist},
		{"full", s.Lock("b"), ErrFull},
		{"unlock stranger", s.Unlock("b"), ErrNotExist},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if s.Semaphore != 0 || len(s.Holders) != 1 {
		t.Errorf("got %+v, want one holder and no free slot", s)
	}
}

// TestSemaphoreInvariant checks, over many random operations, that free
// slots plus holders always equal max and holders stay sorted and unique.
func TestSemaphoreInvariant(t *testing.T) {
	s := NewSemaphore(3)
	ids := []string{"a", "b", "c", "d", "e"}
	for i := range 1000 {
		id := ids[(i*7+i/3)%len(ids)]
		if i%2 == 0 {
			_ = s.Lock(id)
		} else {
			_ = s.Unlock(id)
		}
		if s.Semaphore+len(s.Holders) != s.Max {
			t.Fatalf("step %d: %+v breaks semaphore+holders == max", i, s)
		}
		for j := 1; j < len(s.Holders); j++ {
			if s.Holders[j-1] >= s.Holders[j] {
				t.Fatalf("step %d: holders %q not sorted and unique", i, s.Holders)
			}
		}
	}
}

func FuzzSemaphoreJSON(f *testing.F) {
	f.Add([]byte(`{"semaphore":1,"max":1,"holders":[]}`))
	f.Add([]byte(`{"semaphore":0,"max":1,"holders":["69d27b356a94476da859461d3a3bc6fd"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Semaphore
		if json.Unmarshal(data, &s) != nil {
			return
		}
		_ = s.Lock("x")
		_ = s.Unlock("x")
	})
}
