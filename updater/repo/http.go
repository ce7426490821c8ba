package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
)

// ErrTimeout means the repository did not answer within a bound: a server
// that stalls must not hold the update lock for ever.
var ErrTimeout = errors.New("update repository timed out")

// errTransient marks HTTP answers worth another try (5xx, 408, 429).
var errTransient = errors.New("transient repository error")

// Timeouts bound every network call of a Client. A zero field takes the
// DefaultTimeouts one.
type Timeouts struct {
	Connect  time.Duration // TCP connect and TLS handshake
	Idle     time.Duration // longest wait for response headers or the next body bytes
	Request  time.Duration // a whole metadata (small file) request
	Download time.Duration // a whole part download (one attempt)
}

// DefaultTimeouts suit a host behind a slow link: an idle minute is a stall,
// not a slow mirror; a part is hundreds of MB.
var DefaultTimeouts = Timeouts{Connect: 30 * time.Second, Idle: time.Minute, Request: 2 * time.Minute, Download: 2 * time.Hour}

// Retry says how often a transient failure (timeout, refused or reset
// connection, HTTP 5xx/408/429) is tried again. A download resumes where
// the failed attempt stopped.
type Retry struct {
	Attempts int            // total tries; 0 for DefaultRetry's
	Backoff  backoff.Policy // waits between tries
}

// DefaultRetry: four tries over about a quarter of a minute.
var DefaultRetry = Retry{Attempts: 4, Backoff: backoff.Policy{Min: 2 * time.Second, Max: 10 * time.Second}}

func (c *Client) timeouts() Timeouts {
	t := c.Timeouts
	d := DefaultTimeouts
	if t.Connect <= 0 {
		t.Connect = d.Connect
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	if t.Request <= 0 {
		t.Request = d.Request
	}
	if t.Download <= 0 {
		t.Download = d.Download
	}
	return t
}

// defaultHTTP is shared by Clients without their own http.Client, per
// connect timeout.
var (
	defaultHTTPMu sync.Mutex
	defaultHTTP   = map[time.Duration]*http.Client{}
)

// httpClient is c.HTTP or a client whose transport bounds connecting.
// Idle and whole-request bounds apply to any client (see open).
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	connect := c.timeouts().Connect
	defaultHTTPMu.Lock()
	defer defaultHTTPMu.Unlock()
	if hc, ok := defaultHTTP[connect]; ok {
		return hc
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = connect
	// A delta update fetches its chunks delta.Fetchers at a time: keep
	// that many connections open between them rather than the default 2,
	// which made every other chunk pay a new connection.
	tr.MaxIdleConnsPerHost = 16
	hc := &http.Client{Transport: tr}
	defaultHTTP[connect] = hc
	return hc
}

// retry runs f up to the configured attempts while it fails transiently.
func (c *Client) retry(ctx context.Context, what string, f func() error) error {
	r := c.Retry
	if r.Attempts <= 0 {
		r = DefaultRetry
	}
	w := backoff.New(r.Backoff)
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !transient(err) || attempt >= r.Attempts || ctx.Err() != nil {
			return err
		}
		c.log().Warn("repository request failed, retrying", "what", what, "attempt", attempt, "err", err)
		if serr := w.Sleep(ctx); serr != nil {
			return err
		}
	}
}

// transient tells whether another try may succeed.
func transient(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.Is(err, ErrTimeout) || errors.Is(err, errTransient) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout())
}

// timeoutError is the cause a bounded request is cancelled with.
func timeoutError(what string, d time.Duration) error {
	return fmt.Errorf("%w: %s after %s", ErrTimeout, what, d)
}

// boundedBody ends a response body's request when no bytes come for idle,
// and releases the request's context on Close.
type boundedBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	idle   time.Duration
	timer  *time.Timer
	cancel func()
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil && errors.Is(cause, ErrTimeout) {
			err = cause
		}
	}
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *boundedBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

// do sends req under the idle and whole-request bounds: whole bounds the
// request from start to the body's last byte; idle bounds every wait for
// headers or body bytes. The returned body must be closed.
func (c *Client) do(ctx context.Context, req *http.Request, whole time.Duration) (*http.Response, error) {
	t := c.timeouts()
	wctx, wcancel := context.WithTimeoutCause(ctx, whole, timeoutError("whole request", whole))
	ictx, icancel := context.WithCancelCause(wctx)
	timer := time.AfterFunc(t.Idle, func() { icancel(timeoutError("no data", t.Idle)) })
	cancel := func() { icancel(nil); wcancel() }
	resp, err := c.httpClient().Do(req.WithContext(ictx))
	if err != nil {
		timer.Stop()
		if cause := context.Cause(ictx); cause != nil && errors.Is(cause, ErrTimeout) {
			err = fmt.Errorf("%w (%w)", cause, err)
		} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		cancel()
		return nil, err
	}
	timer.Reset(t.Idle)
	resp.Body = &boundedBody{rc: resp.Body, ctx: ictx, idle: t.Idle, timer: timer, cancel: cancel}
	return resp, nil
}
