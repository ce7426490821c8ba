package hostd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/stream"
)

// PullRequest is POST /v1/images/pull.
type PullRequest struct {
	Ref string `json:"ref"`
}

// CreateRequest is POST /v1/containers: the spec, and whether to start it
// (pulling its image first when it is not stored).
type CreateRequest struct {
	Spec  engine.ContainerSpec `json:"spec"`
	Start bool                 `json:"start"`
}

// WaitResponse is POST /v1/containers/{ref}/wait.
type WaitResponse struct {
	ExitCode int `json:"exitCode"`
}

// ExitCodeTrailer carries an exec's exit code after its output.
const ExitCodeTrailer = "X-Exit-Code"

// RegisterEngine adds the container and image routes for e and its health
// check to the boot health gate.
func (s *Server) RegisterEngine(e *engine.Engine) {
	api := engineAPI{e: e}
	s.Handle("GET /v1/images", http.HandlerFunc(api.images))
	s.Handle("POST /v1/images/pull", http.HandlerFunc(api.pull))
	s.Handle("DELETE /v1/images/{ref...}", http.HandlerFunc(api.rmi))
	s.Handle("GET /v1/containers", http.HandlerFunc(api.list))
	s.Handle("POST /v1/containers", http.HandlerFunc(api.create))
	s.Handle("GET /v1/containers/{ref}", http.HandlerFunc(api.inspect))
	s.Handle("DELETE /v1/containers/{ref}", http.HandlerFunc(api.rm))
	s.Handle("POST /v1/containers/{ref}/start", http.HandlerFunc(api.start))
	s.Handle("POST /v1/containers/{ref}/stop", http.HandlerFunc(api.stop))
	s.Handle("POST /v1/containers/{ref}/kill", http.HandlerFunc(api.kill))
	s.Handle("POST /v1/containers/{ref}/wait", http.HandlerFunc(api.wait))
	s.Handle("GET /v1/containers/{ref}/logs", http.HandlerFunc(api.logs))
	s.Handle("POST /v1/containers/{ref}/exec", http.HandlerFunc(api.exec))
	s.Handle("POST /v1/containers/{ref}/attach", http.HandlerFunc(api.attach))
	s.AddHealthCheck("containers", e.HealthCheck)
	s.mu.Lock()
	s.workloads = e.WorkloadProblems
	s.mu.Unlock()
}

type engineAPI struct{ e *engine.Engine }

// httpError maps engine sentinels to status codes.
func httpError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), engine.HTTPStatus(err))
}

func (a engineAPI) images(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.e.Images().List()
	if err != nil {
		httpError(w, err)
		return
	}
	if imgs == nil {
		imgs = []image.Image{}
	}
	WriteJSON(w, http.StatusOK, imgs)
}

func (a engineAPI) pull(w http.ResponseWriter, r *http.Request) {
	var req PullRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Ref == "" {
		http.Error(w, "want {\"ref\": \"image\"}", http.StatusBadRequest)
		return
	}
	im, err := a.e.Images().Pull(r.Context(), req.Ref)
	if err != nil {
		httpError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, im)
}

func (a engineAPI) rmi(w http.ResponseWriter, r *http.Request) {
	im, err := a.e.RemoveImage(r.Context(), r.PathValue("ref"), r.URL.Query().Get("force") == "1")
	if err != nil {
		httpError(w, err)
		return
	}
	removed, err := a.e.GC(r.Context())
	if err != nil {
		httpError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"untagged": im, "deleted": removed})
}

func (a engineAPI) list(w http.ResponseWriter, r *http.Request) {
	all := r.URL.Query().Get("all") == "1"
	out := []engine.Container{}
	for _, c := range a.e.List() {
		if all || c.State == engine.StateRunning {
			out = append(out, c)
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a engineAPI) create(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf("decoding container spec: %v", err), http.StatusBadRequest)
		return
	}
	if err := req.Spec.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := a.e.Images().Get(req.Spec.Image); errors.Is(err, image.ErrNotFound) {
		if _, err := a.e.Images().Pull(r.Context(), req.Spec.Image); err != nil {
			httpError(w, err)
			return
		}
	}
	c, err := a.e.Create(r.Context(), req.Spec)
	if err != nil {
		httpError(w, err)
		return
	}
	if req.Start {
		if err := a.e.Start(r.Context(), c.ID); err != nil {
			httpError(w, err)
			return
		}
		c, _ = a.e.Get(c.ID)
	}
	WriteJSON(w, http.StatusCreated, c)
}

func (a engineAPI) inspect(w http.ResponseWriter, r *http.Request) {
	c, err := a.e.Get(r.PathValue("ref"))
	if err != nil {
		httpError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, c)
}

func (a engineAPI) rm(w http.ResponseWriter, r *http.Request) {
	if err := a.e.Remove(r.Context(), r.PathValue("ref"), r.URL.Query().Get("force") == "1"); err != nil {
		httpError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a engineAPI) start(w http.ResponseWriter, r *http.Request) {
	if err := a.e.Start(r.Context(), r.PathValue("ref")); err != nil {
		httpError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a engineAPI) stop(w http.ResponseWriter, r *http.Request) {
	t := 10
	if v := r.URL.Query().Get("t"); v != "" {
		var err error
		if t, err = strconv.Atoi(v); err != nil || t < 0 {
			http.Error(w, "t: want seconds", http.StatusBadRequest)
			return
		}
	}
	if err := a.e.Stop(r.Context(), r.PathValue("ref"), time.Duration(t)*time.Second); err != nil {
		httpError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a engineAPI) kill(w http.ResponseWriter, r *http.Request) {
	if err := a.e.Kill(r.Context(), r.PathValue("ref"), r.URL.Query().Get("signal")); err != nil {
		httpError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a engineAPI) wait(w http.ResponseWriter, r *http.Request) {
	code, err := a.e.Wait(r.Context(), r.PathValue("ref"))
	if err != nil {
		httpError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, WaitResponse{ExitCode: code})
}

// logs streams log entries as JSON lines (logs.Entry), flushed as they come.
func (a engineAPI) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := engine.LogOptions{Follow: q.Get("follow") == "1"}
	if v := q.Get("tail"); v != "" {
		o.Tail, _ = strconv.Atoi(v)
	}
	if _, err := a.e.Get(r.PathValue("ref")); err != nil {
		httpError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	_ = a.e.Logs(r.Context(), r.PathValue("ref"), o, func(e logs.Entry) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	})
}

// AttachEnd is the last line of POST /v1/containers/{ref}/attach.
type AttachEnd struct {
	ExitCode int `json:"exitCode"`
}

// attach starts a created container and streams its output as JSON lines
// (logs.Entry) until it exits, then one AttachEnd line. The reader is
// registered before the start, so no output and no exit is missed, even of
// a container removed on exit.
func (a engineAPI) attach(w http.ResponseWriter, r *http.Request) {
	c, err := a.e.Get(r.PathValue("ref"))
	if err != nil {
		httpError(w, err)
		return
	}
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	code := -1
	// The request body is the container's stdin: read while the answer
	// streams, until the container has exited.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if r.URL.Query().Get("stdin") == "1" {
		if !c.Spec.OpenStdin {
			http.Error(w, fmt.Sprintf("attaching stdin of %s: %v (create it with -i)", c.Name, engine.ErrNoStdin), http.StatusBadRequest)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		forwarded := make(chan struct{})
		go func() {
			defer close(forwarded)
			_ = a.e.ForwardStdin(ctx, c.ID, r.Body)
		}()
		// The body must not be read once the handler returns: end a read
		// still waiting for the client's input, and the forwarder.
		defer func() {
			cancel()
			_ = rc.SetReadDeadline(time.Now())
			<-forwarded
		}()
	}
	o := engine.LogOptions{Follow: true, NextRun: true, Since: time.Now(), ExitCode: &code, Ready: func() error {
		if err := a.e.Start(r.Context(), c.ID); err != nil {
			httpError(w, err)
			return err
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		if fl != nil {
			fl.Flush()
		}
		return nil
	}}
	err = a.e.Logs(r.Context(), c.ID, o, func(e logs.Entry) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	})
	if err == nil {
		_ = enc.Encode(AttachEnd{ExitCode: code})
	}
}

// exec runs ?cmd=...&cmd=... (env, user, workdir likewise) with the request
// body as stdin; the response body is the multiplexed stdout/stderr, and the
// exit code comes in the X-Exit-Code trailer.
func (a engineAPI) exec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q["cmd"]) == 0 {
		http.Error(w, "cmd: required", http.StatusBadRequest)
		return
	}
	if _, err := a.e.Get(r.PathValue("ref")); err != nil {
		httpError(w, err)
		return
	}
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Trailer", ExitCodeTrailer)
	w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	w.WriteHeader(http.StatusOK)
	mux := stream.NewMux(w)
	if fl, ok := w.(http.Flusher); ok {
		mux.Flush = fl.Flush
		fl.Flush()
	}
	code, err := a.e.Exec(r.Context(), r.PathValue("ref"), engine.ExecOptions{
		Args: q["cmd"], Env: q["env"], User: q.Get("user"), Cwd: q.Get("workdir"), Tty: q.Get("tty") == "1",
		Stdin: r.Body, Stdout: mux.Writer(stream.Stdout), Stderr: mux.Writer(stream.Stderr),
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(mux.Writer(stream.Stderr), "hostd: %v\n", err)
		if code == 0 {
			code = 126
		}
	}
	w.Header().Set(ExitCodeTrailer, strconv.Itoa(code))
}
