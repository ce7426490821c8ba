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
	v := SlotFacts{HoldsVersion: true}
	for _, c := range []struct {
		name   string
		st     State
		slot   Slot
		booted Slot
		facts  SlotFacts
		want   SlotState
	}{
		{"on trial", st, SlotB, SlotA, v, StatePending},
		{"trial spent", State{Default: SlotA, Try: SlotB}, SlotB, SlotA, v, StateBad},
		{"empty", st, SlotB, SlotA, SlotFacts{}, StateEmpty},
		{"booted", State{Default: SlotA}, SlotA, SlotA, v, StateBooted},
		{"recorded bad", State{Default: SlotA}, SlotB, SlotA, SlotFacts{HoldsVersion: true, Bad: true}, StateBad},
		{"default, booted by hand", State{Default: SlotA}, SlotA, SlotB, v, StateGood},
		{"previous, blessed", State{Default: SlotA}, SlotB, SlotA, SlotFacts{HoldsVersion: true, Blessed: true}, StateGood},
		// A cancelled trial: it holds a version that never proved itself.
		{"never booted", State{Default: SlotA}, SlotB, SlotA, v, StateUnproven},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Describe(c.st, c.slot, c.booted, c.facts); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}
