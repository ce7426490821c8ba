package fleetlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
)

func TestEncodeGolden(t *testing.T) {
	b, err := Encode("975228d46dc94622b9bbe16671e2b58d", "workers")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "pre-reboot.json", append(b, '\n'))
}

func TestEncodeRejectsBadParams(t *testing.T) {
	for _, tc := range []struct{ name, id, group string }{
		{"empty id", "", "default"},
		{"empty group", "abc", ""},
		{"slash in group", "abc", "prod/db"},
		{"space in group", "abc", "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Encode(tc.id, tc.group); err == nil {
				t.Errorf("Encode(%q, %q): got nil error, want one", tc.id, tc.group)
			}
		})
	}
}

// TestRequestOnTheWire checks method, path, header and body as a server sees them.
func TestRequestOnTheWire(t *testing.T) {
	type seen struct{ method, path, header, body string }
	var mu sync.Mutex // the race detector does not see ordering through TCP
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Get("fleet-lock-protocol"), string(b)})
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/base/", ID: "c988d2509fdf5cdcbed39037c56406fb", Group: "default"}
	ctx := context.Background()
	if err := c.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	body := `{"client_params":{"id":"c988d2509fdf5cdcbed39037c56406fb","group":"default"}}`
	want := []seen{
		{"POST", "/base/v1/pre-reboot", "true", body},
		{"POST", "/base/v1/steady-state", "true", body},
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRejectionDecoding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"protocol error", 409, `{"kind":"failed_lock_semaphore_full","value":"semaphore currently full"}`,
			"lock manager pre-reboot rejection, code 409 (failed_lock_semaphore_full): semaphore currently full"},
		{"plain text", 502, `bad gateway`,
			"lock manager pre-reboot rejection, code 502 (generic_http_502): (unknown server error)"},
		{"201 is not 200", 201, ``,
			"lock manager pre-reboot rejection, code 201 (generic_http_201): (unknown server error)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, ID: "a", Group: "default"}
			err := c.Do(context.Background(), PreRebootPath)
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("got %v, want a *Rejection", err)
			}
			if err.Error() != tc.want {
				t.Errorf("got %q, want %q", err.Error(), tc.want)
			}
		})
	}
}

func TestPreRebootRetriesUntilGranted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, ID: "a", Group: "default", Backoff: backoff.Policy{Min: time.Millisecond, Max: 4 * time.Millisecond}}
	if err := c.PreReboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 4 {
		t.Errorf("got %d requests, want 4", got)
	}
}

func TestPreRebootHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{BaseURL: srv.URL, ID: "a", Group: "default", Backoff: backoff.Policy{Min: time.Millisecond, Max: time.Millisecond}}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := c.PreReboot(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestFleetOf50 runs 49 hosts and a dead one against a FleetLock server
// with 3 slots; the operator releases the dead host's slot by its id, as
// `hostctl reboot-lock release --id` does.
func TestFleetOf50(t *testing.T) {
	srv := reboottest.StartFleetLock(t, 3)
	client := func(id string) *Client {
		return &Client{BaseURL: srv.URL, ID: id, Group: "workers", Backoff: backoff.Policy{Min: time.Millisecond, Max: 10 * time.Millisecond}}
	}
	reboottest.Fleet{
		Hosts: 49, Slots: 3,
		New:     func(id string) reboottest.Locker { return client(id) },
		Holders: func(context.Context) ([]string, error) { return srv.Holders("workers"), nil },
		Release: func(ctx context.Context, id string) error { return client(id).Do(ctx, SteadyStatePath) },
	}.Run(t)
	if got := srv.Peak(); got > 3 {
		t.Errorf("server saw %d holders, want at most 3", got)
	}
}

// FuzzDecodeRejection: a server's error body is outside input.
func FuzzDecodeRejection(f *testing.F) {
	f.Add(409, []byte(`{"kind":"failed_lock_semaphore_full","value":"full"}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := decodeRejection(PreRebootPath, status, body)
		if r.Kind == "" || r.Status != status {
			t.Errorf("got %+v", r)
		}
	})
}
