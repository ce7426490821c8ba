package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// ExecOptions describe a process to run in a running container.
type ExecOptions struct {
	Args   []string
	Env    []string // added to the container's
	User   string   // default: the container's
	Cwd    string   // default: the container's
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Tty gives the process a terminal; its output (both streams) goes to
	// Stdout.
	Tty bool
}

// Exec runs a process in a running container and returns its exit code.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions) (int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return -1, err
	}
	if c.State != StateRunning {
		return -1, fmt.Errorf("exec in %s: container is not running", c.Name)
	}
	if len(o.Args) == 0 {
		return -1, errors.New("exec: no command")
	}
	u := o.User
	if u == "" {
		u = c.User
	}
	uid, gid, groups, home, err := resolveUser(e.snaps.Rootfs(c.ID), u)
	if err != nil {
		return -1, err
	}
	cwd := o.Cwd
	if cwd == "" {
		cwd = c.Cwd
	}
	p := &specs.Process{
		Args: o.Args, Cwd: cwd,
		Env:      mergeEnv(c.Env, []string{"HOSTNAME=" + c.hostname()}, homeEnv(c.Env, home), o.Env),
		User:     specs.User{UID: uid, GID: gid, AdditionalGids: groups},
		Terminal: o.Tty,
	}
	if o.Tty {
		p.Env = mergeEnv(p.Env, []string{"TERM=xterm"}, o.Env)
	}
	// The exec'd process has the container's capabilities and
	// no_new_privs, as its main process.
	sec, err := c.Spec.security()
	if err != nil {
		return -1, err
	}
	p.NoNewPrivileges = !sec.AllowNewPrivileges
	caps, err := c.Spec.caps()
	if err != nil {
		return -1, err
	}
	if caps == nil {
		caps = runtime.DefaultCaps
	}
	if uid == 0 {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	} else {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps}
	}
	return e.rt.Exec(ctx, c.ID, p, runtime.Stdio{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
}

// LogOptions select log output.
type LogOptions struct {
	Follow bool
	Tail   int
	Since  time.Time
	// NextRun follows until the container's next exit, even if it has not
	// started yet (Docker's attach before start).
	NextRun bool
	// Ready, when set, is called once the reader is registered (so a run
	// started from it cannot be missed, nor an --rm container removed
	// before its last lines are read); an error from it ends Logs.
	Ready func() error
	// ExitCode, with NextRun, receives the code of that exit.
	ExitCode *int
}

// Logs calls fn for each log entry of a container, oldest first; with
// Follow it waits for more until the container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogOptions, fn func(logs.Entry) error) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	l := e.live[c.ID]
	e.readers[c.ID]++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.readers[c.ID]--
		if e.readers[c.ID] <= 0 {
			delete(e.readers, c.ID)
		}
		e.mu.Unlock()
	}()
	// wake is closed at the exit the reader follows to: it then reads the
	// last lines at once, not at its next look (docker run waits for them).
	var wake <-chan struct{}
	var next chan int
	var nextEnded chan struct{}
	if o.NextRun {
		next = e.addWaiter(c.ID)
		nextEnded = make(chan struct{})
		wake = nextEnded
		go func() {
			select {
			case code := <-next:
				if o.ExitCode != nil {
					*o.ExitCode = code
				}
				close(nextEnded)
			case <-ctx.Done():
			}
		}()
	} else if l != nil {
		wake = l.exited
	}
	done := func() bool {
		if next != nil {
			select {
			case <-nextEnded:
				return true
			default:
				return false
			}
		}
		if l == nil {
			return true
		}
		select {
		case <-l.exited:
			cur, err := e.Get(c.ID)
			// A restart under way starts a new run: keep following.
			return err != nil || cur.State != StateRunning
		default:
			return false
		}
	}
	if o.Ready != nil {
		if err := o.Ready(); err != nil {
			return err
		}
	}
	return logs.Read(ctx, e.dir(c.ID), logs.ReadOptions{Follow: o.Follow, Tail: o.Tail, Since: o.Since, Done: done, Wake: wake}, fn)
}

// Health probes: Docker's defaults.
const (
	defaultInterval = 30 * time.Second
	defaultTimeout  = 30 * time.Second
	defaultRetries  = 3
)

// probeStopWait bounds the wait for a probe in flight when the probes stop.
const probeStopWait = 10 * time.Second

// startProbe runs the container's health check until l's run ends.
func (e *Engine) startProbe(id string, l *liveState) {
	c, err := e.Get(id)
	if err != nil || c.Spec.Healthcheck == nil {
		return
	}
	h := *c.Spec.Healthcheck
	interval, timeout, retries := time.Duration(h.Interval), time.Duration(h.Timeout), h.Retries
	if interval <= 0 {
		interval = defaultInterval
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if retries <= 0 {
		retries = defaultRetries
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.mu.Lock()
	l.cancelProbe, l.probeDone = cancel, done
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(done)
		defer cancel()
		failures := 0
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.done:
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(ctx, timeout)
			var out strings.Builder
			start := time.Now().UTC()
			code, err := e.Exec(pctx, id, ExecOptions{Args: h.Command, Stdout: &out, Stderr: &out})
			timedOut := pctx.Err() == context.DeadlineExceeded
			pcancel()
			if ctx.Err() != nil {
				return
			}
			res := HealthResult{Start: start, End: time.Now().UTC(), ExitCode: code, Output: out.String()}
			switch {
			case timedOut:
				// Docker's entry for a probe that ran out of time.
				res.ExitCode, res.Output = -1, fmt.Sprintf("Health check exceeded timeout (%s)", timeout)
			case err != nil:
				res.ExitCode, res.Output = -1, err.Error()
			}
			if len(res.Output) > healthOutputMax {
				res.Output = res.Output[:healthOutputMax]
			}
			cur, gerr := e.Get(id)
			if gerr != nil {
				return
			}
			inStart := time.Since(cur.StartedAt) < time.Duration(h.StartPeriod)
			state := cur.Health
			switch {
			case err == nil && code == 0:
				failures, state = 0, HealthHealthy
			case inStart:
				// Failures in the start period do not count.
			default:
				failures++
				if failures >= retries {
					state = HealthUnhealthy
				}
			}
			e.mu.Lock()
			l.health.Log = append(l.health.Log, res)
			if n := len(l.health.Log); n > healthLogMax {
				l.health.Log = l.health.Log[n-healthLogMax:]
			}
			l.health.FailingStreak = failures
			e.mu.Unlock()
			if state != cur.Health {
				e.log.Info("container health changed", "container", cur.Name, "health", state)
				_, _ = e.update(id, func(x *Container) { x.Health = state })
			}
		}
	}()
}

// HealthCheck is the engine's input to hostd's boot health gate: every
// declared (managed) container must exist and run, and be healthy if it has
// a check.
func (e *Engine) HealthCheck(ctx context.Context) error {
	var bad []string
	have := map[string]bool{}
	list := e.List()
	for _, c := range list {
		have[c.Name] = c.Managed
	}
	e.mu.Lock()
	declared := append([]string(nil), e.declared...)
	e.mu.Unlock()
	for _, n := range declared {
		if !have[n] {
			bad = append(bad, n+" is declared but not created yet")
		}
	}
	for _, c := range list {
		if !c.Managed {
			continue
		}
		p, _ := ParseRestart(c.Spec.Restart)
		switch {
		case c.State != StateRunning && p.Name == RestartNo && c.ExitCode == 0 && c.Error == "":
			// A one-shot job that finished well.
		case c.State != StateRunning:
			bad = append(bad, fmt.Sprintf("%s is %s", c.Name, c.State))
		case c.Health != "" && c.Health != HealthHealthy:
			bad = append(bad, fmt.Sprintf("%s is %s", c.Name, c.Health))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, ", "))
	}
	return nil
}
