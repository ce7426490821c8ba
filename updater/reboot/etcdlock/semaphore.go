package etcdlock

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// KeyPrefix is locksmith's: a fleet mixing Container Linux/Flatcar and
// Bulkhead hosts shares one semaphore per group, and locksmithctl can
// inspect it.
const KeyPrefix = "coreos.com/updateengine/rebootlock"

var (
	// ErrExist: the holder already holds a slot (locks are recursive, so
	// PreReboot treats it as success).
	ErrExist = errors.New("holder exists")
	// ErrNotExist: the holder holds no slot.
	ErrNotExist = errors.New("holder does not exist")
	// ErrFull: every slot is taken.
	ErrFull = errors.New("semaphore is full")
)

// Key is the etcd key of group's semaphore, as locksmith names it: the
// default (empty) group at KeyPrefix/semaphore, others path-escaped under
// KeyPrefix/groups/.
func Key(group string) string {
	if group == "" {
		return KeyPrefix + "/semaphore"
	}
	return KeyPrefix + "/groups/" + url.PathEscape(group) + "/semaphore"
}

// Semaphore is the document stored at Key. Semaphore counts free slots;
// Holders is sorted. The JSON field names are locksmith's.
type Semaphore struct {
	Semaphore int      `json:"semaphore"`
	Max       int      `json:"max"`
	Holders   []string `json:"holders"`
}

// NewSemaphore is a fresh semaphore with max free slots.
func NewSemaphore(max int) Semaphore {
	return Semaphore{Semaphore: max, Max: max, Holders: []string{}}
}

// Lock takes a slot for id.
func (s *Semaphore) Lock(id string) error {
	i, found := slices.BinarySearch(s.Holders, id)
	if found {
		return ErrExist
	}
	if s.Semaphore <= 0 {
		return fmt.Errorf("%w: %d of %d slots free", ErrFull, s.Semaphore, s.Max)
	}
	s.Holders = slices.Insert(s.Holders, i, id)
	s.Semaphore--
	return nil
}

// Unlock gives back id's slot.
func (s *Semaphore) Unlock(id string) error {
	i, found := slices.BinarySearch(s.Holders, id)
	if !found {
		return ErrNotExist
	}
	s.Holders = slices.Delete(s.Holders, i, i+1)
	s.Semaphore++
	return nil
}

// SetMax changes the number of slots and keeps the holders: lowering it
// below the number of holders leaves Semaphore negative until enough of
// them unlock, as in locksmith.
func (s *Semaphore) SetMax(max int) {
	s.Semaphore += max - s.Max
	s.Max = max
}
