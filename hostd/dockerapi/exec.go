package dockerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/stream"
)

// execConfig is the body of POST /containers/{id}/exec.
type execConfig struct {
	AttachStdin  bool
	AttachStdout bool
	AttachStderr bool
	Tty          bool
	Cmd          []string
	Env          []string
	User         string
	WorkingDir   string
}

func (a *API) execCreate(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	var cfg execConfig
	if err := json.NewDecoder(r.Body).Decode(&cfg); err != nil || len(cfg.Cmd) == 0 {
		apiError(w, fmt.Errorf("%w: exec needs a Cmd", errBadRequest))
		return
	}
	if c.State != engine.StateRunning {
		apiError(w, fmt.Errorf("%w: container %s is not running", engine.ErrConflict, c.Name))
		return
	}
	x := &execInstance{ID: newID(), Container: c.ID, Config: cfg}
	a.mu.Lock()
	a.execs[x.ID] = x
	a.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"Id": x.ID})
}

func (a *API) execFind(id string) *execInstance {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.execs[id]
}

// execStart runs the exec on the hijacked connection: stdin from the
// client, output multiplexed, or raw from a terminal with Tty.
func (a *API) execStart(w http.ResponseWriter, r *http.Request) {
	x := a.execFind(r.PathValue("id"))
	if x == nil {
		apiError(w, fmt.Errorf("%w: no such exec instance", engine.ErrNotFound))
		return
	}
	var body struct{ Detach, Tty bool }
	_ = json.NewDecoder(r.Body).Decode(&body)
	x.mu.Lock()
	x.running = true
	x.mu.Unlock()
	cfg := x.Config
	opts := engine.ExecOptions{Args: cfg.Cmd, Env: cfg.Env, User: cfg.User, Cwd: cfg.WorkingDir, Tty: cfg.Tty}
	if body.Detach {
		go a.runExec(context.Background(), x, opts)
		w.WriteHeader(http.StatusOK)
		return
	}
	ctype := "application/vnd.docker.multiplexed-stream"
	if cfg.Tty {
		ctype = "application/vnd.docker.raw-stream"
	}
	conn, brw, err := hijack(w, r, ctype)
	if err != nil {
		return
	}
	defer conn.Close()
	if cfg.Tty {
		opts.Stdout, opts.Stderr = conn, conn
	} else {
		mux := stream.NewMux(conn)
		opts.Stdout, opts.Stderr = mux.Writer(stream.Stdout), mux.Writer(stream.Stderr)
	}
	if !cfg.AttachStdout {
		opts.Stdout = io.Discard
	}
	if !cfg.AttachStderr {
		opts.Stderr = io.Discard
	}
	if cfg.AttachStdin {
		// The client half-closes its side at the end of its input; one
		// that does not (docker-compose exec) must not hold the exec
		// open after its process ended: the process reads a pipe, not
		// the connection, so the runtime's wait does not wait on a copy
		// from the client. The copy ends with the connection.
		pr, pw, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(opts.Stderr, "hostd: %v\n", err)
			return
		}
		defer pr.Close()
		go func() {
			_, _ = io.Copy(pw, brw.Reader)
			pw.Close()
		}()
		opts.Stdin = pr
	}
	a.runExec(context.Background(), x, opts)
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
}

func (a *API) runExec(ctx context.Context, x *execInstance, opts engine.ExecOptions) {
	code, err := a.E.Exec(ctx, x.Container, opts)
	if err != nil && opts.Stderr != nil {
		fmt.Fprintf(opts.Stderr, "hostd: %v\n", err)
		if code == 0 {
			code = 126
		}
	}
	x.mu.Lock()
	x.running = false
	x.exitCode = &code
	x.mu.Unlock()
}

func (a *API) execInspect(w http.ResponseWriter, r *http.Request) {
	x := a.execFind(r.PathValue("id"))
	if x == nil {
		apiError(w, fmt.Errorf("%w: no such exec instance", engine.ErrNotFound))
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"ID": x.ID, "ContainerID": x.Container, "Running": x.running, "ExitCode": x.exitCode,
		"ProcessConfig": map[string]any{"entrypoint": x.Config.Cmd[0], "arguments": x.Config.Cmd[1:], "tty": x.Config.Tty},
		"OpenStdin":     x.Config.AttachStdin, "OpenStdout": x.Config.AttachStdout, "OpenStderr": x.Config.AttachStderr,
	})
}
