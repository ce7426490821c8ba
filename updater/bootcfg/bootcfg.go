package bootcfg

import (
	"errors"
	"fmt"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
)

// The slot names, the GRUB variables and the State they hold are the boot
// contract shared with the builder: they live in internal/bootabi, named here
// too so the updater reads as one package.
type (
	Slot  = bootabi.Slot
	State = bootabi.State
	Entry = bootabi.Entry
)

const (
	SlotA        = bootabi.SlotA
	SlotB        = bootabi.SlotB
	VarDefault   = bootabi.VarDefault
	VarTry       = bootabi.VarTry
	VarTries     = bootabi.VarTries
	VarBoots     = bootabi.VarBoots
	VarSpare     = bootabi.VarSpare
	VarGaveUp    = bootabi.VarGaveUp
	DefaultTries = bootabi.DefaultTries
	MaxTries     = bootabi.MaxTries
	MaxBoots     = bootabi.MaxBoots
	// VerityOptions: see bootabi.VerityOptions.
	VerityOptions = bootabi.VerityOptions
	ESPGrubDir    = bootabi.ESPGrubDir
	ESPGrubEnv    = bootabi.ESPGrubEnv
	// ESPGrubEnvBackup is ESPGrubEnv's copy (bootabi.ESPGrubEnvBackup).
	ESPGrubEnvBackup = bootabi.ESPGrubEnvBackup
	KernelFile       = bootabi.KernelFile
	InitrdFile       = bootabi.InitrdFile
	EntryFile        = bootabi.EntryFile
	ReleaseFile      = bootabi.ReleaseFile
)

// Errors callers decide on.
var (
	ErrBadSlot = bootabi.ErrBadSlot
	// ErrSlotEmpty means an operation needs a slot that holds no version.
	ErrSlotEmpty = errors.New("slot holds no version")
)

// ParseSlot accepts "a" or "b".
func ParseSlot(s string) (Slot, error) { return bootabi.ParseSlot(s) }

// FromEnv reads the state from a GRUB environment (bootabi.FromEnv).
func FromEnv(env grubenv.Env) State { return bootabi.FromEnv(env) }

// SlotDir is the ESP directory that holds a slot's kernel, initrd and entry.
func SlotDir(s Slot) string { return bootabi.SlotDir(s) }

// ParseRelease reads a release file into a map.
func ParseRelease(b []byte) map[string]string { return bootabi.ParseRelease(b) }

// SetNext puts slot on trial with tries attempts, keeping the default as the
// fallback. Setting the default slot itself on trial is an error: there would
// be nothing to fall back to.
func SetNext(st State, slot Slot, tries int) (State, error) {
	if slot == st.Default {
		return st, fmt.Errorf("setting slot %s on trial: it is the default slot", slot)
	}
	if tries < 1 || tries > MaxTries {
		return st, fmt.Errorf("setting slot %s on trial: tries %d out of range 1..%d", slot, tries, MaxTries)
	}
	return State{Default: st.Default, Try: slot, TriesLeft: tries}, nil
}

// Outcome says what Bless found.
type Outcome string

const (
	// Blessed: the booted slot was on trial and is now the default.
	Blessed Outcome = "blessed"
	// AlreadyGood: the booted slot was already the default; nothing changed.
	AlreadyGood Outcome = "already-good"
	// TrialFailed: a slot was on trial, its tries are spent and the default
	// booted instead; the trial is cleared and the slot should be marked bad.
	TrialFailed Outcome = "trial-failed"
	// TrialPending: a slot is on trial with tries left but the default booted
	// (by hand from the menu); nothing changed.
	TrialPending Outcome = "trial-pending"
)

// Bless records that booted passed its health checks.
func Bless(st State, booted Slot) (State, Outcome) {
	switch {
	case st.Try != "" && booted == st.Try:
		return State{Default: booted}, Blessed
	case st.Try != "" && st.TriesLeft == 0:
		return State{Default: st.Default}, TrialFailed
	case st.Try != "":
		return st, TrialPending
	case booted != st.Default:
		// Booted by hand from the menu without a trial: the operator chose it
		// and it is healthy, so it becomes the default.
		return State{Default: booted}, Blessed
	}
	return st, AlreadyGood
}

// Rollback makes to the default and cancels any trial.
func Rollback(st State, to Slot) State {
	return State{Default: to}
}

// CheckOutcome says what a failed check of the booted slot's /usr leads to.
type CheckOutcome string

const (
	// TrialAbandoned: the booted slot was on trial; the default boots next
	// and the trial is cancelled (the slot is not recorded bad: its
	// version did nothing wrong, the disk did; an upgrade rewrites it).
	TrialAbandoned CheckOutcome = "trial-abandoned"
	// SwitchedToOther: the other slot holds a blessed build and is the
	// default now.
	SwitchedToOther CheckOutcome = "switched-to-other"
	// NoGoodSlot: nothing better to boot; the selection is unchanged.
	NoGoodSlot CheckOutcome = "no-good-slot"
)

// UsrCorrupt decides the boot selection when the booted slot's /usr does
// not match its root hash. otherProven says whether the other slot holds
// the very build that was blessed in it.
func UsrCorrupt(st State, booted Slot, otherProven bool) (State, CheckOutcome) {
	switch {
	case st.OnTrial(booted):
		return State{Default: st.Default}, TrialAbandoned
	case otherProven:
		return State{Default: booted.Other()}, SwitchedToOther
	}
	return st, NoGoodSlot
}

// SlotState is what `hostctl status` shows for one slot.
type SlotState string

const (
	StateBooted  SlotState = "booted"
	StateGood    SlotState = "good"
	StatePending SlotState = "pending"
	StateBad     SlotState = "bad"
	StateEmpty   SlotState = "empty"
	// StateCorrupt: the slot's /usr failed its check against its root
	// hash (hostctl verify-usr); an upgrade rewrites it.
	StateCorrupt SlotState = "corrupt"
	// StateUnproven: the slot holds a version that never booted to a
	// blessing (a cancelled trial, or one whose tries are spent but not
	// yet recorded bad). It is not a safe default: GRUB's fallback is the
	// default itself.
	StateUnproven SlotState = "unproven"
)

// SlotFacts is what the host knows about a slot's contents beyond the boot
// selection.
type SlotFacts struct {
	HoldsVersion bool // a release file names a version
	Bad          bool // that version is recorded bad
	Blessed      bool // that very build (version and root hash) booted and was blessed
	Corrupt      bool // that very build failed its /usr check
}

// Describe tells the state of slot given the boot selection, the booted slot
// and the facts about its contents.
func Describe(st State, slot, booted Slot, f SlotFacts) SlotState {
	switch {
	case !f.HoldsVersion:
		return StateEmpty
	case slot == booted:
		return StateBooted
	case f.Corrupt:
		return StateCorrupt
	case st.Try == slot && st.TriesLeft > 0:
		return StatePending
	case f.Bad || st.Try == slot:
		return StateBad
	case slot == st.Default:
		// GRUB boots the default whatever happens: it was blessed when it
		// became the default (or is the factory slot).
		return StateGood
	case f.Blessed:
		// The previous version, kept for rollback.
		return StateGood
	}
	return StateUnproven
}
