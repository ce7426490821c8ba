package updater

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// PinFile holds the operator's pin: the version the periodic updater keeps
// the host on until `hostctl update unpin`.
const PinFile = "/var/lib/bulkhead/updater/pin.json"

// Pin is the operator's intent. `hostctl update pin VERSION` sets it, and so
// do a manual `hostctl upgrade --to VERSION` and `hostctl rollback` (a hold):
// otherwise the next periodic check would undo them within an interval.
// While it is set the periodic updater stages only Version, never the
// channel's version.
type Pin struct {
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	Time    time.Time `json:"time"`
}

// Hold records p as the pin (p.Time defaults to now).
func (u *Updater) Hold(p Pin) error {
	if p.Version == "" {
		return errors.New("pinning: no version given")
	}
	if p.Time.IsZero() {
		p.Time = u.now().UTC()
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding pin: %w", err)
	}
	if err := fsroot.WriteFile(u.Root.Join(PinFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pinning %s: %w", p.Version, err)
	}
	u.log().Info("update pin set", "version", p.Version, "reason", p.Reason)
	return nil
}

// Unpin removes the pin; it reports whether there was one.
func Unpin(root fsroot.Root) (bool, error) {
	err := os.Remove(root.Join(PinFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("unpinning: %w", err)
	}
	return true, nil
}

// ReadPin returns the pin, or nil when none is set.
func ReadPin(root fsroot.Root) (*Pin, error) {
	return readJSON[Pin](root, PinFile, "update pin")
}
