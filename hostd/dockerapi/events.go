package dockerapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// eventJSON is an event as the Engine API streams it (events.Message).
type eventJSON struct {
	Status   string    `json:"status,omitempty"`
	ID       string    `json:"id,omitempty"`
	From     string    `json:"from,omitempty"`
	Type     string    `json:"Type"`
	Action   string    `json:"Action"`
	Actor    actorJSON `json:"Actor"`
	Scope    string    `json:"scope"`
	Time     int64     `json:"time"`
	TimeNano int64     `json:"timeNano"`
}

type actorJSON struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// eventFilters are the keys dockerd accepts for events. hostd emits
// container events only: a filter on another kind of object (network,
// volume, ...) matches none of them, as it would in dockerd.
var eventFilters = []string{"container", "event", "type", "image", "label", "scope",
	"daemon", "network", "volume", "plugin", "node", "service", "secret", "config"}

// parseEventTime reads since/until as the docker CLI sends them: Unix
// seconds with optional fraction (the CLI turns durations and dates into
// that).
func parseEventTime(key, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, badRequest("events: %s %q: not a Unix timestamp (seconds[.nanoseconds])", key, v)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, badRequest("events: %s %q: not a Unix timestamp (seconds[.nanoseconds])", key, v)
		}
	}
	return time.Unix(s, ns), nil
}

// eventMatches is dockerd's events filter: container by ID or name
// prefix, event and type exactly, image with or without its tag, labels
// as key or key=value; a key for objects hostd has no events of matches
// nothing.
func eventMatches(f filterArgs, ev engine.Event) bool {
	for _, k := range []string{"daemon", "network", "volume", "plugin", "node", "service", "secret", "config"} {
		if f.has(k) {
			return false
		}
	}
	if !f.exact("event", ev.Action) || !f.exact("type", ev.Type) || !f.exact("scope", "local") {
		return false
	}
	if f.has("container") && !prefixOf(f["container"], ev.ID, ev.Attributes["name"]) {
		return false
	}
	img := ev.Attributes["image"]
	if f.has("image") && !f.exact("image", img) && !f.exact("image", strings.TrimSuffix(img, ":latest")) {
		return false
	}
	return f.matchLabels("label", ev.Attributes)
}

func prefixOf(vals []string, sources ...string) bool {
	for _, v := range vals {
		for _, s := range sources {
			if strings.HasPrefix(s, v) {
				return true
			}
		}
	}
	return false
}

// events is GET /events (docker events): the kept events from since (when
// since or until is given), then new ones as they happen, until until or
// the client leaves.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err == nil {
		err = f.validate(eventFilters...)
	}
	since, err2 := parseEventTime("since", q.Get("since"))
	until, err3 := parseEventTime("until", q.Get("until"))
	for _, e := range []error{err, err2, err3} {
		if e != nil {
			apiError(w, e)
			return
		}
	}
	past, ch, cancel := a.E.Events(since)
	defer cancel()
	if since.IsZero() && until.IsZero() {
		past = nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(ev engine.Event) bool {
		if !until.IsZero() && ev.Time.After(until) {
			return false
		}
		if !eventMatches(f, ev) {
			return true
		}
		if err := enc.Encode(eventJSON{
			Status: ev.Action, ID: ev.ID, From: ev.Attributes["image"], Type: ev.Type, Action: ev.Action,
			Actor: actorJSON{ID: ev.ID, Attributes: ev.Attributes}, Scope: "local",
			Time: ev.Time.Unix(), TimeNano: ev.Time.UnixNano(),
		}); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for _, ev := range past {
		if !send(ev) {
			return
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	var end <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		end = t.C
	}
	for {
		select {
		case ev := <-ch:
			if !send(ev) {
				return
			}
		case <-end:
			return
		case <-r.Context().Done():
			return
		}
	}
}
