package bootcfg

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
)

// render writes a state the way it lands in the GRUB environment block.
func render(st State) string {
	b, err := grubenv.Encode(st.Env(grubenv.Env{}), 256)
	if err != nil {
		panic(err)
	}
	return strings.TrimRight(string(b), "#")
}

// TestLifecycleGolden walks an upgrade, a good boot, a failed trial and a
// rollback, and compares every GRUB environment with the golden transcript.
func TestLifecycleGolden(t *testing.T) {
	var out strings.Builder
	step := func(name string, st State) {
		fmt.Fprintf(&out, "== %s\n%s", name, render(st))
	}
	st := FromEnv(grubenv.Env{})
	step("shipped", st)
	st, err := SetNext(st, SlotB, DefaultTries)
	if err != nil {
		t.Fatal(err)
	}
	step("upgrade to b", st)
	st, o := Bless(st, SlotB)
	if o != Blessed {
		t.Fatalf("got %s, want blessed", o)
	}
	step("b blessed", st)
	st, _ = SetNext(st, SlotA, DefaultTries)
	st.TriesLeft = 0 // grub.cfg counted three failed tries down
	step("a tried 3 times", st)
	st, o = Bless(st, SlotB)
	if o != TrialFailed {
		t.Fatalf("got %s, want trial-failed", o)
	}
	step("b boots again, trial cleared", st)
	st = Rollback(st, SlotA)
	step("rollback to a", st)
	golden.Assert(t, "lifecycle.txt", []byte(out.String()))
}

func TestFromEnvDefaults(t *testing.T) {
	cases := []struct {
		name string
		env  grubenv.Env
		want State
	}{
		{"empty", grubenv.Env{}, State{Default: SlotA}},
		{"garbage", grubenv.Env{VarDefault: "c", VarTry: "x", VarTries: "7"}, State{Default: SlotA}},
		{"trial", grubenv.Env{VarDefault: "b", VarTry: "a", VarTries: "2"}, State{Default: SlotB, Try: SlotA, TriesLeft: 2}},
		{"bad counter", grubenv.Env{VarDefault: "a", VarTry: "b", VarTries: "-1"}, State{Default: SlotA, Try: SlotB}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FromEnv(c.env); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSetNextRefusesDefault(t *testing.T) {
	if _, err := SetNext(State{Default: SlotA}, SlotA, 3); err == nil {
		t.Error("got nil error, want refusal to try the default slot")
	}
	if _, err := SetNext(State{Default: SlotA}, SlotB, 0); err == nil {
		t.Error("got nil error, want refusal of 0 tries")
	}
}

func TestBlessOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		st     State
		booted Slot
		want   Outcome
		after  State
	}{
		{"good default", State{Default: SlotA}, SlotA, AlreadyGood, State{Default: SlotA}},
		{"trial passes", State{Default: SlotA, Try: SlotB, TriesLeft: 2}, SlotB, Blessed, State{Default: SlotB}},
		{"trial spent", State{Default: SlotA, Try: SlotB}, SlotA, TrialFailed, State{Default: SlotA}},
		{"manual pick of default mid-trial", State{Default: SlotA, Try: SlotB, TriesLeft: 2}, SlotA, TrialPending, State{Default: SlotA, Try: SlotB, TriesLeft: 2}},
		{"manual pick of other", State{Default: SlotA}, SlotB, Blessed, State{Default: SlotB}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			after, o := Bless(c.st, c.booted)
			if o != c.want || after != c.after {
				t.Errorf("got %s %+v, want %s %+v", o, after, c.want, c.after)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	st := State{Default: SlotA, Try: SlotB, TriesLeft: 2}
	if got := Describe(st, SlotB, SlotA, true, false); got != StatePending {
		t.Errorf("got %s, want pending", got)
	}
	if got := Describe(State{Default: SlotA, Try: SlotB}, SlotB, SlotA, true, false); got != StateBad {
		t.Errorf("got %s, want bad", got)
	}
	if got := Describe(st, SlotB, SlotA, false, false); got != StateEmpty {
		t.Errorf("got %s, want empty", got)
	}
	if got := Describe(State{Default: SlotA}, SlotA, SlotA, true, false); got != StateBooted {
		t.Errorf("got %s, want booted", got)
	}
}
