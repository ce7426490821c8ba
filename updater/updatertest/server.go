package updatertest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server serves a directory (a repository, a chunk store) over HTTP and
// counts the bytes and requests it serves per path.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	served   map[string]int64
	requests map[string]int
	hook     func(path string) bool
}

// Serve starts a Server for dir, closed when the test ends.
func Serve(t testing.TB, dir string) *Server {
	s := &Server{served: map[string]int64{}, requests: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		hook := s.hook
		s.mu.Unlock()
		if hook != nil && !hook(r.URL.Path) {
			http.Error(w, "refused by the test", http.StatusInternalServerError)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		files.ServeHTTP(cw, r)
		s.mu.Lock()
		s.requests[r.URL.Path]++
		s.served[r.URL.Path] += cw.n
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

// SetHook makes hook see each request's path first; false answers it with
// HTTP 500 and leaves it uncounted. nil removes the hook.
func (s *Server) SetHook(hook func(path string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Served sums the bytes and requests served for paths under prefix.
func (s *Server) Served(prefix string) (bytes int64, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, n := range s.served {
		if strings.HasPrefix(p, prefix) {
			bytes += n
			requests += s.requests[p]
		}
	}
	return bytes, requests
}

// ServedExactly is what was served for path.
func (s *Server) ServedExactly(path string) (bytes int64, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path], s.requests[path]
}

// Requests counts the requests served per path.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for p, n := range s.requests {
		out[p] = n
	}
	return out
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}
