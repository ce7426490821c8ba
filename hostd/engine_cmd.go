package hostd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulkhead-os/bulkhead/hostd/dockerapi"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	storagesetup "github.com/bulkhead-os/bulkhead/storage-setup"
)

// EngineOptions are hostd's flags for the embedded engine.
type EngineOptions struct {
	Enabled      bool
	Root         string   // /var/lib/hostd: images, snapshots, containers
	RunDir       string   // /run/hostd: libcontainer state
	Workloads    string   // /etc/hostd/containers
	Insecure     []string // registries reachable over plain HTTP
	AuthFile     string   // docker config.json with registry credentials
	DockerSocket string   // "" for no Docker API
	Bridge       string   // bridge device; "" for no bridge network
	BridgeSubnet string
	// Runtime makes the container runtime (libct.New, handed in by main).
	Runtime runtime.Factory
	// Defaults are the limits of containers that set none.
	Defaults engine.Limits
	// OOMScoreAdj is every container's oom_score_adj.
	OOMScoreAdj int
}

// AddFlags registers the engine flags.
func (o *EngineOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "engine", true, "run the embedded container engine")
	fs.StringVar(&o.Root, "engine-root", "/var/lib/hostd", "engine storage (images, snapshots, containers)")
	fs.StringVar(&o.RunDir, "engine-run", "/run/hostd", "engine runtime state (tmpfs)")
	fs.StringVar(&o.Workloads, "workloads", engine.WorkloadDir, "directory of declared containers (*.yaml)")
	fs.StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP (repeatable)")
	fs.StringVar(&o.AuthFile, "registry-auth", "/etc/hostd/registry-auth.json", "registry credentials (docker config.json format: auths, credHelpers, credsStore)")
	fs.StringVar(&o.DockerSocket, "docker-socket", "", "serve the Docker Engine API subset on this socket (e.g. /run/docker.sock)")
	fs.StringVar(&o.Bridge, "bridge", "hostd0", "bridge device for the default network (\"\" for none)")
	fs.StringVar(&o.BridgeSubnet, "bridge-subnet", "10.88.0.0/16", "subnet of the bridge network")
	fs.StringVar(&o.Defaults.Memory, "container-memory", "", "memory limit of containers that set none (512m, 1g; \"\" for none)")
	fs.Int64Var(&o.Defaults.Pids, "container-pids", engine.DefaultPidsLimit, "pids limit of containers that set none")
	fs.IntVar(&o.OOMScoreAdj, "container-oom-score-adj", 0, "oom_score_adj of containers (hostd's own is lower, so the kernel spares it)")
}

// startEngine opens the engine, registers its routes and health check and
// starts converging the declared workloads. An engine that cannot open is
// reported through the health gate; hostd itself keeps serving.
func startEngine(ctx context.Context, s *Server, root fsroot.Root, o EngineOptions, log *slog.Logger) (*engine.Engine, error) {
	// Every way the engine fails to come up fails the boot health gate
	// too, so a trial boot with a broken engine rolls back instead of
	// passing with containers missing or cut off.
	kc, err := image.LoadConfigKeychain(root.Join(o.AuthFile))
	if err != nil {
		s.AddHealthCheck("engine", func(context.Context) error { return fmt.Errorf("engine did not start: %w", err) })
		return nil, err
	}
	cfg := engine.Config{
		Root: root.Join(o.Root), RunDir: root.Join(o.RunDir), HostRoot: root, Log: log,
		Images:  image.Options{Keychain: kc, Insecure: o.Insecure},
		Seccomp: runtime.SeccompSupported, Runtime: o.Runtime,
		Defaults: o.Defaults, OOMScoreAdj: o.OOMScoreAdj,
	}
	// storage-setup's choices: what the engine cannot honour (another
	// driver, storage options) is refused by name, not silently ignored.
	if err := storagesetup.CheckEngineOptions(root); err != nil {
		err = fmt.Errorf("storage configuration: %w", err)
		s.AddHealthCheck("engine", func(context.Context) error { return fmt.Errorf("engine did not start: %w", err) })
		return nil, err
	}
	if _, err := runtime.ParseMemory(o.Defaults.Memory); err != nil {
		err = fmt.Errorf("--container-memory: %w", err)
		s.AddHealthCheck("engine", func(context.Context) error { return fmt.Errorf("engine did not start: %w", err) })
		return nil, err
	}
	// The default bridge (unless --bridge ""), and user-defined networks.
	mgr := &network.Manager{
		StateDir: filepath.Join(cfg.Root, "networks"), NetnsDir: filepath.Join(cfg.RunDir, "netns"),
		HostRoot: root, Runner: run.Exec{Log: log}, Log: log,
	}
	if o.Bridge != "" {
		mgr.Default = &network.Bridge{
			Name: o.Bridge, Subnet: o.BridgeSubnet, HostRoot: root, Runner: run.Exec{Log: log},
			StateDir: filepath.Join(cfg.Root, "network"), NetnsDir: mgr.NetnsDir,
		}
	}
	if err := mgr.Init(ctx); err != nil {
		log.Warn("bridge networks unavailable: containers default to --network none", "err", err)
		what := "bridge networks"
		if o.Bridge != "" {
			what = "bridge network " + o.Bridge
		}
		s.AddHealthCheck("bridge", func(context.Context) error {
			return fmt.Errorf("%s unavailable (containers run on --network none): %w", what, err)
		})
	} else {
		cfg.Network = mgr
	}
	e, err := engine.New(ctx, cfg)
	if err != nil {
		s.AddHealthCheck("engine", func(context.Context) error { return fmt.Errorf("engine did not start: %w", err) })
		return nil, err
	}
	s.RegisterEngine(e)
	// Record the declared workloads before the API (and so the boot health
	// gate) answers: the gate must not pass before they exist.
	if specs, err := engine.LoadWorkloads(root.Join(o.Workloads)); err == nil {
		e.SetDeclared(specs)
	}
	go e.WatchWorkloads(ctx, root.Join(o.Workloads), 5*time.Second)
	if o.DockerSocket != "" {
		if err := ServeDockerAPI(ctx, e, root.Join(o.DockerSocket), s.cfg.AllowUID, log); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// ServeDockerAPI serves the Docker Engine API subset on a unix socket with
// the same protections as hostd's own (mode 0600, peer uid checked) until
// ctx ends. There is no TCP listener.
func ServeDockerAPI(ctx context.Context, e *engine.Engine, socket string, allowUID int, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	l, err := Listen(socket, allowUID)
	if err != nil {
		return err
	}
	api := &dockerapi.API{E: e, Log: log, Version: Version}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving the Docker API", "socket", socket)
	return nil
}

// hostShuttingDown says whether systemd is taking the host down (not just
// restarting hostd): `systemctl is-system-running` says "stopping" then.
// It exits non-zero in every state but running, so its output decides.
func hostShuttingDown(ctx context.Context, r run.Runner) bool {
	out, _ := r.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"is-system-running"}})
	return strings.TrimSpace(string(out)) == "stopping"
}

// shutdownTimeout bounds the graceful stop of all containers at host
// shutdown; hostd.service's TimeoutStopSec must be longer.
const shutdownTimeout = 60 * time.Second

// closeEngine ends hostd's engine when hostd stops. On a host going down,
// the containers are stopped first, gracefully (each its stop signal, then
// SIGKILL after engine.DefaultStopTimeout), while their shims still run;
// a restart of hostd alone leaves them running under their shims.
func closeEngine(e *engine.Engine, r run.Runner, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if hostShuttingDown(ctx, r) {
		log.Info("host shutting down: stopping containers")
		if err := e.Shutdown(ctx, engine.DefaultStopTimeout); err != nil {
			log.Warn("stopping containers at shutdown", "err", err)
		}
	}
	e.Close()
}
