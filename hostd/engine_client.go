package hostd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/hostd/client"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/stream"
)

// EngineClient is the client side of the engine routes (hostctl's).
type EngineClient struct{ C *client.Client }

// NewEngineClient returns a client for hostd's socket.
func NewEngineClient(socket string) EngineClient { return EngineClient{C: client.New(socket)} }

func esc(ref string) string { return url.PathEscape(ref) }

// Pull pulls an image.
func (c EngineClient) Pull(ctx context.Context, ref string) (image.Image, error) {
	var im image.Image
	return im, c.C.Do(ctx, http.MethodPost, "/v1/images/pull", PullRequest{Ref: ref}, &im)
}

// Images lists images.
func (c EngineClient) Images(ctx context.Context) ([]image.Image, error) {
	var out []image.Image
	return out, c.C.Do(ctx, http.MethodGet, "/v1/images", nil, &out)
}

// RemoveImage untags or removes an image and collects unused layers.
func (c EngineClient) RemoveImage(ctx context.Context, ref string, force bool) error {
	return c.C.Do(ctx, http.MethodDelete, "/v1/images/"+ref+"?force="+b01(force), nil, nil)
}

// List lists running containers, or all.
func (c EngineClient) List(ctx context.Context, all bool) ([]engine.Container, error) {
	var out []engine.Container
	return out, c.C.Do(ctx, http.MethodGet, "/v1/containers?all="+b01(all), nil, &out)
}

// Create creates (and with start, starts) a container.
func (c EngineClient) Create(ctx context.Context, spec engine.ContainerSpec, start bool) (engine.Container, error) {
	var out engine.Container
	return out, c.C.Do(ctx, http.MethodPost, "/v1/containers", CreateRequest{Spec: spec, Start: start}, &out)
}

// Inspect returns a container's record.
func (c EngineClient) Inspect(ctx context.Context, ref string) (engine.Container, error) {
	var out engine.Container
	return out, c.C.Do(ctx, http.MethodGet, "/v1/containers/"+esc(ref), nil, &out)
}

// Start starts a container.
func (c EngineClient) Start(ctx context.Context, ref string) error {
	return c.C.Do(ctx, http.MethodPost, "/v1/containers/"+esc(ref)+"/start", nil, nil)
}

// Stop stops a container, killing it after timeoutSec.
func (c EngineClient) Stop(ctx context.Context, ref string, timeoutSec int) error {
	return c.C.Do(ctx, http.MethodPost, "/v1/containers/"+esc(ref)+"/stop?t="+strconv.Itoa(timeoutSec), nil, nil)
}

// Remove removes a container.
func (c EngineClient) Remove(ctx context.Context, ref string, force bool) error {
	return c.C.Do(ctx, http.MethodDelete, "/v1/containers/"+esc(ref)+"?force="+b01(force), nil, nil)
}

// Wait waits for a container to exit and returns its code.
func (c EngineClient) Wait(ctx context.Context, ref string) (int, error) {
	var out WaitResponse
	err := c.C.Do(ctx, http.MethodPost, "/v1/containers/"+esc(ref)+"/wait", nil, &out)
	return out.ExitCode, err
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (c EngineClient) stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://hostd"+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.C.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", client.ErrUnavailable, c.C.Socket, err)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, &client.APIError{Code: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

// Logs calls fn for each log entry; with follow, until the container stops.
func (c EngineClient) Logs(ctx context.Context, ref string, follow bool, tail int, fn func(logs.Entry) error) error {
	resp, err := c.stream(ctx, http.MethodGet, fmt.Sprintf("/v1/containers/%s/logs?follow=%s&tail=%d", esc(ref), b01(follow), tail), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e logs.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decoding log entry: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Attach starts a created container, calls fn for each line of its output
// and returns its exit code. stdin, when not nil, feeds the container's
// stdin (it must have been created with OpenStdin); its end closes the
// container's stdin when the container was created with StdinOnce.
func (c EngineClient) Attach(ctx context.Context, ref string, stdin io.Reader, fn func(logs.Entry) error) (int, error) {
	path := "/v1/containers/" + esc(ref) + "/attach"
	if stdin != nil {
		path += "?stdin=1"
	}
	resp, err := c.stream(ctx, http.MethodPost, path, stdin)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			logs.Entry
			ExitCode *int `json:"exitCode"`
		}
		if err := dec.Decode(&line); err != nil {
			return -1, fmt.Errorf("attached to %s: the stream ended early: %w", ref, err)
		}
		if line.ExitCode != nil {
			return *line.ExitCode, nil
		}
		if err := fn(line.Entry); err != nil {
			return -1, err
		}
	}
}

// ExecRequest is a process to run in a container.
type ExecRequest struct {
	Args    []string
	Env     []string
	User    string
	Workdir string
	Stdin   io.Reader // nil for none
	Stdout  io.Writer
	Stderr  io.Writer
	Tty     bool // a terminal: output comes on Stdout
}

// Exec runs a process in a container and returns its exit code.
func (c EngineClient) Exec(ctx context.Context, ref string, r ExecRequest) (int, error) {
	q := url.Values{"cmd": r.Args, "env": r.Env}
	if r.User != "" {
		q.Set("user", r.User)
	}
	if r.Workdir != "" {
		q.Set("workdir", r.Workdir)
	}
	if r.Tty {
		q.Set("tty", "1")
	}
	resp, err := c.stream(ctx, http.MethodPost, "/v1/containers/"+esc(ref)+"/exec?"+q.Encode(), r.Stdin)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	if err := stream.Demux(resp.Body, r.Stdout, r.Stderr); err != nil {
		return -1, err
	}
	code, err := strconv.Atoi(resp.Trailer.Get(ExitCodeTrailer))
	if err != nil {
		return -1, fmt.Errorf("exec in %s: no exit code from hostd", ref)
	}
	return code, nil
}
