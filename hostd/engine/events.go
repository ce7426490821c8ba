package engine

import (
	"strconv"
	"sync"
	"time"
)

// Event is a container lifecycle event, as docker events reports it
// (Engine API, "Monitor events": Type, Action, Actor, time).
type Event struct {
	Type       string // "container"
	Action     string // create, start, die, stop, destroy
	ID         string
	Attributes map[string]string // name, image, exitCode (die), the labels
	Time       time.Time
}

// eventKeep is how many past events the engine keeps for `since` (dockerd
// keeps 256 too, daemon/events).
const eventKeep = 256

// eventLog is the engine's in-memory event broadcaster: the last events,
// and the subscribers that get each new one.
type eventLog struct {
	mu   sync.Mutex
	past []Event
	subs map[chan Event]struct{}
}

// emit records c's action and hands it to every subscriber; a subscriber
// that does not keep up loses the event rather than stalling the engine.
func (e *Engine) emit(c Container, action string) {
	attrs := map[string]string{}
	for k, v := range c.Spec.Labels {
		attrs[k] = v
	}
	attrs["name"], attrs["image"] = c.Name, c.Spec.Image
	if action == "die" {
		attrs["exitCode"] = strconv.Itoa(c.ExitCode)
	}
	ev := Event{Type: "container", Action: action, ID: c.ID, Attributes: attrs, Time: time.Now()}
	l := &e.events
	l.mu.Lock()
	defer l.mu.Unlock()
	l.past = append(l.past, ev)
	if len(l.past) > eventKeep {
		l.past = append([]Event(nil), l.past[len(l.past)-eventKeep:]...)
	}
	for ch := range l.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// stopEvent emits stop for a container Stop ended, as dockerd does after
// its die; a container that was not running gets none.
func (e *Engine) stopEvent(err error, c Container) error {
	if err == nil && c.State == StateRunning {
		e.emit(c, "stop")
	}
	return err
}

// Events returns the kept events since the given time and a channel of
// the events after them, in order with no gap; cancel ends the
// subscription.
func (e *Engine) Events(since time.Time) (past []Event, ch <-chan Event, cancel func()) {
	l := &e.events
	c := make(chan Event, 64)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.past {
		if !ev.Time.Before(since) {
			past = append(past, ev)
		}
	}
	if l.subs == nil {
		l.subs = map[chan Event]struct{}{}
	}
	l.subs[c] = struct{}{}
	return past, c, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs, c)
	}
}
