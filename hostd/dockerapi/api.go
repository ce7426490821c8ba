package dockerapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/stream"
)

// APIVersion is the Engine API version served; clients negotiate down to it
// through /_ping's API-Version header.
const APIVersion = "1.45"

// MinAPIVersion is the oldest version accepted.
const MinAPIVersion = "1.24"

// API serves the Docker Engine API subset backed by an engine.
type API struct {
	E       *engine.Engine
	Log     *slog.Logger
	Version string // hostd's version, reported as the server version

	mu    sync.Mutex
	execs map[string]*execInstance
}

type execInstance struct {
	ID        string
	Container string
	Config    execConfig
	mu        sync.Mutex
	running   bool
	exitCode  *int
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// Handler returns the API's routes; a /v1.NN/ prefix is accepted on all.
func (a *API) Handler() http.Handler {
	a.execs = map[string]*execInstance{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", a.ping)
	mux.HandleFunc("HEAD /_ping", a.ping)
	mux.HandleFunc("GET /version", a.version)
	mux.HandleFunc("GET /info", a.info)
	mux.HandleFunc("GET /containers/json", a.containers)
	mux.HandleFunc("POST /containers/create", a.create)
	mux.HandleFunc("GET /containers/{id}/json", a.inspect)
	mux.HandleFunc("POST /containers/{id}/start", a.start)
	mux.HandleFunc("POST /containers/{id}/stop", a.stop)
	mux.HandleFunc("POST /containers/{id}/restart", a.restart)
	mux.HandleFunc("POST /containers/{id}/kill", a.kill)
	mux.HandleFunc("POST /containers/{id}/wait", a.wait)
	mux.HandleFunc("POST /containers/{id}/attach", a.attach)
	mux.HandleFunc("POST /containers/{id}/resize", a.resize)
	mux.HandleFunc("GET /containers/{id}/logs", a.logs)
	mux.HandleFunc("DELETE /containers/{id}", a.remove)
	mux.HandleFunc("POST /containers/{id}/exec", a.execCreate)
	mux.HandleFunc("POST /exec/{id}/start", a.execStart)
	mux.HandleFunc("POST /exec/{id}/resize", ok)
	mux.HandleFunc("GET /exec/{id}/json", a.execInspect)
	mux.HandleFunc("GET /images/json", a.images)
	mux.HandleFunc("POST /images/create", a.pull)
	mux.HandleFunc("GET /images/{name...}", a.imageInspect)
	mux.HandleFunc("DELETE /images/{name...}", a.rmi)
	mux.HandleFunc("POST /images/{name...}", a.imagePost)
	mux.HandleFunc("POST /images/prune", a.imagePrune)
	mux.HandleFunc("GET /images/get", a.imageSave)
	mux.HandleFunc("POST /images/load", a.imageLoad)
	mux.HandleFunc("POST /commit", a.commit)
	mux.HandleFunc("POST /auth", a.auth)
	mux.HandleFunc("POST /containers/prune", a.containerPrune)
	mux.HandleFunc("POST /containers/{id}/rename", a.rename)
	mux.HandleFunc("POST /containers/{id}/update", a.update)
	mux.HandleFunc("GET /containers/{id}/top", a.top)
	mux.HandleFunc("GET /containers/{id}/changes", a.changes)
	mux.HandleFunc("GET /volumes", a.volumeList)
	mux.HandleFunc("POST /volumes/create", a.volumeCreate)
	mux.HandleFunc("POST /volumes/prune", a.volumePrune)
	mux.HandleFunc("GET /volumes/{name}", a.volumeInspect)
	mux.HandleFunc("DELETE /volumes/{name}", a.volumeRemove)
	mux.HandleFunc("GET /system/df", a.systemDF)
	mux.HandleFunc("GET /containers/{id}/stats", a.stats)
	mux.HandleFunc("POST /containers/{id}/pause", a.pause)
	mux.HandleFunc("POST /containers/{id}/unpause", a.pause)
	mux.HandleFunc("HEAD /containers/{id}/archive", a.archiveHead)
	mux.HandleFunc("GET /containers/{id}/archive", a.archiveGet)
	mux.HandleFunc("PUT /containers/{id}/archive", a.archivePut)
	mux.HandleFunc("GET /containers/{id}/export", a.export)
	mux.HandleFunc("GET /events", a.events)
	mux.HandleFunc("GET /networks", a.networkList)
	mux.HandleFunc("POST /networks/create", a.networkCreate)
	mux.HandleFunc("POST /networks/prune", a.networkPrune)
	mux.HandleFunc("GET /networks/{id}", a.networkInspect)
	mux.HandleFunc("DELETE /networks/{id}", a.networkRemove)
	mux.HandleFunc("POST /networks/{id}/connect", a.networkConnect)
	mux.HandleFunc("POST /networks/{id}/disconnect", a.networkDisconnect)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loc := versionPrefix.FindString(r.URL.Path); loc != "" {
			r.URL.Path = "/" + strings.TrimPrefix(r.URL.Path, loc)
		}
		w.Header().Set("Api-Version", APIVersion)
		w.Header().Set("Server", "hostd/"+a.Version+" (linux)")
		mux.ServeHTTP(w, r)
	})
}

func ok(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }

// writeJSON writes v with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError writes Docker's error body {"message": ...} with a status code
// derived from the engine's sentinels.
func apiError(w http.ResponseWriter, err error) {
	code := engine.HTTPStatus(err)
	if errors.Is(err, errBadRequest) || errors.Is(err, engine.ErrInvalid) {
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"message": err.Error()})
}

var errBadRequest = errors.New("bad request")

func (a *API) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		io.WriteString(w, "OK")
	}
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (a *API) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"Platform":      map[string]string{"Name": "Bulkhead hostd"},
		"Version":       a.Version,
		"ApiVersion":    APIVersion,
		"MinAPIVersion": MinAPIVersion,
		"GitCommit":     "",
		"GoVersion":     goruntime.Version(),
		"Os":            "linux",
		"Arch":          goruntime.GOARCH,
		"KernelVersion": kernel(),
		"BuildTime":     "",
		"Components": []map[string]any{
			{"Name": "Engine", "Version": a.Version, "Details": map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": goruntime.GOARCH}},
		},
	})
}

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	ctrs := a.E.List()
	running, paused, stopped := 0, 0, 0
	for _, c := range ctrs {
		if a.E.Paused(c) {
			paused++
		} else if c.State == engine.StateRunning {
			running++
		} else {
			stopped++
		}
	}
	imgs, _ := a.E.Images().List()
	host, _ := os.Hostname()
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	cgv := "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgv = "2"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ID": host, "Name": host,
		"Containers": len(ctrs), "ContainersRunning": running, "ContainersPaused": paused, "ContainersStopped": stopped,
		"Images": len(imgs), "Driver": "overlay2", "DriverStatus": [][2]string{},
		"ServerVersion": a.Version, "OperatingSystem": "Bulkhead", "OSType": "linux", "Architecture": "x86_64",
		"KernelVersion": kernel(), "NCPU": goruntime.NumCPU(), "MemTotal": int64(si.Totalram) * int64(si.Unit),
		"CgroupDriver": a.E.CgroupDriver(), "CgroupVersion": cgv, "DockerRootDir": "/var/lib/hostd",
		"LoggingDriver": "json-file", "SecurityOptions": a.E.SecurityOptions(),
		"Plugins":        map[string][]string{"Volume": {"local"}, "Network": {"bridge", "host", "null"}, "Log": {"json-file"}},
		"RegistryConfig": map[string]any{"IndexConfigs": map[string]any{}, "InsecureRegistryCIDRs": []string{}},
		"Swarm":          map[string]any{"LocalNodeState": "inactive"},
		"Runtimes":       map[string]any{"libcontainer": map[string]string{"path": "embedded"}},
		"DefaultRuntime": "libcontainer",
		"Warnings":       []string{},
	})
}

func imageName(c engine.Container) string { return c.Spec.Image }

type portJSON struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort int    `json:"PrivatePort"`
	PublicPort  int    `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// ports are the running container's published ports, random host ports
// resolved; none when it is not running, as with Docker.
func ports(c engine.Container) []portJSON {
	out := []portJSON{}
	for _, p := range c.Ports {
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		out = append(out, portJSON{IP: ip, PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Proto})
	}
	return out
}

func statusText(c engine.Container) string {
	switch c.State {
	case engine.StateRunning:
		s := "Up " + humanDuration(time.Since(c.StartedAt))
		if c.Health != "" {
			s += " (" + c.Health + ")"
		}
		return s
	case engine.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, humanDuration(time.Since(c.FinishedAt)))
	}
	return "Created"
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s < 3600:
		return fmt.Sprintf("%d minutes", s/60)
	case s < 48*3600:
		return fmt.Sprintf("%d hours", s/3600)
	default:
		return fmt.Sprintf("%d days", s/86400)
	}
}

// pull is POST /images/create?fromImage=NAME&tag=TAG: progress as JSON
// messages; errors after the 200 go in an {"error"} message, as Docker's.
func (a *API) pull(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	if ref == "" {
		apiError(w, fmt.Errorf("%w: fromImage is required (import is not supported)", errBadRequest))
		return
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	auth, err := registryAuth(r)
	if err != nil {
		apiError(w, err)
		return
	}
	p := newProgress(w)
	p.status("Pulling from " + ref)
	im, err := a.E.Images().PullAuth(r.Context(), ref, auth)
	if err != nil {
		p.fail(err)
		return
	}
	p.status("Digest: " + im.ManifestDigest)
	p.status("Status: Downloaded newer image for " + ref)
}

func (a *API) imageInspect(w http.ResponseWriter, r *http.Request) {
	ref, action, _ := cutLast(r.PathValue("name"), "/")
	switch action {
	case "get":
		r.URL.RawQuery = url.Values{"names": {ref}}.Encode()
		a.imageSave(w, r)
		return
	case "history":
		a.imageHistory(w, r, ref)
		return
	}
	name := strings.TrimSuffix(r.PathValue("name"), "/json")
	im, err := a.E.Images().Get(name)
	if err != nil {
		apiError(w, fmt.Errorf("%w: No such image: %s", image.ErrNotFound, name))
		return
	}
	cfg, _ := a.E.Images().Config(im)
	out := map[string]any{
		"Id": im.ID, "RepoTags": im.Names, "RepoDigests": im.RepoDigests, "Created": im.Created.Format(time.RFC3339Nano),
		"Size": im.Size, "Os": "linux", "Architecture": "amd64",
		"RootFS": map[string]any{"Type": "layers", "Layers": im.Layers},
	}
	if cfg != nil {
		// go-containerregistry's Config has Docker's field names.
		out["Config"] = cfg.Config
		out["Author"] = cfg.Author
		if n := len(cfg.History); n > 0 {
			out["Comment"] = cfg.History[n-1].Comment
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) rmi(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	force := r.URL.Query().Get("force") == "1" || r.URL.Query().Get("force") == "true"
	im, err := a.E.RemoveImage(r.Context(), name, force)
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]string{{"Untagged": name}}
	removed, err := a.E.GC(r.Context())
	if err != nil {
		apiError(w, err)
		return
	}
	for _, d := range removed {
		if d == im.ID {
			out = append(out, map[string]string{"Deleted": d})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hijack takes over the connection for a raw stream, as Docker's attach
// and exec start do (101 UPGRADED when the client asked to upgrade).
func hijack(w http.ResponseWriter, r *http.Request, contentType string) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(brw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", contentType)
	} else {
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", contentType)
	}
	return conn, brw, brw.Flush()
}

// followOutput writes a container's log entries to out and errw.
func (a *API) followOutput(ctx context.Context, id string, o engine.LogOptions, out, errw io.Writer) error {
	return a.E.Logs(ctx, id, o, func(e logs.Entry) error {
		w := out
		if e.Stream == "stderr" {
			w = errw
		}
		_, err := io.WriteString(w, e.Log)
		return err
	})
}

func (a *API) attach(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	q := r.URL.Query()
	// Docker ignores stdin=1 for a container created without -i.
	withStdin := (q.Get("stdin") == "1" || q.Get("stdin") == "true") && c.Spec.OpenStdin
	// Ends the stdin forwarding when the attach ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn net.Conn
	var stdout, stderr io.Writer
	o := engine.LogOptions{}
	if q.Get("stream") == "1" || q.Get("stream") == "true" {
		// Output from now until the run (maybe not started yet) exits.
		o = engine.LogOptions{Follow: true, NextRun: true, Since: time.Now()}
	}
	// The connection is taken over only once the reader is registered: the
	// CLI starts the container when it has the 101.
	o.Ready = func() error {
		var brw *bufio.ReadWriter
		var err error
		if conn, brw, err = hijack(w, r, streamType(c)); err != nil {
			return err
		}
		if withStdin {
			go a.forwardStdin(ctx, c.ID, brw.Reader)
		} else {
			// The CLI half-closes its side at once when it sends no
			// stdin: that does not end the attach; the container's exit
			// (or a failed write to a client that went away) does.
			go func() { _, _ = io.Copy(io.Discard, brw) }()
		}
		stdout, stderr = outputs(c, conn, nil)
		return nil
	}
	// The writers exist once Ready has hijacked the connection.
	_ = a.E.Logs(context.Background(), c.ID, o, func(e logs.Entry) error {
		w := stdout
		if e.Stream == "stderr" {
			w = stderr
		}
		_, err := io.WriteString(w, e.Log)
		return err
	})
	cancel() // before the close: the stdin forwarder's read error is expected
	if conn != nil {
		if tc, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		conn.Close()
	}
}

// forwardStdin feeds an attached client's input to the container's stdin.
func (a *API) forwardStdin(ctx context.Context, id string, in io.Reader) {
	if err := a.E.ForwardStdin(ctx, id, in); err != nil {
		a.log().Warn("attaching stdin", "container", id[:12], "err", err)
	}
	// Drain what the client still sends, so its writes do not block.
	_, _ = io.Copy(io.Discard, in)
}

func (a *API) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// resize is POST /containers/{id}/resize?h=ROWS&w=COLS: the CLI sends it
// after starting a -t container and when its window changes.
func (a *API) resize(w http.ResponseWriter, r *http.Request) {
	h, herr := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wd, werr := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if herr != nil || werr != nil {
		apiError(w, fmt.Errorf("%w: resize needs h and w (rows and columns)", errBadRequest))
		return
	}
	err := a.E.Resize(r.PathValue("id"), uint16(h), uint16(wd))
	switch {
	case errors.Is(err, engine.ErrNoTerminal):
		// Docker answers a resize of a container without a terminal
		// with success too; the CLI sends one for every attach.
	case err != nil:
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) logs(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	tail := 0
	if t := q.Get("tail"); t != "" && t != "all" {
		tail, _ = strconv.Atoi(t)
	}
	var since time.Time
	if s := q.Get("since"); s != "" && s != "0" {
		if sec, err := strconv.ParseFloat(s, 64); err == nil {
			since = time.Unix(0, int64(sec*1e9))
		}
	}
	w.Header().Set("Content-Type", streamType(c))
	w.WriteHeader(http.StatusOK)
	var flush func()
	if f, ok := w.(http.Flusher); ok {
		flush = f.Flush
		f.Flush()
	}
	muxOut, muxErr := outputs(c, w, flush)
	stdout, stderr := io.Discard, io.Discard
	if q.Get("stdout") == "1" || q.Get("stdout") == "true" {
		stdout = muxOut
	}
	if q.Get("stderr") == "1" || q.Get("stderr") == "true" {
		stderr = muxErr
	}
	_ = a.followOutput(r.Context(), c.ID, engine.LogOptions{Follow: follow, Since: since, Tail: tail}, stdout, stderr)
}

// streamType is the attach and logs content type: raw for a container
// with a terminal (its output is one stream), multiplexed otherwise.
func streamType(c engine.Container) string {
	if c.Spec.Tty {
		return "application/vnd.docker.raw-stream"
	}
	return "application/vnd.docker.multiplexed-stream"
}

// outputs are the writers for a container's stdout and stderr on w, in
// Docker's framing (see streamType); flush, when set, follows each write
// so followed logs arrive as they are written.
func outputs(c engine.Container, w io.Writer, flush func()) (stdout, stderr io.Writer) {
	if c.Spec.Tty {
		if flush != nil {
			w = flushWriter{w, flush}
		}
		return w, w
	}
	mux := stream.NewMux(w)
	mux.Flush = flush
	return mux.Writer(stream.Stdout), mux.Writer(stream.Stderr)
}

type flushWriter struct {
	w     io.Writer
	flush func()
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.flush()
	return n, err
}

// sortedKeys is for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
