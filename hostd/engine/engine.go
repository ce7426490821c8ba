package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
	"github.com/bulkhead-os/bulkhead/hostd/engine/snapshot"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Sentinels for decisions callers (the API) make.
var (
	ErrNotFound = errors.New("no such container")
	ErrConflict = errors.New("conflict")
	ErrRunning  = errors.New("container is running")
)

// HTTPStatus maps the engine's and the image store's sentinels to an HTTP
// status code, for the APIs in front of the engine.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, image.ErrNotFound), errors.Is(err, ErrNoNetwork):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrConflict), errors.Is(err, ErrRunning), errors.Is(err, image.ErrInUse):
		return http.StatusConflict
	case errors.Is(err, image.ErrBadArchive), errors.Is(err, image.ErrBadChange):
		return http.StatusBadRequest
	case errors.Is(err, image.ErrUnauthorized):
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// Container states.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
)

// Health states.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Container is a container's record (container.json in its directory).
type Container struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Spec       ContainerSpec `json:"spec"`
	ImageID    string        `json:"imageId"`
	Created    time.Time     `json:"created"`
	State      string        `json:"state"`
	Pid        int           `json:"pid,omitempty"`
	ShimPid    int           `json:"shimPid,omitempty"`
	ExitCode   int           `json:"exitCode"`
	Error      string        `json:"error,omitempty"`
	StartedAt  time.Time     `json:"startedAt,omitzero"`
	FinishedAt time.Time     `json:"finishedAt,omitzero"`
	// RestartCount counts the restarts its policy made since a user last
	// started it (as dockerd: a long run does not reset it, so
	// on-failure:N gives up after N however far apart the failures).
	RestartCount int `json:"restartCount"`
	// OOMKilled says the kernel killed a process of the last run for
	// lack of memory (its cgroup's limit).
	OOMKilled bool `json:"oomKilled,omitempty"`
	// Backoff is the wait before the last policy restart: doubled after a
	// run shorter than 10 s, back to 100 ms after a longer one.
	Backoff time.Duration `json:"backoff,omitempty"`
	// Stopped is set by stop/kill from a user, so unless-stopped and
	// on-failure do not restart it.
	Stopped bool   `json:"stopped,omitempty"`
	Health  string `json:"health,omitempty"`
	// Managed marks a container declared in /etc/hostd/containers: the
	// workload loader owns it, and the boot health gate waits for it.
	Managed bool   `json:"managed,omitempty"`
	IP      string `json:"ip,omitempty"`
	// Ports are the current run's published ports, random host ports
	// resolved (cleared at exit, as Docker's NetworkSettings.Ports).
	Ports []Port `json:"ports,omitempty"`
	// Resolved at create time from the image config and the spec, so the
	// container still starts after its image is untagged.
	Layers []string `json:"layers"`
	// AnonymousVolumes are the volumes the engine named at create: for
	// the spec's volume mounts without a source, its AnonymousVolumes and
	// the image's VOLUME paths nothing else mounts. They go with the
	// container (docker rm -v, run --rm); the spec stays as declared.
	AnonymousVolumes []MountSpec `json:"anonymousVolumes,omitempty"`
	Args             []string    `json:"args"`
	Env              []string    `json:"env"`
	Cwd              string      `json:"cwd"`
	User             string      `json:"user,omitempty"`
	// StopSignal is what a stop sends first: the image's STOPSIGNAL, or
	// SIGTERM when it names none.
	StopSignal string `json:"stopSignal,omitempty"`
	// Exposed are the image's exposed ports and the spec's (80/tcp), for
	// PublishAll.
	Exposed []string `json:"exposed,omitempty"`
}

// Config is what an Engine needs.
type Config struct {
	Root   string // engine root: /var/lib/hostd
	RunDir string // volatile state: /run/hostd
	// HostRoot is "/" on a host; the engine reads the host's resolv.conf
	// through it.
	HostRoot fsroot.Root
	Log      *slog.Logger
	Images   image.Options // Root is set by the engine
	// Runtime makes the container runtime (libct.New in hostd; it needs
	// cgo, so main hands it in).
	Runtime runtime.Factory
	// ShimCommand is the argv prefix that starts a shim; the shim's own
	// arguments follow. Default: shim.Binary beside this binary.
	ShimCommand []string
	// InitBinary is the static init mounted into containers run with
	// --init (the shim, which runs as an init when called docker-init).
	// Default: shim.Binary beside this binary.
	InitBinary string
	Seccomp    bool
	Network    Networker // nil: bridge networking unavailable, default network none
	// LogMax and LogFiles rotate each container's log.
	LogMax   int64
	LogFiles int
	// OOMScoreAdj is every container's oom_score_adj (default 0, the
	// kernel's neutral value, whatever hostd's own is).
	OOMScoreAdj int
	// Defaults are the limits of a container whose spec sets none; Pids
	// 0 means DefaultPidsLimit.
	Defaults Limits
}

// DefaultPidsLimit bounds the processes of a container that declares no
// limit: a fork bomb in one container must not exhaust the host's pids.
const DefaultPidsLimit = 4096

// Engine runs containers.
type Engine struct {
	cfg     Config
	cgroups cgroupLayout
	log     *slog.Logger
	images  *image.Store
	snaps   snapshot.Overlay
	rt      runtime.Runtime

	mu   sync.Mutex
	ctrs map[string]*Container
	live map[string]*liveState
	ops  map[string]*sync.Mutex
	// waiters get the code of a container's next exit (WaitNext).
	waiters map[string][]chan int
	// readers counts log readers per container: an --rm container is
	// removed only after they have read its last lines.
	readers map[string]int
	// declared are the workload names WatchWorkloads last loaded: until
	// each exists, the boot health gate must not pass (the pull may take
	// a while, and an empty list would otherwise look healthy).
	declared []string
	// workloadErr is the last workload load's error (WorkloadProblems).
	workloadErr error
	// shuttingDown is set by Shutdown: exits are then the host's doing,
	// and restart policies wait for the next boot.
	shuttingDown atomic.Bool
	events       eventLog
	done         chan struct{}
	wg           sync.WaitGroup
	close        sync.Once
}

// liveState is what the engine keeps in memory for a started container.
type liveState struct {
	exited chan struct{} // closed when the shim is gone and the exit recorded
	code   int           // the exit code, set before exited is closed
	// cancelProbe ends the health probes; probeDone is closed once they
	// have ended (both nil without a health check).
	cancelProbe context.CancelFunc
	probeDone   chan struct{}
	timer       *time.Timer // pending restart
	// restarting is set while timer waits to restart the container.
	restarting bool
	oomKilled  atomic.Bool // the kernel killed a process for memory (watchOOM)
	// health is the probe's streak of failures and its last results;
	// guarded by the engine's mu.
	health Health
}

// stopProbes ends container id's health probes, if it has any, as
// endProbes does.
func (e *Engine) stopProbes(id string) {
	e.mu.Lock()
	l := e.live[id]
	e.mu.Unlock()
	if l != nil {
		e.endProbes(l)
	}
}

// endProbes ends l's health probes and waits, up to probeStopWait, for
// one in flight: a container is not killed under a probe's exec, whose
// runtime setup (runc's sealed copy of the binary) can then hang. The
// engine's mu must not be held: the probe takes it.
func (e *Engine) endProbes(l *liveState) {
	e.mu.Lock()
	done := l.probeDone
	l.cancelProbes()
	e.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(probeStopWait):
	}
}

// cancelProbes ends l's health probes without waiting; the engine's mu
// is held.
func (l *liveState) cancelProbes() {
	if l.cancelProbe != nil {
		l.cancelProbe()
	}
}

// cancelRestart stops a pending policy restart; the engine's mu is held.
func (l *liveState) cancelRestart() {
	if l.timer != nil {
		l.timer.Stop()
	}
	l.restarting = false
}

// Health is a container's health probe record, as Docker's
// State.Health: the failures in a row and the last results.
type Health struct {
	FailingStreak int
	Log           []HealthResult
}

// HealthResult is one probe's result (Docker's health log entry).
type HealthResult struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Docker's bounds on the health log: the last 5 probes, 4 KiB of output each.
const (
	healthLogMax    = 5
	healthOutputMax = 4096
)

// LiveState is what the engine knows of a container beyond its record:
// whether a restart is pending, and its health probes.
type LiveState struct {
	Restarting bool
	Health     Health
}

// Live returns container id's live state (zero when it has none).
func (e *Engine) Live(id string) LiveState {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.live[id]
	if l == nil {
		return LiveState{}
	}
	h := l.health
	h.Log = append([]HealthResult(nil), h.Log...)
	return LiveState{Restarting: l.restarting, Health: h}
}

// New opens the engine at cfg.Root, re-attaches to containers whose shims
// still run and restarts those their policy says to.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
	}
	if cfg.Runtime == nil {
		return nil, errors.New("opening engine: no container runtime given")
	}
	if len(cfg.ShimCommand) == 0 || cfg.InitBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the hostd binary for shims: %w", err)
		}
		// A missing program fails each start, naming its path.
		if len(cfg.ShimCommand) == 0 {
			cfg.ShimCommand = []string{filepath.Join(filepath.Dir(exe), shim.Binary)}
		}
		if cfg.InitBinary == "" {
			cfg.InitBinary = filepath.Join(filepath.Dir(exe), shim.Binary)
		}
	}
	cfg.Images.Root = filepath.Join(cfg.Root, "images")
	if cfg.Images.Log == nil {
		cfg.Images.Log = cfg.Log
	}
	// The engine root is private: it holds every container's files, and a
	// fresh volume's root (storage-setup's XFS) starts out 0755.
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("opening engine at %s: %w", cfg.Root, err)
	}
	if err := os.Chmod(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("opening engine at %s: %w", cfg.Root, err)
	}
	imgs, err := image.Open(cfg.Images)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.Root, "volumes"), cfg.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("opening engine at %s: %w", cfg.Root, err)
		}
	}
	e := &Engine{
		cfg: cfg, cgroups: detectCgroups(cfg.HostRoot), log: cfg.Log, images: imgs,
		snaps: snapshot.Overlay{Root: filepath.Join(cfg.Root, "snapshots")},
		rt:    cfg.Runtime(filepath.Join(cfg.RunDir, "runc")),
		ctrs:  map[string]*Container{}, live: map[string]*liveState{}, ops: map[string]*sync.Mutex{},
		waiters: map[string][]chan int{}, readers: map[string]int{},
		done: make(chan struct{}),
	}
	if err := e.load(); err != nil {
		return nil, err
	}
	e.reattach(ctx)
	return e, nil
}

// Images is the engine's image store.
func (e *Engine) Images() *image.Store { return e.images }

// SecurityOptions are what the engine enforces on every container by
// default, in /info's form: seccomp only when this build loads filters and
// the engine is configured to. no-new-privileges is not listed: a
// container made through the Docker API has it only when asked for, as
// with dockerd (declared workloads have it by default).
func (e *Engine) SecurityOptions() []string {
	if e.cfg.Seccomp && runtime.SeccompSupported {
		return []string{"name=seccomp,profile=" + runtime.SeccompProfile}
	}
	return []string{}
}

// Close stops the engine's own goroutines (probes, restart timers, shim
// watchers). Containers keep running under their shims.
func (e *Engine) Close() {
	e.close.Do(func() {
		close(e.done)
		e.mu.Lock()
		for _, l := range e.live {
			l.cancelProbes()
			l.cancelRestart()
		}
		e.mu.Unlock()
		e.wg.Wait()
		// The network's own servers (resolvers) stop with the engine;
		// bridges, rules and containers stay.
		if c, ok := e.cfg.Network.(io.Closer); ok {
			if err := c.Close(); err != nil {
				e.log.Warn("closing the network", "err", err)
			}
		}
	})
}

func (e *Engine) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *Engine) dir(id string) string { return filepath.Join(e.cfg.Root, "containers", id) }

func (e *Engine) load() error {
	ents, err := os.ReadDir(filepath.Join(e.cfg.Root, "containers"))
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(e.dir(ent.Name()), "container.json"))
		if err != nil {
			continue // half-created: removed by the next create of the name
		}
		var c Container
		if err := json.Unmarshal(b, &c); err != nil {
			e.log.Warn("skipping unreadable container record", "id", ent.Name(), "err", err)
			continue
		}
		e.ctrs[c.ID] = &c
	}
	return nil
}

// save writes c's record. Callers hold e.mu or own c exclusively.
func (e *Engine) save(c *Container) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return fsroot.WriteFile(filepath.Join(e.dir(c.ID), "container.json"), b, 0o600)
}

// op returns the lock that serialises lifecycle operations on id.
func (e *Engine) op(id string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.ops[id]
	if !ok {
		m = &sync.Mutex{}
		e.ops[id] = m
	}
	return m
}

// List returns copies of all containers, newest first.
func (e *Engine) List() []Container {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Container, 0, len(e.ctrs))
	for _, c := range e.ctrs {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// Get finds a container by name, ID or unique ID prefix.
func (e *Engine) Get(ref string) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return Container{}, err
	}
	return *c, nil
}

func (e *Engine) find(ref string) (*Container, error) {
	ref = strings.TrimPrefix(ref, "/")
	if c, ok := e.ctrs[ref]; ok {
		return c, nil
	}
	var found []*Container
	for _, c := range e.ctrs {
		if c.Name == ref {
			return c, nil
		}
		if len(ref) >= 3 && strings.HasPrefix(c.ID, ref) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("%w: %q matches %d containers", ErrConflict, ref, len(found))
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create records a container from spec; its image must be stored (pull
// first). It does not start it.
func (e *Engine) Create(ctx context.Context, spec ContainerSpec) (Container, error) {
	if err := spec.Validate(); err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	if err := spec.checkHost(); err != nil {
		return Container{}, fmt.Errorf("%w: creating container: %w", ErrInvalid, err)
	}
	if err := e.resolveNetworks(&spec); err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	im, err := e.images.Get(spec.Image)
	if err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	cfg, err := e.images.Config(im)
	if err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	anon, err := e.anonymousVolumes(spec, cfg.Config.Volumes)
	ok := false
	defer func() {
		for _, m := range anon {
			if !ok {
				_ = e.RemoveVolume(m.Source)
			}
		}
	}()
	if err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	c := &Container{ID: newID(), Spec: spec, ImageID: im.ID, AnonymousVolumes: anon, Created: time.Now().UTC(), State: StateCreated, Name: spec.Name, Layers: im.Layers}
	if err := resolveProcess(c, cfg.Config); err != nil {
		return Container{}, fmt.Errorf("creating container: %w", err)
	}
	if c.Name == "" {
		c.Name = "c-" + c.ID[:12]
		c.Spec.Name = c.Name
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.ctrs {
		if o.Name == c.Name {
			return Container{}, fmt.Errorf("%w: the name %q is used by container %s", ErrConflict, c.Name, o.ID[:12])
		}
	}
	if err := os.MkdirAll(e.dir(c.ID), 0o700); err != nil {
		return Container{}, fmt.Errorf("creating container %s: %w", c.Name, err)
	}
	if err := e.save(c); err != nil {
		return Container{}, err
	}
	e.ctrs[c.ID] = c
	ok = true
	e.emit(*c, "create")
	e.log.Info("created container", "container", c.Name, "id", c.ID[:12], "image", spec.Image)
	return *c, nil
}

// update changes a container's record under e.mu and saves it.
func (e *Engine) update(id string, fn func(c *Container)) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.ctrs[id]
	if !ok {
		return Container{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	fn(c)
	return *c, e.save(c)
}

// Remove deletes a container, its snapshot and logs. A running one is
// refused unless force, which kills it first. Its volumes stay.
func (e *Engine) Remove(ctx context.Context, ref string, force bool) error {
	return e.RemoveWith(ctx, ref, force, false)
}

// RemoveWith is Remove that, with volumes, also removes the container's
// anonymous volumes (docker rm -v); named volumes and binds stay.
func (e *Engine) RemoveWith(ctx context.Context, ref string, force, volumes bool) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.State == StateRunning {
		if !force {
			return fmt.Errorf("removing %s: %w (stop it first or force)", c.Name, ErrRunning)
		}
		if err := e.Kill(ctx, c.ID, "SIGKILL"); err != nil {
			return err
		}
	}
	e.mu.Lock()
	l := e.live[c.ID]
	e.mu.Unlock()
	if l != nil {
		select {
		case <-l.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m := e.op(c.ID)
	m.Lock()
	defer m.Unlock()
	e.mu.Lock()
	if l := e.live[c.ID]; l != nil {
		l.cancelRestart()
	}
	delete(e.live, c.ID)
	delete(e.ctrs, c.ID)
	e.mu.Unlock()
	if e.cfg.Network != nil {
		if err := e.cfg.Network.Teardown(ctx, c.ID); err != nil {
			e.log.Warn("tearing down network", "container", c.Name, "err", err)
		}
	}
	if err := e.snaps.Remove(c.ID); err != nil {
		return err
	}
	if err := os.RemoveAll(e.dir(c.ID)); err != nil {
		return fmt.Errorf("removing container %s: %w", c.Name, err)
	}
	e.log.Info("removed container", "container", c.Name)
	e.emit(c, "destroy")
	if volumes {
		e.removeAnonymousVolumes(c)
	}
	return nil
}

// LayersInUse lists the diffIDs containers use, so image GC keeps them.
func (e *Engine) LayersInUse() map[string]bool {
	out := map[string]bool{}
	for _, c := range e.List() {
		for _, l := range c.Layers {
			out[l] = true
		}
	}
	return out
}

// RemoveImage untags or removes an image; an image a container uses is
// refused unless force.
func (e *Engine) RemoveImage(ctx context.Context, ref string, force bool) (image.Image, error) {
	im, err := e.images.Get(ref)
	if err != nil {
		return image.Image{}, err
	}
	if !force {
		for _, c := range e.List() {
			if c.ImageID == im.ID && len(im.Names) <= 1 {
				return image.Image{}, fmt.Errorf("removing image %s: %w by container %s", ref, image.ErrInUse, c.Name)
			}
		}
	}
	return e.images.Remove(ref)
}

// GC deletes layers no image or container uses.
func (e *Engine) GC(ctx context.Context) ([]string, error) {
	return e.images.GC(ctx, e.LayersInUse())
}
