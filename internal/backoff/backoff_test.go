package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNextStaysInBoundsAndGrows(t *testing.T) {
	w := New(Policy{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond})
	caps := []time.Duration{100, 200, 400, 800, 800, 800}
	for i, c := range caps {
		c *= time.Millisecond
		got := w.Next()
		if got < c/2 || got > c {
			t.Errorf("wait %d: got %v, want in [%v, %v]", i, got, c/2, c)
		}
	}
}

func TestSleepReturnsContextError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := New(Policy{Min: time.Hour, Max: time.Hour})
	if err := w.Sleep(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
