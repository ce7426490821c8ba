package hostd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// Version is set at link time by the builder (-X).
var Version = "dev"

// Config is what a Server needs.
type Config struct {
	Root   fsroot.Root
	Socket string // API socket path on the host, e.g. /run/hostd.sock
	Log    *slog.Logger
	// AllowUID is the only peer uid the socket accepts (0 on a host; tests
	// that run unprivileged set their own uid).
	AllowUID int
}

// HealthCheck is one input to the boot health gate. It returns nil when
// healthy; the error says what is wrong.
type HealthCheck func(ctx context.Context) error

// Server is hostd.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	started time.Time

	mu     sync.Mutex
	checks map[string]HealthCheck
	// workloads reports the declared workload files that did not load
	// (set by RegisterEngine).
	workloads func() error
}

// New makes a server with the built-in routes.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), checks: map[string]HealthCheck{}, started: time.Now()}
	s.mux.HandleFunc("GET /v1/status", s.handleStatus)
	s.mux.HandleFunc("GET /v1/health", s.handleHealth)
	return s
}

// Handle adds an API route (Go 1.22 pattern syntax, e.g. "POST /v1/containers").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddHealthCheck registers a named check for the boot health gate.
func (s *Server) AddHealthCheck(name string, c HealthCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Info is hostd's own part of the status.
type Info struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// WorkloadErrors are the declared workload files that did not load;
	// their running containers are kept as they were.
	WorkloadErrors string `json:"workloadErrors,omitempty"`
}

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	Hostd Info          `json:"hostd"`
	Slots *slots.Status `json:"slots,omitempty"`
	// SlotsError says why Slots is missing (e.g. not booted from a slot).
	SlotsError string `json:"slotsError,omitempty"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	resp := StatusResponse{Hostd: Info{Version: Version, PID: os.Getpid(), Started: s.started}}
	s.mu.Lock()
	workloads := s.workloads
	s.mu.Unlock()
	if workloads != nil {
		if err := workloads(); err != nil {
			resp.Hostd.WorkloadErrors = err.Error()
		}
	}
	st, err := slots.Host{Root: s.cfg.Root}.ReadStatus()
	if err != nil {
		resp.SlotsError = err.Error()
	} else {
		resp.Slots = &st
	}
	WriteJSON(w, http.StatusOK, resp)
}

// CheckResult is one health check's outcome.
type CheckResult struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
}

// HealthResponse is GET /v1/health; the status code is 200 when healthy,
// 503 when not.
type HealthResponse struct {
	Healthy bool          `json:"healthy"`
	Checks  []CheckResult `json:"checks"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := make(map[string]HealthCheck, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	resp := HealthResponse{Healthy: true, Checks: []CheckResult{}}
	for name, c := range checks {
		res := CheckResult{Name: name}
		if err := c(r.Context()); err != nil {
			res.Error = err.Error()
			resp.Healthy = false
		}
		resp.Checks = append(resp.Checks, res)
	}
	code := http.StatusOK
	if !resp.Healthy {
		code = http.StatusServiceUnavailable
	}
	WriteJSON(w, code, resp)
}

// WriteJSON writes v as the JSON body of a response.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen opens the API socket: mode 0600, stale sockets replaced, and every
// connection's peer credentials checked against AllowUID.
func Listen(path string, allowUID int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listening on %s: removing stale socket: %w", path, err)
	}
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return peerCheckListener{Listener: l, uid: allowUID}, nil
}

// peerCheckListener refuses connections from any uid but uid: the socket's
// mode already keeps others out, this also holds if the mode is loosened.
type peerCheckListener struct {
	net.Listener
	uid int
}

func (l peerCheckListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			return c, nil
		}
		if cred, err := PeerCred(uc); err == nil && int(cred.Uid) == l.uid {
			return c, nil
		}
		c.Close()
	}
}

// PeerCred returns the credentials of the process at the other end.
func PeerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, serr
}

// Serve runs the API until ctx ends, telling systemd READY=1 once the socket
// accepts connections and feeding the watchdog when systemd asks for it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		s.cfg.Log.Warn("notifying systemd", "err", err)
	}
	s.cfg.Log.Info("hostd ready", "socket", s.cfg.Socket, "version", Version)
	var tick <-chan time.Time
	if iv, err := daemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		case err := <-errc:
			return fmt.Errorf("serving API on %s: %w", s.cfg.Socket, err)
		case <-tick:
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}
