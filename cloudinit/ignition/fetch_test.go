package ignition

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/vincent-petithory/dataurl"
)

// TestFetchRetries checks Ignition's retry rule: 5xx answers and
// connection errors are retried with backoff, other answers are final.
func TestFetchRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers before a 200
		wantErr  string
		wantReqs int32
	}{
		{"503 twice then 200", []int{503, 503}, "", 3},
		{"500 then 200", []int{500}, "", 2},
		{"404 is final", []int{404}, "server answered 404 Not Found", 1},
		{"403 is final", []int{403}, "server answered 403 Forbidden", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				if i < len(tc.statuses) {
					w.WriteHeader(tc.statuses[i])
					return
				}
				fmt.Fprint(w, "ok")
			}))
			defer srv.Close()
			got, err := Fetch(context.Background(), FetchOptions{}, srv.URL+"/x")
			switch {
			case tc.wantErr == "" && (err != nil || string(got) != "ok"):
				t.Errorf("got %q, %v, want ok", got, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
			if got := n.Load(); got != tc.wantReqs {
				t.Errorf("got %d requests, want %d", got, tc.wantReqs)
			}
		})
	}
}

// TestFetchTimeouts checks ignition.timeouts: a response that does not
// come within httpResponseHeaders is retried, and httpTotal bounds the
// fetch with all its retries.
func TestFetchTimeouts(t *testing.T) {
	t.Run("httpResponseHeaders then retry", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				select { // the first answer is too slow
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprint(w, "second try")
		}))
		defer srv.Close()
		got, err := Fetch(context.Background(), FetchOptions{HTTPResponseHeaders: 300 * time.Millisecond}, srv.URL)
		if err != nil || string(got) != "second try" {
			t.Errorf("got %q, %v, want %q", got, err, "second try")
		}
		if n.Load() != 2 {
			t.Errorf("got %d requests, want 2", n.Load())
		}
	})
	t.Run("httpTotal", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		start := time.Now()
		_, err := Fetch(context.Background(), FetchOptions{HTTPTotal: time.Second}, srv.URL)
		if err == nil || !strings.Contains(err.Error(), "httpTotal") || !strings.Contains(err.Error(), "503") {
			t.Errorf("got %v, want a give-up error naming httpTotal and the last answer", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("gave up after %s, want about 1s", d)
		}
	})
	t.Run("config timeouts", func(t *testing.T) {
		total, headers := 3, 0
		o := OptionsFrom(Config{}.Ignition)
		if o.HTTPTotal != 0 || o.HTTPResponseHeaders != 0 {
			t.Errorf("got %+v for no timeouts, want defaults", o)
		}
		var cfg Config
		cfg.Ignition.Timeouts.HTTPTotal = &total
		cfg.Ignition.Timeouts.HTTPResponseHeaders = &headers
		o = OptionsFrom(cfg.Ignition)
		if o.HTTPTotal != 3*time.Second || o.HTTPResponseHeaders >= 0 {
			t.Errorf("got %+v, want total 3s and no header timeout (0 is none in the spec)", o)
		}
	})
}

// TestFetchSizeLimit checks that a body over the limit is an error, with
// or without a Content-Length, and so is a gzip bomb: never a truncation.
func TestFetchSizeLimit(t *testing.T) {
	const limit = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := bytes.Repeat([]byte("x"), limit)
		if r.URL.Path != "/exact" {
			body = append(body, 'y')
		}
		if r.URL.Path == "/chunked" {
			w.Write(body[:10])
			w.(http.Flusher).Flush() // no Content-Length
			w.Write(body[10:])
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	opts := FetchOptions{MaxSize: limit}
	if got, err := Fetch(context.Background(), opts, srv.URL+"/exact"); err != nil || len(got) != limit {
		t.Errorf("got %d bytes, %v, want %d bytes", len(got), err, limit)
	}
	for _, path := range []string{"/over", "/chunked"} {
		if got, err := Fetch(context.Background(), opts, srv.URL+path); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %d bytes, %v, want ErrTooLarge", path, len(got), err)
		}
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(make([]byte, 10*limit))
	zw.Close()
	bomb := dataurl.EncodeBytes(zb.Bytes())
	gz := "gzip"
	f, err := newFetcher(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.fetch(context.Background(), Resource{Source: &bomb, Compression: &gz}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("gzip bomb: got %v, want ErrTooLarge", err)
	}
}

func TestFetchSchemes(t *testing.T) {
	for _, src := range []string{"s3://bucket/key", "gs://bucket/obj", "tftp://10.0.0.1/cfg", "arn:aws:s3:::bucket/key", "file:///etc/shadow"} {
		if _, err := Fetch(context.Background(), FetchOptions{}, src); !errors.Is(err, ErrUnsupportedScheme) {
			t.Errorf("%s: got %v, want ErrUnsupportedScheme", src, err)
		}
	}
	got, err := Fetch(context.Background(), FetchOptions{}, "data:;base64,aGVsbG8=")
	if err != nil || string(got) != "hello" {
		t.Errorf("got %q, %v, want hello", got, err)
	}
}

// TestCertificateAuthorities applies a config whose file comes from an
// https server with a private CA: refused whole without the CA, written
// with it in ignition.security.tls.certificateAuthorities.
func TestCertificateAuthorities(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "over tls\n")
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	files := fmt.Sprintf(`"storage":{"files":[{"path":"/etc/plain","contents":{"source":"data:,x"}},{"path":"/etc/tls","contents":{"source":%q}}]}`, srv.URL+"/f")
	for _, tc := range []struct {
		name, ignition, want string
	}{
		{"no CA", `{"version":"3.4.0","timeouts":{"httpTotal":5}}`, "storage.files[1].contents: fetching " + srv.URL + "/f: "},
		{"CA as data URL", fmt.Sprintf(`{"version":"3.4.0","security":{"tls":{"certificateAuthorities":[{"source":%q}]}}}`, dataurl.EncodeBytes(caPEM)), ""},
		{"CA not PEM", `{"version":"3.4.0","security":{"tls":{"certificateAuthorities":[{"source":"data:,garbage"}]}}}`, "ignition.security.tls.certificateAuthorities[0]: not a PEM certificate bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(`{"ignition":` + tc.ignition + `,` + files + `}`))
			if err != nil {
				t.Fatal(err)
			}
			root := newRoot(t)
			_, err = Applier{Root: fsroot.Root(root), Runner: recorder(root)}.Apply(context.Background(), cfg)
			data, _ := os.ReadFile(filepath.Join(root, "etc/tls"))
			if tc.want == "" {
				if err != nil || string(data) != "over tls\n" {
					t.Errorf("got %q, %v, want the file fetched over TLS", data, err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a refusal containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/plain")); err == nil {
				t.Error("got /etc/plain written by a refused config")
			}
		})
	}
}

// TestProxy checks ignition.proxy: http and https fetches go through the
// proxies named, hosts in noProxy do not.
func TestProxy(t *testing.T) {
	var mu sync.Mutex
	var seen []string // distinct requests: a refused tunnel is retried
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if req := r.Method + " " + r.RequestURI; !slices.Contains(seen, req) {
			seen = append(seen, req)
		}
		mu.Unlock()
		if r.Method == http.MethodConnect {
			http.Error(w, "no tunnels here", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, "via proxy")
	}))
	defer proxy.Close()
	p := proxy.URL
	opts := FetchOptions{HTTPTotal: time.Second}
	opts.Proxy.HTTPProxy = &p
	opts.Proxy.HTTPSProxy = &p
	opts.Proxy.NoProxy = []NoProxyItem{"direct.invalid"}

	got, err := Fetch(context.Background(), opts, "http://origin.invalid/cfg")
	if err != nil || string(got) != "via proxy" {
		t.Errorf("http: got %q, %v, want the proxy's answer", got, err)
	}
	if _, err := Fetch(context.Background(), opts, "https://origin.invalid/cfg"); err == nil {
		t.Error("https: got no error, want the proxy's refusal of the tunnel")
	}
	if _, err := Fetch(context.Background(), opts, "http://direct.invalid/cfg"); err == nil {
		t.Error("noProxy: got an answer, want a failed direct connection")
	}
	want := []string{"GET http://origin.invalid/cfg", "CONNECT origin.invalid:443"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("proxy saw %q, want %q", seen, want)
	}
}

// TestVerificationOfDecompressed pins spec 3.x: the hash of a gzip
// resource is of the decompressed bytes, not of what was fetched.
func TestVerificationOfDecompressed(t *testing.T) {
	plain := []byte("hello, decompressed\n")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	src, gz := dataurl.EncodeBytes(zb.Bytes()), "gzip"
	f, err := newFetcher(FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		of     []byte
		wantOK bool
	}{
		{"hash of decompressed", plain, true},
		{"hash of compressed", zb.Bytes(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := "sha256-" + sha256hex(tc.of)
			got, err := f.fetch(context.Background(), Resource{Source: &src, Compression: &gz, Verification: Verification{Hash: &h}})
			if tc.wantOK != (err == nil) || (tc.wantOK && !bytes.Equal(got, plain)) {
				t.Errorf("got %q, %v, want ok=%v", got, err, tc.wantOK)
			}
		})
	}
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
