package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ErrUnavailable means hostd's socket does not answer (hostd is down).
var ErrUnavailable = errors.New("hostd is not answering")

// Client is an API client bound to one socket.
type Client struct {
	Socket string
	HTTP   *http.Client
}

// New returns a client for the socket at path.
func New(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{Socket: path, HTTP: &http.Client{Transport: tr}}
}

// APIError is a non-2xx answer.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("hostd answered %d: %s", e.Code, e.Message) }

// Do sends a request with an optional JSON body and decodes a JSON answer into
// out (nil to discard). A 503 with a JSON body is decoded too and returned
// with an *APIError, so health answers can be read.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding request to %s: %w", path, err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://hostd"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s: %v", ErrUnavailable, c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading answer to %s %s: %w", method, path, err)
	}
	var apiErr error
	if resp.StatusCode/100 != 2 {
		apiErr = &APIError{Code: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	if out != nil && len(b) > 0 && json.Valid(b) {
		if err := json.Unmarshal(b, out); err != nil && apiErr == nil {
			return fmt.Errorf("decoding answer to %s %s: %w", method, path, err)
		}
	}
	return apiErr
}

// WaitReady polls GET /v1/status until hostd answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for hostd on %s: %w", c.Socket, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
