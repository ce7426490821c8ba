package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

// maxCreateBody bounds a create request (a few KB in practice).
const maxCreateBody = 4 << 20

// createBody is the part of POST /containers/create that hostd honours.
type createBody struct {
	Hostname     string
	User         string
	Env          []string
	Cmd          []string
	Entrypoint   []string
	Image        string
	WorkingDir   string
	Tty          bool
	OpenStdin    bool
	StdinOnce    bool
	ExposedPorts map[string]struct{}
	Labels       map[string]string
	StopSignal   string
	StopTimeout  *int
	Healthcheck  *struct {
		Test        []string
		Interval    int64
		Timeout     int64
		StartPeriod int64
		Retries     int
	}
	// Volumes are anonymous volumes' paths (-v /data).
	Volumes    map[string]struct{}
	HostConfig struct {
		Binds        []string
		PortBindings map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string
		}
		RestartPolicy struct {
			Name              string
			MaximumRetryCount int
		}
		AutoRemove      bool
		PublishAllPorts bool
		NetworkMode     string
		Memory          int64
		NanoCpus        int64
		PidsLimit       *int64
		ReadonlyRootfs  bool
		CapAdd          []string
		CapDrop         []string
		DNS             []string `json:"Dns"`
		DNSSearch       []string `json:"DnsSearch"`
		DNSOptions      []string `json:"DnsOptions"`
		ExtraHosts      []string
		Mounts          []mountBody
		Tmpfs           map[string]string
		LogConfig       struct {
			Type   string
			Config map[string]string
		}
		hostOptionsBody
	}
	NetworkingConfig struct {
		EndpointsConfig map[string]struct{ Aliases []string }
	}
}

// toSpec maps a create body onto hostd's container spec.
func (b createBody) toSpec(name string) (engine.ContainerSpec, error) {
	s := engine.ContainerSpec{
		Name: name, Image: b.Image, Command: b.Cmd, Entrypoint: b.Entrypoint, Env: b.Env,
		Workdir: b.WorkingDir, User: b.User, Hostname: b.Hostname, Volumes: b.HostConfig.Binds,
		AutoRemove: b.HostConfig.AutoRemove, ReadOnly: b.HostConfig.ReadonlyRootfs,
		OpenStdin: b.OpenStdin, StdinOnce: b.OpenStdin && b.StdinOnce, Tty: b.Tty, PublishAll: b.HostConfig.PublishAllPorts,
		Expose: sortedKeys(b.ExposedPorts), Labels: b.Labels,
		ProcessOptions: engine.ProcessOptions{
			CapAdd: b.HostConfig.CapAdd, CapDrop: b.HostConfig.CapDrop, StopSignal: b.StopSignal, StopTimeout: b.StopTimeout,
			DNS: b.HostConfig.DNS, DNSSearch: b.HostConfig.DNSSearch, DNSOptions: b.HostConfig.DNSOptions, ExtraHosts: b.HostConfig.ExtraHosts,
		},
	}
	h := b.HostConfig
	h.hostOptionsBody.apply(&s)
	switch h.NetworkMode {
	case "", "default":
	default:
		s.Network = h.NetworkMode
	}
	for n, ep := range b.NetworkingConfig.EndpointsConfig {
		if s.Networks == nil {
			s.Networks = map[string]engine.EndpointSpec{}
		}
		s.Networks[n] = engine.EndpointSpec{Aliases: ep.Aliases}
	}
	for _, cport := range sortedKeys(h.PortBindings) {
		num, proto, _ := strings.Cut(cport, "/")
		if proto == "" {
			proto = "tcp"
		}
		for _, hb := range h.PortBindings[cport] {
			// An empty host port (-p 80, -p 127.0.0.1::80) is a random one.
			p := hb.HostPort + ":" + num + "/" + proto
			if hb.HostIP != "" && hb.HostIP != "0.0.0.0" {
				p = hb.HostIP + ":" + p
			}
			s.Ports = append(s.Ports, p)
		}
	}
	if rp := h.RestartPolicy; rp.Name != "" && rp.Name != "no" {
		s.Restart = restartString(rp.Name, rp.MaximumRetryCount)
	}
	if h.Memory > 0 {
		s.Limits.Memory = strconv.FormatInt(h.Memory, 10)
	}
	if h.NanoCpus > 0 {
		s.Limits.CPUs = float64(h.NanoCpus) / 1e9
	}
	if h.PidsLimit != nil && *h.PidsLimit > 0 {
		s.Limits.Pids = *h.PidsLimit
	}
	if hc := b.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		cmd := engine.Command(hc.Test[1:])
		if hc.Test[0] == "CMD-SHELL" {
			cmd = engine.Command{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
		}
		s.Healthcheck = &engine.Healthcheck{Command: cmd, Interval: engine.Duration(hc.Interval), Timeout: engine.Duration(hc.Timeout),
			StartPeriod: engine.Duration(hc.StartPeriod), Retries: hc.Retries}
	}
	if err := b.storage(&s); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// restartString is the engine's form of a Docker restart policy:
// on-failure:3, always.
func restartString(name string, maxRetries int) string {
	if name == engine.RestartOnFailure && maxRetries > 0 {
		return name + ":" + strconv.Itoa(maxRetries)
	}
	return name
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCreateBody))
	if err != nil {
		apiError(w, fmt.Errorf("reading the create request: %w", err))
		return
	}
	var b createBody
	if err := json.Unmarshal(body, &b); err != nil {
		apiError(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	unsupported, err := unsupportedOptions(body)
	if err != nil {
		apiError(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	if len(unsupported) > 0 {
		apiError(w, unsupportedError(unsupported))
		return
	}
	spec, err := b.toSpec(strings.TrimPrefix(r.URL.Query().Get("name"), "/"))
	if err != nil {
		apiError(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	if _, err := a.E.Images().Get(spec.Image); err != nil {
		// The CLI pulls on a 404 and tries again.
		apiError(w, fmt.Errorf("%w: No such image: %s", image.ErrNotFound, spec.Image))
		return
	}
	if err := a.createVolumes(spec); err != nil {
		apiError(w, err)
		return
	}
	c, err := a.E.Create(r.Context(), spec)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"Id": c.ID, "Warnings": []string{}})
}

func (a *API) inspect(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	out := inspectJSON(c, a.E.VolumeMountpoint)
	out["NetworkSettings"].(map[string]any)["Networks"] = a.containerNetworks(c)
	st := out["State"].(map[string]any)
	st["Status"] = a.stateOf(c)
	st["Paused"], st["Restarting"] = st["Status"] == "paused", st["Status"] == "restarting"
	live := a.E.Live(c.ID)
	if h, ok := st["Health"].(map[string]any); ok {
		log := make([]map[string]any, len(live.Health.Log))
		for i, r := range live.Health.Log {
			log[i] = map[string]any{"Start": rfc(r.Start), "End": rfc(r.End), "ExitCode": r.ExitCode, "Output": r.Output}
		}
		h["FailingStreak"], h["Log"] = live.Health.FailingStreak, log
	}
	writeJSON(w, http.StatusOK, out)
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.Format(time.RFC3339Nano)
}

// inspectJSON is GET /containers/{id}/json's body; volumePath gives a
// volume's host directory.
func inspectJSON(c engine.Container, volumePath func(string) string) map[string]any {
	state := map[string]any{
		"Status": c.State, "Running": c.State == engine.StateRunning, "Paused": false, "Restarting": false,
		"OOMKilled": c.OOMKilled, "Dead": false, "Pid": c.Pid, "ExitCode": c.ExitCode, "Error": c.Error,
		"StartedAt": rfc(c.StartedAt), "FinishedAt": rfc(c.FinishedAt),
	}
	if c.Health != "" {
		state["Health"] = map[string]any{"Status": c.Health, "FailingStreak": 0, "Log": []any{}}
	}
	path, args := "", []string{}
	if len(c.Args) > 0 {
		path, args = c.Args[0], c.Args[1:]
	}
	// Docker's shape: exposed ports map to null, published ones to their
	// bindings (`docker port` reads this).
	portMap := map[string]any{}
	for _, x := range c.Exposed {
		portMap[x] = nil
	}
	bindings := map[string][]map[string]string{}
	for _, p := range ports(c) {
		k := fmt.Sprintf("%d/%s", p.PrivatePort, p.Type)
		bindings[k] = append(bindings[k], map[string]string{"HostIp": p.IP, "HostPort": strconv.Itoa(p.PublicPort)})
		portMap[k] = bindings[k]
	}
	exposed := map[string]struct{}{}
	for _, x := range c.Exposed {
		exposed[x] = struct{}{}
	}
	rp := c.Spec.Restart
	if rp == "" {
		rp = "no"
	}
	name, count, _ := strings.Cut(rp, ":")
	n, _ := strconv.Atoi(count)
	hostConfig := map[string]any{
		"Binds": c.Spec.Volumes, "NetworkMode": c.Spec.Network, "AutoRemove": c.Spec.AutoRemove,
		"RestartPolicy": map[string]any{"Name": name, "MaximumRetryCount": n},
		"CapAdd":        c.Spec.CapAdd, "CapDrop": c.Spec.CapDrop, "Dns": c.Spec.DNS, "DnsSearch": c.Spec.DNSSearch,
		"DnsOptions": c.Spec.DNSOptions, "ExtraHosts": c.Spec.ExtraHosts,
		"LogConfig": logConfigJSON(c.Spec.Log),
		"Tmpfs":     c.Spec.Tmpfs, "Mounts": hostMountsJSON(c.Spec.Mounts),
		"ReadonlyRootfs": c.Spec.ReadOnly, "PublishAllPorts": c.Spec.PublishAll, "PortBindings": portBindings(c.Spec.Ports),
	}
	hostOptionsJSON(c.Spec, hostConfig)
	return map[string]any{
		"Id": c.ID, "Created": rfc(c.Created), "Path": path, "Args": args, "State": state,
		"Image": c.ImageID, "Name": "/" + c.Name, "RestartCount": c.RestartCount, "Driver": "overlay2", "Platform": "linux",
		"Config": map[string]any{
			"Hostname": hostnameOf(c), "User": c.User, "Env": c.Env, "Cmd": c.Spec.Command, "Entrypoint": c.Spec.Entrypoint,
			"Image": c.Spec.Image, "WorkingDir": c.Cwd, "Tty": c.Spec.Tty, "OpenStdin": c.Spec.OpenStdin, "StdinOnce": c.Spec.StdinOnce,
			"AttachStdin": c.Spec.OpenStdin, "ExposedPorts": exposed, "Labels": labelsOf(c),
			"StopSignal": c.Spec.StopSignal, "StopTimeout": c.Spec.StopTimeout, "Volumes": configVolumes(c.Spec),
		},
		"HostConfig":      hostConfig,
		"NetworkSettings": map[string]any{"IPAddress": c.IP, "Ports": portMap, "Networks": map[string]any{}},
		"Mounts":          mountsJSON(c, volumePath),
	}
}

// hostnameOf is c's hostname: --hostname's, else its short ID.
func hostnameOf(c engine.Container) string {
	if c.Spec.Hostname != "" {
		return c.Spec.Hostname
	}
	return c.ID[:12]
}

// labelsOf is c's labels, {} rather than null.
func labelsOf(c engine.Container) map[string]string {
	if c.Spec.Labels == nil {
		return map[string]string{}
	}
	return c.Spec.Labels
}

func (a *API) start(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	if c.State == engine.StateRunning {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if err := a.E.Start(r.Context(), c.ID); err != nil {
		if c.Spec.AutoRemove {
			// As dockerd: an --rm container that cannot start is
			// removed too (the CLI waits for that before it exits).
			if rerr := a.E.RemoveWith(r.Context(), c.ID, true, true); rerr != nil {
				a.log().Warn("removing a container that failed to start", "container", c.Name, "err", rerr)
			}
		}
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// stopTimeout is the wait before SIGKILL: the request's t, else the
// container's --stop-timeout, else 10 s; -1 waits for ever (a day here).
func stopTimeout(r *http.Request, c engine.Container) time.Duration {
	t := 10
	if c.Spec.StopTimeout != nil {
		t = *c.Spec.StopTimeout
	}
	if v := r.URL.Query().Get("t"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= -1 {
			t = n
		}
	}
	if t < 0 {
		return 24 * time.Hour
	}
	return time.Duration(t) * time.Second
}

func (a *API) stop(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	a.thaw(c)
	if c.State != engine.StateRunning {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if err := a.E.Stop(r.Context(), c.ID, stopTimeout(r, c)); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) restart(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	a.thaw(c)
	if err := a.E.Stop(r.Context(), c.ID, stopTimeout(r, c)); err != nil {
		apiError(w, err)
		return
	}
	if err := a.E.Start(r.Context(), c.ID); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) kill(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	a.thaw(c)
	if c.State != engine.StateRunning {
		apiError(w, fmt.Errorf("%w: container %s is not running", engine.ErrConflict, c.Name))
		return
	}
	if err := a.E.Kill(r.Context(), c.ID, r.URL.Query().Get("signal")); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	if c, err := a.E.Get(r.PathValue("id")); err == nil && r.URL.Query().Get("force") != "" {
		a.thaw(c)
	}
	force := r.URL.Query().Get("force") == "1" || r.URL.Query().Get("force") == "true"
	if err := a.E.RemoveWith(r.Context(), r.PathValue("id"), force, queryBool(r, "v")); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// wait is POST /containers/{id}/wait?condition=not-running|next-exit|removed.
// The CLI calls it before start for next-exit and removed, so those wait for
// a run that begins after the request.
func (a *API) wait(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	cond := r.URL.Query().Get("condition")
	var next <-chan int
	if cond == "next-exit" || cond == "removed" {
		// Registered before the answer's headers: the CLI starts the
		// container once it has them.
		ch, cancel, err := a.E.NextExit(c.ID)
		if err != nil {
			apiError(w, err)
			return
		}
		defer cancel()
		next = ch
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	ctx := r.Context()
	var code int
	if next != nil {
		var removed <-chan struct{}
		if cond == "removed" {
			// A run that fails to start has no exit; its removal ends
			// the wait.
			removed = a.removedChan(ctx, c.ID)
		}
		select {
		case code = <-next:
		case <-removed:
			code = -1
			if last, err := a.E.Get(c.ID); err == nil {
				code = last.ExitCode
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	} else {
		code, err = a.E.Wait(ctx, c.ID)
	}
	if err == nil && cond == "removed" {
		err = a.waitRemoved(ctx, c.ID)
	}
	writeWait(w, code, err)
}

// removedChan is closed once id is removed (or ctx ends).
func (a *API) removedChan(ctx context.Context, id string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if a.waitRemoved(ctx, id) == nil {
			close(ch)
		}
	}()
	return ch
}

func (a *API) waitRemoved(ctx context.Context, id string) error {
	// Woken by the engine's events (destroy), so `docker run --rm` ends
	// as soon as the container is gone; the slow tick catches an event a
	// full subscriber lost.
	_, events, cancel := a.E.Events(time.Now())
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := a.E.Get(id); errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-events:
		case <-tick.C:
		}
	}
}

func writeWait(w http.ResponseWriter, code int, err error) {
	body := map[string]any{"StatusCode": code}
	if err != nil {
		body["Error"] = map[string]string{"Message": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(body)
}

// portBindings is HostConfig.PortBindings: the ports asked for, an empty
// HostPort for a random one.
func portBindings(specs []string) map[string][]map[string]string {
	out := map[string][]map[string]string{}
	for _, s := range specs {
		p, err := engine.ParsePort(s)
		if err != nil {
			continue
		}
		hp := ""
		if p.HostPort != 0 {
			hp = strconv.Itoa(p.HostPort)
		}
		k := fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)
		out[k] = append(out[k], map[string]string{"HostIp": p.HostIP, "HostPort": hp})
	}
	return out
}

// thaw unpauses c before a stop, kill or forced removal: frozen
// processes would not act on the signal (nor die of SIGKILL on cgroup v1).
func (a *API) thaw(c engine.Container) {
	if a.E.Paused(c) {
		if err := a.E.Unpause(c.ID); err != nil {
			a.log().Warn("unpausing before stop", "container", c.Name, "err", err)
		}
	}
}
