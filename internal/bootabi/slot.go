package bootabi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/bulkhead-os/bulkhead/internal/grubenv"
)

// Slot names a /usr slot: its partitions are usr-<slot> and usr-<slot>-verity
// and its kernel lives in the ESP directory /<slot>.
type Slot string

const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Other returns the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// ErrBadSlot means a string names no slot.
var ErrBadSlot = errors.New("not a slot (want a or b)")

// ParseSlot accepts "a" or "b".
func ParseSlot(s string) (Slot, error) {
	switch Slot(s) {
	case SlotA, SlotB:
		return Slot(s), nil
	}
	return "", fmt.Errorf("%w: %q", ErrBadSlot, s)
}

// Variable names in the GRUB environment block. grub.cfg reads the same names.
const (
	VarDefault = "bulkhead_default"
	VarTry     = "bulkhead_try"
	VarTries   = "bulkhead_tries"
	// VarBoots counts the boots of the default slot since one was last
	// confirmed (hostctl verify-usr found its /usr sound): GRUB counts it
	// up, the check sets it to 0.
	VarBoots = "bulkhead_boots"
	// VarSpare is the slot GRUB moves the default to when the default has
	// restarted MaxBoots times running before its check: the other slot,
	// while it holds its blessed build; "" for none.
	VarSpare = "bulkhead_spare"
	// VarGaveUp is the slot GRUB moved away from that way, for the host
	// to record; the host clears it.
	VarGaveUp = "bulkhead_gave_up"
)

// MaxBoots is how many boots running of the default slot may end before
// its check (a damaged block on its boot path restarts the machine each
// time) before GRUB boots the spare slot instead.
const MaxBoots = 3

// DefaultTries is how many times a new slot is tried before GRUB falls back.
const DefaultTries = 3

// MaxTries is the highest counter grub.cfg's if-chain can count down
// (GRUB 2.06 has no arithmetic).
const MaxTries = 9

// State is the boot selection.
type State struct {
	Default   Slot // the known-good slot GRUB boots when no trial is on
	Try       Slot // "" or the slot on trial
	TriesLeft int  // tries left for Try; 0 means spent: GRUB boots Default
}

// FromEnv reads the state from a GRUB environment. Missing or unknown values
// read as the shipped state (slot A, nothing on trial), which is also what
// grub.cfg does with them.
func FromEnv(env grubenv.Env) State {
	st := State{Default: SlotA}
	if s, err := ParseSlot(env[VarDefault]); err == nil {
		st.Default = s
	}
	if s, err := ParseSlot(env[VarTry]); err == nil {
		st.Try = s
		if n, err := strconv.Atoi(env[VarTries]); err == nil && n >= 0 && n <= MaxTries {
			st.TriesLeft = n
		}
	}
	return st
}

// OnTrial tells whether slot s is on trial: the slot GRUB tries, not the
// default it falls back to.
func (st State) OnTrial(s Slot) bool { return st.Try == s && st.Default != s }

// Env renders the state into a copy of env, leaving other variables alone.
func (st State) Env(env grubenv.Env) grubenv.Env {
	out := grubenv.Env{}
	for k, v := range env {
		out[k] = v
	}
	out[VarDefault] = string(st.Default)
	out[VarTry] = string(st.Try)
	if st.Try == "" {
		out[VarTries] = ""
	} else {
		out[VarTries] = strconv.Itoa(st.TriesLeft)
	}
	return out
}
