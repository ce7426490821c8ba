package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// resolveProcess fills c's argv, env, cwd and user from the image config
// and the spec, the way Docker does: a spec entrypoint drops the image's
// cmd; env from the spec overrides the image's by name.
func resolveProcess(c *Container, img v1.Config) error {
	s := c.Spec
	entry, cmd := img.Entrypoint, img.Cmd
	if len(s.Entrypoint) > 0 {
		entry, cmd = s.Entrypoint, nil
	}
	if len(s.Command) > 0 {
		cmd = s.Command
	}
	c.Args = append(append([]string(nil), entry...), cmd...)
	if len(c.Args) == 0 {
		return fmt.Errorf("image %s has no command and none was given", s.Image)
	}
	c.Env = mergeEnv(img.Env, s.Env)
	c.Cwd = s.Workdir
	if c.Cwd == "" {
		c.Cwd = img.WorkingDir
	}
	c.User = s.User
	if c.User == "" {
		c.User = img.User
	}
	if img.StopSignal != "" {
		if _, err := parseSignal(img.StopSignal); err != nil {
			return fmt.Errorf("image %s: STOPSIGNAL: %w", s.Image, err)
		}
		c.StopSignal = img.StopSignal
	}
	seen := map[string]bool{}
	for _, x := range append(slices.Sorted(maps.Keys(img.ExposedPorts)), s.Expose...) {
		p, err := ParseExpose(x)
		if err != nil {
			continue // an image's odd EXPOSE (a range) is not published
		}
		k := fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)
		if !seen[k] {
			seen[k] = true
			c.Exposed = append(c.Exposed, k)
		}
	}
	return nil
}

// mergeEnv overlays KEY=VALUE lists, later ones winning, keeping order.
func mergeEnv(lists ...[]string) []string {
	var out []string
	idx := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	if _, ok := idx["PATH"]; !ok {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return out
}

// Start starts a created or exited container under a new shim.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	m := e.op(c.ID)
	m.Lock()
	defer m.Unlock()
	return e.start(ctx, c.ID, true)
}

// start does Start with the op lock held. byUser clears a user's stop.
func (e *Engine) start(ctx context.Context, id string, byUser bool) error {
	c, err := e.Get(id)
	if err != nil {
		return err
	}
	if c.State == StateRunning {
		return nil
	}
	e.mu.Lock()
	if l := e.live[id]; l != nil {
		l.cancelRestart()
	}
	e.mu.Unlock()
	if byUser && (c.Stopped || c.RestartCount != 0 || c.Backoff != 0) {
		// A user's start clears their stop and, as dockerd's, begins the
		// policy's count and backoff again.
		if c, err = e.update(id, func(x *Container) { x.Stopped, x.RestartCount, x.Backoff = false, 0, 0 }); err != nil {
			return err
		}
	}
	if err := e.launch(ctx, &c); err != nil {
		_, _ = e.update(id, func(x *Container) {
			x.State, x.Error, x.ExitCode, x.FinishedAt = StateExited, err.Error(), -1, time.Now().UTC()
			x.Ports = nil
		})
		e.cleanup(ctx, id)
		return fmt.Errorf("starting %s: %w", c.Name, err)
	}
	return nil
}

// launch prepares the rootfs, network, spec and shim, and records the
// container as running.
func (e *Engine) launch(ctx context.Context, c *Container) error {
	lowers := make([]string, len(c.Layers))
	for i, l := range c.Layers {
		lowers[i] = e.images.LayerDir(l)
		if _, err := os.Stat(lowers[i]); err != nil {
			return fmt.Errorf("layer %s of the image is gone: %w", l, err)
		}
	}
	rootfs, err := e.snaps.Mount(c.ID, lowers)
	if err != nil {
		return err
	}
	uid, gid, groups, home, err := resolveUser(rootfs, c.User)
	if err != nil {
		return err
	}
	in := runtime.SpecInput{
		ID: c.ID, Rootfs: rootfs, Args: c.Args, Cwd: c.Cwd, UID: uid, GID: gid, Groups: groups,
		Hostname: c.hostname(), ReadOnly: c.Spec.ReadOnly, Seccomp: e.cfg.Seccomp,
		Env:         mergeEnv(c.Env, []string{"HOSTNAME=" + c.hostname()}, homeEnv(c.Env, home)),
		CgroupsPath: e.cgroups.specPath(c.ID), Terminal: c.Spec.Tty, OOMScoreAdj: e.cfg.OOMScoreAdj,
	}
	if c.Spec.Tty {
		// Docker's: a terminal's programs need a TERM; the image's or
		// the user's wins.
		in.Env = mergeEnv([]string{"TERM=xterm"}, in.Env)
	}
	if in.Limits, err = e.limits(c.Spec.Limits); err != nil {
		return err
	}
	if in.Caps, err = c.Spec.caps(); err != nil {
		return err
	}
	if err := c.Spec.HostOptions.apply(&in, e.cfg.InitBinary); err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	network := c.network(e.hasBridge())
	ip := ""
	var ports []Port
	switch network {
	case runtime.NetworkHost, runtime.NetworkNone:
		in.Network = network
	default:
		if e.cfg.Network == nil {
			return fmt.Errorf("network %s: bridge networking is not available on this host", network)
		}
		if ports, err = e.publish(c); err != nil {
			return err
		}
		in.Network, ip, err = e.cfg.Network.Setup(ctx, c.attachment(network, ports))
		if err != nil {
			return err
		}
	}
	etc, err := e.writeEtc(c, network, ip)
	if err != nil {
		return err
	}
	in.Mounts = etc
	mounts, err := e.volumeMounts(c, rootfs)
	if err != nil {
		return err
	}
	in.Mounts = append(in.Mounts, mounts...)
	spec, err := runtime.BuildSpec(in)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := fsroot.WriteTransient(filepath.Join(e.dir(c.ID), shim.SpecFile), b, 0o600); err != nil {
		return err
	}
	st, cmd, err := e.spawnShim(ctx, c)
	if err != nil {
		return err
	}
	l := &liveState{exited: make(chan struct{})}
	e.mu.Lock()
	if old := e.live[c.ID]; old != nil {
		old.cancelProbes()
	}
	e.live[c.ID] = l
	e.mu.Unlock()
	health := ""
	if c.Spec.Healthcheck != nil {
		health = HealthStarting
	}
	if _, err := e.update(c.ID, func(x *Container) {
		x.State, x.Pid, x.ShimPid, x.StartedAt, x.Error, x.IP, x.Health = StateRunning, st.Pid, st.ShimPid, st.StartedAt, "", ip, health
		x.OOMKilled = false
		x.Ports = ports
	}); err != nil {
		return err
	}
	e.emit(*c, "start") // before watch: a quick exit's die comes after it
	e.watch(c.ID, st.ShimPid, cmd, l)
	e.watchOOM(c.ID, l)
	e.startProbe(c.ID, l)
	e.log.Info("started container", "container", c.Name, "pid", st.Pid)
	return nil
}

// limits are the runtime limits for a spec's: each the spec leaves unset
// is the engine's default.
func (e *Engine) limits(l Limits) (runtime.Limits, error) {
	d := e.cfg.Defaults
	if l.Memory == "" {
		l.Memory = d.Memory
	}
	if l.CPUs == 0 {
		l.CPUs = d.CPUs
	}
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	if l.Pids == 0 {
		l.Pids = DefaultPidsLimit
	}
	mem, err := runtime.ParseMemory(l.Memory)
	if err != nil {
		return runtime.Limits{}, fmt.Errorf("limits.memory: %w", err)
	}
	swap, err := parseSwap(l.MemorySwap)
	if err != nil {
		return runtime.Limits{}, fmt.Errorf("limits.memorySwap: %w", err)
	}
	res, err := runtime.ParseMemory(l.MemoryReservation)
	if err != nil {
		return runtime.Limits{}, fmt.Errorf("limits.memoryReservation: %w", err)
	}
	return runtime.Limits{
		MemoryBytes: mem, CPUs: l.CPUs, Pids: l.Pids, MemorySwap: swap, MemoryReservation: res,
		CPUShares: uint64(max(l.CPUShares, 0)), CPUQuota: l.CPUQuota, CPUPeriod: uint64(max(l.CPUPeriod, 0)),
		CpusetCpus: l.CpusetCpus, CpusetMems: l.CpusetMems,
	}, nil
}

func (c *Container) hostname() string {
	if c.Spec.Hostname != "" {
		return c.Spec.Hostname
	}
	return c.ID[:12]
}

// network is the container's network mode; the default is the bridge when
// the host has one.
func (c *Container) network(haveBridge bool) string {
	if c.Spec.Network != "" {
		return c.Spec.Network
	}
	if haveBridge {
		return NetworkBridge
	}
	return runtime.NetworkNone
}

func homeEnv(env []string, home string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			return nil
		}
	}
	if home == "" {
		home = "/"
	}
	return []string{"HOME=" + home}
}

// resolveUser looks user[:group] up in the container's /etc/passwd and
// /etc/group. Both files belong to the container, which may have replaced
// them with anything: they are opened beneath the rootfs (a symlink cannot
// lead to a host file), only when they are regular files (a FIFO would
// block hostd forever, a device node would make host root open a host
// device), without blocking and read up to maxUserDB bytes.
func resolveUser(rootfs, spec string) (uid, gid uint32, groups []uint32, home string, err error) {
	if spec == "" {
		spec = "0"
	}
	passwd, err := readUserDB(rootfs, "etc/passwd")
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("resolving user %q: %w", spec, err)
	}
	group, err := readUserDB(rootfs, "etc/group")
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("resolving user %q: %w", spec, err)
	}
	defaults := &user.ExecUser{Home: "/"}
	u, err := user.GetExecUser(spec, defaults, passwd, group)
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("resolving user %q: %w", spec, err)
	}
	for _, g := range u.Sgids {
		if g != u.Gid {
			groups = append(groups, uint32(g))
		}
	}
	return uint32(u.Uid), uint32(u.Gid), groups, u.Home, nil
}

// maxUserDB bounds what hostd reads of a container's passwd or group file:
// far above any real one, small enough that a container cannot make hostd
// read without end.
const maxUserDB = 4 << 20

// readUserDB returns the container's file rel as a reader for
// user.GetExecUser, nil when the container has none (a numeric user still
// resolves), or an error naming the file when it is not a regular file or
// is too big.
func readUserDB(rootfs, rel string) (io.Reader, error) {
	rfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the container's root %s: %w", rootfs, err)
	}
	defer unix.Close(rfd)
	// O_PATH opens nothing: the file's type is checked before any open
	// that a FIFO or a device would act on.
	pfd, err := unix.Openat2(rfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the container's /%s: %w", rel, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, fmt.Errorf("checking the container's /%s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("the container's /%s is a %s, not a regular file", rel, fileType(st.Mode))
	}
	if st.Size > maxUserDB {
		return nil, fmt.Errorf("the container's /%s is %d bytes, more than the %d hostd reads", rel, st.Size, maxUserDB)
	}
	// Reopening the O_PATH descriptor opens the inode just checked, not
	// the path again (which the container could swap meanwhile).
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the container's /%s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUserDB+1))
	if err != nil {
		return nil, fmt.Errorf("reading the container's /%s: %w", rel, err)
	}
	if len(b) > maxUserDB {
		return nil, fmt.Errorf("the container's /%s grew past the %d bytes hostd reads", rel, maxUserDB)
	}
	return bytes.NewReader(b), nil
}

// fileType names a stat mode's file type for errors.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFDIR:
		return "directory"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// writeEtc writes the container's /etc/hosts, /etc/hostname and
// /etc/resolv.conf and returns their bind mounts.
func (e *Engine) writeEtc(c *Container, network, ip string) ([]runtime.Mount, error) {
	if network == runtime.NetworkHost {
		return e.hostEtc(c)
	}
	hn := c.hostname()
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip != "" {
		hosts += ip + "\t" + hn + "\n"
	} else {
		hosts += "127.0.1.1\t" + hn + "\n"
	}
	resolv := []byte(nil)
	if network != runtime.NetworkNone && e.cfg.Network != nil {
		resolv = e.cfg.Network.DNS(network)
	}
	hostsFile, resolv := c.Spec.etcFiles([]byte(hosts), resolv)
	files := map[string][]byte{"hosts": hostsFile, "hostname": []byte(hn + "\n"), "resolv.conf": resolv}
	var mounts []runtime.Mount
	for _, n := range []string{"hosts", "hostname", "resolv.conf"} {
		p := filepath.Join(e.dir(c.ID), n)
		if err := fsroot.WriteTransient(p, files[n], 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, runtime.Mount{Source: p, Destination: "/etc/" + n})
	}
	return mounts, nil
}

// hostEtc gives a --network host container copies of the host's
// resolv.conf, hosts and hostname, as Docker does: the image's own would
// name servers and addresses of some other network. Copies, so the
// container cannot change the host's files; a file the host lacks is left
// to the image.
func (e *Engine) hostEtc(c *Container) ([]runtime.Mount, error) {
	var mounts []runtime.Mount
	for _, n := range []string{"resolv.conf", "hosts", "hostname"} {
		b, err := os.ReadFile(e.cfg.HostRoot.Join("/etc", n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the host's /etc/%s for a host-network container: %w", n, err)
		}
		p := filepath.Join(e.dir(c.ID), n)
		if err := fsroot.WriteTransient(p, b, 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, runtime.Mount{Source: p, Destination: "/etc/" + n})
	}
	return mounts, nil
}

// spawnShim starts the shim (hostd-shim) for id in its own session (so it outlives
// hostd) and waits for its report: the container runs, or the error.
func (e *Engine) spawnShim(ctx context.Context, c *Container) (shim.State, *exec.Cmd, error) {
	id := c.ID
	cfg := shim.Config{ID: id, Dir: e.dir(id), StateRoot: filepath.Join(e.cfg.RunDir, "runc"),
		LogMax: e.cfg.LogMax, LogFiles: e.cfg.LogFiles, Tty: c.Spec.Tty, Stdin: c.Spec.OpenStdin, StdinOnce: c.Spec.StdinOnce}
	if c.Spec.Log.MaxSize != "" {
		n, err := ParseLogSize(c.Spec.Log.MaxSize)
		if err != nil {
			return shim.State{}, nil, err
		}
		cfg.LogMax = n
	}
	if c.Spec.Log.MaxFile > 0 {
		cfg.LogFiles = c.Spec.Log.MaxFile
	}
	if cfg.LogMax == 0 {
		cfg.LogMax = 10 << 20
	}
	if cfg.LogFiles == 0 {
		cfg.LogFiles = 3
	}
	r, w, err := os.Pipe()
	if err != nil {
		return shim.State{}, nil, err
	}
	defer r.Close()
	logf, err := os.OpenFile(filepath.Join(e.dir(id), "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		w.Close()
		return shim.State{}, nil, err
	}
	defer logf.Close()
	args := append(append([]string(nil), e.cfg.ShimCommand[1:]...), cfg.Args()...)
	// Not CommandContext: the shim must outlive the request that made it.
	cmd := exec.Command(e.cfg.ShimCommand[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = e.dir(id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return shim.State{}, nil, fmt.Errorf("starting shim: %w", err)
	}
	w.Close()
	line, rerr := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if rerr != nil || line != "ok" {
		_ = cmd.Wait()
		if line == "" {
			b, _ := os.ReadFile(filepath.Join(e.dir(id), "shim.log"))
			line = "shim exited: " + strings.TrimSpace(string(b))
		}
		return shim.State{}, nil, errors.New(line)
	}
	st, err := shim.ReadState(e.dir(id))
	if err != nil {
		return shim.State{}, nil, fmt.Errorf("reading shim state: %w", err)
	}
	return st, cmd, nil
}

// watch waits for the shim to exit, then records the exit and applies the
// restart policy. cmd is nil for a shim adopted after a hostd restart: it
// is not hostd's child, so a pidfd tells when it is gone.
func (e *Engine) watch(id string, shimPid int, cmd *exec.Cmd, l *liveState) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if cmd != nil {
			waited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(waited) }()
			select {
			case <-waited:
			case <-e.done:
				return
			}
		} else if !waitPid(shimPid, e.done) {
			return
		}
		e.exited(id, l)
	}()
}

// waitPid waits until pid is gone; false if stop came first.
func waitPid(pid int, stop <-chan struct{}) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // already gone
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 200)
		if n > 0 {
			return true
		}
		select {
		case <-stop:
			return false
		default:
		}
	}
}

// exited records a container's exit (from exit.json), tears down what
// start set up and schedules a restart by policy.
func (e *Engine) exited(id string, l *liveState) {
	ex, err := shim.ReadExit(e.dir(id))
	if err != nil {
		ex = shim.Exit{Code: -1, FinishedAt: time.Now().UTC(), Error: "the shim ended without recording an exit"}
	}
	e.endProbes(l)
	oom := l.oomKilled.Load() || e.oomKills(id) > 0 // before cleanup removes the cgroup
	e.cleanup(context.Background(), id)
	c, uerr := e.update(id, func(x *Container) {
		x.State, x.ExitCode, x.FinishedAt, x.Error, x.Pid, x.ShimPid = StateExited, ex.Code, ex.FinishedAt, ex.Error, 0, 0
		x.OOMKilled = oom
		x.Ports = nil
		if x.Health != "" {
			x.Health = HealthUnhealthy
		}
	})
	if uerr == nil {
		e.emit(c, "die") // before waiters learn of the exit: die comes before stop
	}
	l.code = ex.Code
	close(l.exited)
	e.mu.Lock()
	for _, ch := range e.waiters[id] {
		ch <- ex.Code
	}
	delete(e.waiters, id)
	e.mu.Unlock()
	if uerr != nil {
		return // removed meanwhile
	}
	e.log.Info("container exited", "container", c.Name, "code", ex.Code)
	if c.Spec.AutoRemove {
		go func() {
			// Let attached readers finish the last lines (bounded: 5 s).
			// They are woken by the exit, so this is short: look often.
			for i := 0; i < 1000 && e.readerCount(id) > 0; i++ {
				time.Sleep(5 * time.Millisecond)
			}
			_ = e.RemoveWith(context.Background(), id, false, true)
		}()
		return
	}
	e.maybeRestart(c, l)
}

// cleanup undoes a start: the runtime's leftovers, the network, the mount.
func (e *Engine) cleanup(ctx context.Context, id string) {
	_ = e.rt.Destroy(id)
	if e.cfg.Network != nil {
		_ = e.cfg.Network.Teardown(ctx, id)
	}
	if err := e.snaps.Unmount(id); err != nil {
		e.log.Warn("unmounting snapshot", "id", id, "err", err)
	}
}

// Backoff bounds: Docker's, doubling from 100 ms, reset after a run of 10 s.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = time.Minute
)

// backoffReset is the run after which the backoff starts again (a
// variable for tests).
var backoffReset = 10 * time.Second

// NextBackoff is the wait before a policy restart, after one of prev
// (0: none yet) and a run of ran: Docker's restart manager's, doubling
// from 100 ms up to a minute and back to 100 ms after a run of 10 s.
func NextBackoff(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= backoffReset {
		return backoffMin
	}
	return min(prev*2, backoffMax)
}

// ShouldRestart says whether policy p restarts a container that exited
// with code after restarts restarts; stopped is a user's stop.
func ShouldRestart(p RestartPolicy, code, restarts int, stopped bool) bool {
	if stopped {
		return false
	}
	switch p.Name {
	case RestartAlways, RestartUnlessStopped:
		return true
	case RestartOnFailure:
		return code != 0 && (p.MaxRetries == 0 || restarts < p.MaxRetries)
	}
	return false
}

func (e *Engine) maybeRestart(c Container, l *liveState) {
	p, _ := ParseRestart(c.Spec.Restart)
	if e.closed() || e.shuttingDown.Load() || !ShouldRestart(p, c.ExitCode, c.RestartCount, c.Stopped) {
		return
	}
	d := NextBackoff(c.Backoff, c.FinishedAt.Sub(c.StartedAt))
	e.mu.Lock()
	defer e.mu.Unlock()
	l.restarting = true
	l.timer = time.AfterFunc(d, func() {
		e.mu.Lock()
		l.restarting = false
		e.mu.Unlock()
		if e.closed() {
			return
		}
		m := e.op(c.ID)
		m.Lock()
		defer m.Unlock()
		cur, err := e.Get(c.ID)
		if err != nil || cur.State == StateRunning || cur.Stopped {
			return
		}
		if _, err := e.update(c.ID, func(x *Container) {
			x.RestartCount++
			x.Backoff = d
		}); err != nil {
			return
		}
		if err := e.start(context.Background(), c.ID, false); err != nil {
			e.log.Warn("restarting container", "container", c.Name, "err", err)
			// A failed start counts as an exit: try again later.
			if cur, err := e.Get(c.ID); err == nil {
				e.maybeRestart(cur, l)
			}
		}
	})
}

// signalNames maps the names Docker's API uses.
var signalNames = map[string]syscall.Signal{
	"SIGKILL": syscall.SIGKILL, "KILL": syscall.SIGKILL, "9": syscall.SIGKILL,
	"SIGTERM": syscall.SIGTERM, "TERM": syscall.SIGTERM, "15": syscall.SIGTERM,
	"SIGINT": syscall.SIGINT, "INT": syscall.SIGINT, "2": syscall.SIGINT,
	"SIGHUP": syscall.SIGHUP, "HUP": syscall.SIGHUP, "1": syscall.SIGHUP,
	"SIGUSR1": syscall.SIGUSR1, "USR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2, "USR2": syscall.SIGUSR2,
	"SIGQUIT": syscall.SIGQUIT, "QUIT": syscall.SIGQUIT,
}

// parseSignal reads a signal name (SIGTERM, TERM) or number as Docker's
// API and images' STOPSIGNAL give it.
func parseSignal(sig string) (syscall.Signal, error) {
	if s, ok := signalNames[strings.ToUpper(sig)]; ok {
		return s, nil
	}
	if n, err := strconv.Atoi(sig); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q", sig)
}

// stopSignal is the signal that asks c to stop: the one given at create
// (--stop-signal), else the image's STOPSIGNAL, else SIGTERM, as Docker.
func (c *Container) stopSignal() syscall.Signal {
	if c.Spec.StopSignal != "" {
		if s, err := c.Spec.stopSignal(); err == nil { // validated at create
			return s
		}
	}
	if s, err := parseSignal(c.StopSignal); err == nil {
		return s
	}
	return syscall.SIGTERM
}

// Kill sends a signal (name or number; "" is SIGKILL) to the container's
// init; SIGKILL or its stop signal marks it stopped by the user.
func (e *Engine) Kill(ctx context.Context, ref, sig string) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if sig == "" {
		sig = "SIGKILL"
	}
	s, err := parseSignal(sig)
	if err != nil {
		return fmt.Errorf("killing %s: %w", c.Name, err)
	}
	if c.State != StateRunning {
		return fmt.Errorf("killing %s: %w", c.Name, errors.New("container is not running"))
	}
	if s == syscall.SIGKILL {
		e.stopProbes(c.ID)
	}
	if s == syscall.SIGKILL || s == c.stopSignal() {
		// A user's stop. Another signal (HUP to reload, USR1 to dump) is
		// not: a process it ends is restarted as its policy says, and
		// unless-stopped still brings it back at boot (dockerd marks it
		// stopped for any signal, moby#41302).
		if _, err := e.update(c.ID, func(x *Container) { x.Stopped = true }); err != nil {
			return err
		}
	}
	if err := e.rt.Signal(c.ID, s); err != nil {
		return err
	}
	return nil
}

// Stop sends the container's stop signal (SIGTERM unless its image names
// another), waits up to timeout, then SIGKILL, and waits for the exit to be
// recorded.
func (e *Engine) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if _, err := e.update(c.ID, func(x *Container) { x.Stopped = true }); err != nil {
		return err
	}
	return e.stopEvent(e.stop(ctx, c, timeout), c)
}

// DefaultStopTimeout is Docker's: how long a stop waits before SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// Shutdown stops every running container, all at once, each with its stop
// signal and up to timeout before SIGKILL, for a host going down: the
// containers end cleanly before the shims are killed. Unlike Stop it does
// not mark them stopped by a user, so their restart policies bring them
// back at the next boot; until then no policy restarts them.
func (e *Engine) Shutdown(ctx context.Context, timeout time.Duration) error {
	e.shuttingDown.Store(true)
	var wg sync.WaitGroup
	errs := make(chan error, len(e.List()))
	for _, c := range e.List() {
		if c.State != StateRunning {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.stop(ctx, c, timeout); err != nil {
				errs <- fmt.Errorf("stopping %s: %w", c.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// stop signals c to stop and waits as Stop describes.
func (e *Engine) stop(ctx context.Context, c Container, timeout time.Duration) error {
	e.mu.Lock()
	l := e.live[c.ID]
	if l != nil {
		l.cancelRestart()
	}
	e.mu.Unlock()
	if c.State != StateRunning || l == nil {
		return nil
	}
	e.stopProbes(c.ID)
	_ = e.rt.Signal(c.ID, c.stopSignal())
	select {
	case <-l.exited:
		return nil
	case <-time.After(timeout):
	case <-ctx.Done():
		return ctx.Err()
	}
	_ = e.rt.Signal(c.ID, syscall.SIGKILL)
	select {
	case <-l.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until the container is not running and returns its exit
// code.
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return -1, err
	}
	e.mu.Lock()
	l := e.live[c.ID]
	e.mu.Unlock()
	if c.State == StateRunning && l != nil {
		select {
		case <-l.exited:
			// From the run itself: an --rm container may be gone already.
			return l.code, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	return c.ExitCode, nil
}

func (e *Engine) readerCount(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readers[id]
}

// addWaiter registers for the code of id's next exit.
func (e *Engine) addWaiter(id string) chan int {
	ch := make(chan int, 1)
	e.mu.Lock()
	e.waiters[id] = append(e.waiters[id], ch)
	e.mu.Unlock()
	return ch
}

// NextExit registers for the container's next exit (not one that already
// happened): the channel gets its code. cancel drops the registration.
// Registering before a start means even a run that ends at once is seen.
func (e *Engine) NextExit(ref string) (ch <-chan int, cancel func(), err error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	w := e.addWaiter(c.ID)
	return w, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		ws := e.waiters[c.ID]
		for i, x := range ws {
			if x == w {
				e.waiters[c.ID] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
	}, nil
}

// WaitNext waits for the container's next exit and returns its code
// (Docker's wait condition next-exit).
func (e *Engine) WaitNext(ctx context.Context, ref string) (int, error) {
	ch, cancel, err := e.NextExit(ref)
	if err != nil {
		return -1, err
	}
	defer cancel()
	select {
	case code := <-ch:
		return code, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// reattach adopts containers whose shims survived a hostd restart, records
// the exits that happened meanwhile, and starts always/unless-stopped
// containers that are not running (as Docker does on daemon start).
func (e *Engine) reattach(ctx context.Context) {
	for _, c := range e.List() {
		if c.State == StateRunning {
			st, err := shim.ReadState(e.dir(c.ID))
			l := &liveState{exited: make(chan struct{})}
			e.mu.Lock()
			e.live[c.ID] = l
			e.mu.Unlock()
			// An exit the shim recorded is final, even while the shim
			// is still on its way out.
			_, exitErr := os.Stat(filepath.Join(e.dir(c.ID), shim.ExitFile))
			if err == nil && errors.Is(exitErr, os.ErrNotExist) && shimAlive(st.ShimPid, c.ID) {
				e.log.Info("re-attached to container", "container", c.Name, "pid", st.Pid)
				e.watch(c.ID, st.ShimPid, nil, l)
				e.startProbe(c.ID, l)
				continue
			}
			e.exited(c.ID, l)
			continue
		}
		p, _ := ParseRestart(c.Spec.Restart)
		if (p.Name == RestartAlways || (p.Name == RestartUnlessStopped && !c.Stopped)) && c.State == StateExited {
			if err := e.Start(ctx, c.ID); err != nil {
				e.log.Warn("starting container at engine start", "container", c.Name, "err", err)
			}
		}
	}
}

// shimAlive checks that pid is still the shim of id (pids are reused).
func shimAlive(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "\x00"+id+"\x00") && strings.Contains(string(b), "shim")
}
