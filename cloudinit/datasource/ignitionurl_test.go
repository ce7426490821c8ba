package datasource

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

const ignConfig = `{"ignition":{"version":"3.4.0"}}`

func TestIgnitionURL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(fails *int) http.HandlerFunc
		cmdline func(base string) string
		want    string // Source of the Data; "" means an error
		wantErr string
	}{
		{
			name: "fetched",
			handler: func(*int) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/config.ign" || !strings.HasPrefix(r.UserAgent(), "Bulkhead-Ignition") {
						http.NotFound(w, r)
						return
					}
					w.Write([]byte(ignConfig))
				}
			},
			cmdline: func(base string) string { return "root=/dev/vda ignition.config.url=" + base + "/config.ign quiet" },
			want:    "ignition:{base}/config.ign",
		},
		{
			name: "server still starting: 503 twice",
			handler: func(fails *int) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if *fails < 2 {
						*fails++
						http.Error(w, "starting", http.StatusServiceUnavailable)
						return
					}
					w.Write([]byte(ignConfig))
				}
			},
			cmdline: func(base string) string { return "ignition.config.url=" + base + "/c" },
			want:    "ignition:{base}/c",
		},
		{
			name: "over the limit",
			handler: func(*int) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Write([]byte(`{"ignition":{"version":"3.4.0"},"x":"`))
					w.Write(make([]byte, maxIgnitionConfig))
				}
			},
			cmdline: func(base string) string { return "ignition.config.url=" + base + "/big" },
			wantErr: "over the size limit",
		},
		{
			name:    "404",
			handler: func(*int) http.HandlerFunc { return http.NotFound },
			cmdline: func(base string) string { return "ignition.config.url=" + base + "/none" },
			wantErr: "HTTP 404",
		},
		{
			name:    "tftp refused by name",
			handler: func(*int) http.HandlerFunc { return http.NotFound },
			cmdline: func(string) string { return "ignition.config.url=tftp://10.0.0.1/config.ign" },
			wantErr: `scheme "tftp" is not supported`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			fails := 0
			h := tc.handler(&fails)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				h(w, r)
			}))
			defer srv.Close()
			d, err := Detect(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: tc.cmdline(srv.URL), NetWait: 5 * time.Second})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "ignition.config.url") {
					t.Fatalf("got error %v, want one naming ignition.config.url and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tc.want, "{base}", srv.URL)
			if d.Source != want || string(d.Ignition) != ignConfig || !strings.HasPrefix(d.MetaData.InstanceID, "ign-") || d.UserData != nil {
				t.Errorf("got %s, want source %s with the config as Ignition", summary(d), want)
			}
		})
	}
}

// TestIgnitionURLNetworkComesUp: nothing listens at first (the network is
// not up); the fetch retries until the server appears.
func TestIgnitionURLNetworkComesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // connection refused until the server starts below
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(ignConfig))
	}))
	go func() {
		time.Sleep(400 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		srv.Listener = l
		srv.Start()
	}()
	defer func() {
		if srv.Listener != nil {
			srv.Close()
		}
	}()
	d, err := IgnitionURL(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: "ignition.config.url=http://" + addr + "/c.ign", NetWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Ignition) != ignConfig {
		t.Errorf("got %q, want %q", d.Ignition, ignConfig)
	}
}

// TestIgnitionURLGivesUp: a URL that never answers fails after NetWait.
func TestIgnitionURLGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	start := time.Now()
	_, err := IgnitionURL(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: "ignition.config.url=" + base + "/c", NetWait: 500 * time.Millisecond})
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want a fetch error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v, want about NetWait (500ms)", d)
	}
}

// TestRemoteFetchTimeout: a config or seed server that accepts and never
// answers fails within FetchTimeout per request, for both remote sources.
func TestRemoteFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	for _, cmdline := range []string{"ignition.config.url=" + srv.URL + "/c.ign", "ds=nocloud;s=" + srv.URL + "/"} {
		t.Run(cmdline, func(t *testing.T) {
			start := time.Now()
			_, err := Detect(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: cmdline, FetchTimeout: 50 * time.Millisecond})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got error %v, want a timeout", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v, want about 3 x 50ms plus backoff", d)
			}
		})
	}
}
