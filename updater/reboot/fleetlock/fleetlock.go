package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
)

// The protocol as documented by Zincati (docs/development/fleetlock/protocol.md).
const (
	// PreRebootPath reserves (recursively locks) a reboot slot.
	PreRebootPath = "/v1/pre-reboot"
	// SteadyStatePath releases the slot if this client holds it.
	SteadyStatePath = "/v1/steady-state"
	// ProtocolHeader must be "true" on every request, so that a request that
	// reached the server through an unintended redirect is refused.
	ProtocolHeader = "fleet-lock-protocol"
	// DefaultGroup is Zincati's reboot group when none is configured.
	DefaultGroup = "default"
)

// groupRE is the group syntax the protocol mandates.
var groupRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// ValidGroup reports whether g is a valid FleetLock group label.
func ValidGroup(g string) bool { return groupRE.MatchString(g) }

// Body is the JSON body of both requests.
type Body struct {
	ClientParams ClientParams `json:"client_params"`
}

// ClientParams identify the lock holder. ID is case-sensitive and owns the
// lock: only the same ID releases it.
type ClientParams struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Encode renders the request body for id and group.
func Encode(id, group string) ([]byte, error) {
	if id == "" {
		return nil, errors.New("fleetlock: empty client id")
	}
	if !ValidGroup(group) {
		return nil, fmt.Errorf("fleetlock: group %q does not match %s", group, groupRE)
	}
	return json.Marshal(Body{ClientParams{ID: id, Group: group}})
}

// Rejection is a non-200 answer. Servers SHOULD send {"kind","value"}; when
// they do not, Kind is "generic_http_<code>" as in Zincati.
type Rejection struct {
	Endpoint string `json:"-"`
	Status   int    `json:"-"`
	Kind     string `json:"kind"`
	Value    string `json:"value"`
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("lock manager %s rejection, code %d (%s): %s", r.Endpoint, r.Status, r.Kind, r.Value)
}

// Client talks to one FleetLock server as one host.
type Client struct {
	// BaseURL is the deployment-specific prefix, e.g. http://airlock:3333;
	// a trailing slash is allowed.
	BaseURL string
	ID      string
	Group   string
	HTTP    *http.Client   // nil for http.DefaultClient
	Log     *slog.Logger   // nil for slog.Default()
	Backoff backoff.Policy // waits between attempts
}

// Name implements reboot.Strategy.
func (c *Client) Name() string { return "fleetlock" }

// Close implements reboot.Strategy; a client holds no connection of its own.
func (c *Client) Close() error { return nil }

// PreReboot implements reboot.Strategy: it retries pre-reboot until the
// server answers 200 (this host holds a slot) or ctx ends. The lock is
// recursive on the server, so calling it again while holding is harmless.
func (c *Client) PreReboot(ctx context.Context) error {
	return c.retry(ctx, PreRebootPath)
}

// SteadyState implements reboot.Strategy: it retries steady-state until the
// server answers 200 (this host holds no slot, whether it held one or not),
// or ctx ends. Zincati does this at every start, before looking for updates.
func (c *Client) SteadyState(ctx context.Context) error {
	return c.retry(ctx, SteadyStatePath)
}

func (c *Client) retry(ctx context.Context, path string) error {
	w := backoff.New(c.Backoff)
	for try := 0; ; try++ {
		err := c.Do(ctx, path)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fleetlock %s for %s: %w", path, c.ID, ctx.Err())
		}
		// A full semaphore is the normal way to wait: say it once.
		level := slog.LevelDebug
		if try == 0 {
			level = slog.LevelInfo
		}
		c.log().Log(ctx, level, "fleetlock request refused, retrying", "endpoint", path, "id", c.ID, "group", c.Group, "err", err)
		if err := w.Sleep(ctx); err != nil {
			return fmt.Errorf("fleetlock %s for %s: %w", path, c.ID, err)
		}
	}
}

// Do sends one request to path (PreRebootPath or SteadyStatePath) and
// returns nil on 200, a *Rejection for any other status, or the transport
// error. Operators use it with another host's ID to release a dead host's
// slot: the protocol identifies holders by the ID in the body alone.
func (c *Client) Do(ctx context.Context, path string) error {
	body, err := Encode(c.ID, c.Group)
	if err != nil {
		return err
	}
	url := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request to %s: %w", url, err)
	}
	req.Header.Set(ProtocolHeader, "true")
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return decodeRejection(path, resp.StatusCode, data)
}

// decodeRejection reads the protocol's error object, or synthesizes one the
// way Zincati does when the server sent something else.
func decodeRejection(path string, status int, data []byte) *Rejection {
	rej := &Rejection{}
	if err := json.Unmarshal(data, rej); err != nil || rej.Kind == "" {
		rej = &Rejection{Kind: fmt.Sprintf("generic_http_%d", status), Value: "(unknown server error)"}
	}
	rej.Endpoint = strings.TrimPrefix(path, "/v1/")
	rej.Status = status
	return rej
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}
