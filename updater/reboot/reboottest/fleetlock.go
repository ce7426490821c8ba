package reboottest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
)

// FleetLock is a FleetLock server after Zincati's protocol document: a
// counting semaphore per group with recursive, owned locks. It is written
// from the document, not from our client, so the two check each other.
type FleetLock struct {
	URL string
	Max int // holders allowed per group

	mu      sync.Mutex
	holders map[string][]string // group -> sorted ids
	peak    int
}

var groupRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// StartFleetLock serves a FleetLock server on loopback until the test ends.
func StartFleetLock(tb testing.TB, maxHolders int) *FleetLock {
	f := &FleetLock{Max: maxHolders, holders: map[string][]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pre-reboot", func(w http.ResponseWriter, r *http.Request) { f.serve(w, r, true) })
	mux.HandleFunc("POST /v1/steady-state", func(w http.ResponseWriter, r *http.Request) { f.serve(w, r, false) })
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func fail(w http.ResponseWriter, code int, kind, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"kind": kind, "value": value})
}

func (f *FleetLock) serve(w http.ResponseWriter, r *http.Request, lock bool) {
	if r.Header.Get("fleet-lock-protocol") != "true" {
		fail(w, http.StatusBadRequest, "missing_fleetlock_header", "fleet-lock-protocol header must be true")
		return
	}
	var body struct {
		ClientParams *struct {
			ID    string `json:"id"`
			Group string `json:"group"`
		} `json:"client_params"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.ClientParams == nil {
		fail(w, http.StatusBadRequest, "failed_parsing_body", "body is not a FleetLock request")
		return
	}
	id, group := body.ClientParams.ID, body.ClientParams.Group
	if id == "" || !groupRE.MatchString(group) {
		fail(w, http.StatusBadRequest, "invalid_client_params", "id must be non-empty and group match ^[a-zA-Z0-9.-]+$")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.holders[group]
	i, held := slices.BinarySearch(hs, id)
	switch {
	case lock && held, !lock && !held:
		// Recursive: locking a held slot or unlocking a free one succeeds.
	case lock && len(hs) >= f.Max:
		fail(w, http.StatusConflict, "failed_lock_semaphore_full", "semaphore currently full, all slots are locked already")
		return
	case lock:
		f.holders[group] = slices.Insert(hs, i, id)
		f.peak = max(f.peak, len(f.holders[group]))
	default:
		f.holders[group] = slices.Delete(hs, i, i+1)
	}
	w.WriteHeader(http.StatusOK)
}

// Holders returns the ids holding a slot in group, sorted.
func (f *FleetLock) Holders(group string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.holders[group])
}

// Peak is the largest number of holders any group ever had at once.
func (f *FleetLock) Peak() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak
}
