package datasource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
)

// errNoItem is a 404 or a missing file: the item is absent.
var errNoItem = errors.New("not found")

// minAttempts is how often a retryable failure is tried even when
// Options.NetWait is spent (or zero): a 503 from a busy IMDS is not the
// network being down.
const minAttempts = 3

// maxRetryAfter caps a server's Retry-After: provisioning waits for a
// throttled IMDS, not for a server asking for an hour.
const maxRetryAfter = 10 * time.Second

// retryAfter is a retryable error whose server asked for a delay.
type retryAfter struct {
	err   error
	after time.Duration
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// response is what one HTTP exchange gave: the status, the headers, and
// the body when the status was 200.
type response struct {
	status int
	header http.Header
	body   []byte
}

// fetch makes the request newReq builds, retrying with backoff (see
// retryNet) on connection errors, timeouts, 5xx and 429 (and 410 where
// Options.retryGone says so). The body of a 200
// is read within the per-request timeout and must fit in limit bytes: a
// larger one is an error wrapping seed.ErrTooLarge, never a truncation.
// Other statuses are returned for the caller to judge.
func fetch(ctx context.Context, o Options, newReq func(context.Context) (*http.Request, error), limit int64) (response, error) {
	var out response
	err := retryNet(ctx, o, func(ctx context.Context) (bool, error) {
		req, err := newReq(ctx)
		if err != nil {
			return false, err
		}
		what := req.Method + " " + req.URL.Redacted()
		resp, err := o.HTTP.Do(req)
		if err != nil {
			return true, fmt.Errorf("%s: %w", what, err)
		}
		defer resp.Body.Close()
		out = response{status: resp.StatusCode, header: resp.Header}
		switch {
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests ||
			(o.retryGone && resp.StatusCode == http.StatusGone):
			err := fmt.Errorf("%s: %s", what, resp.Status)
			// Retry-After in seconds (RFC 9110 10.2.3), as IMDS sends
			// when it throttles; an HTTP date is ignored.
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
				err = &retryAfter{err: err, after: min(time.Duration(secs)*time.Second, maxRetryAfter)}
			}
			return true, err
		case resp.StatusCode != http.StatusOK:
			return false, nil
		}
		out.body, err = seed.ReadLimited(resp.Body, limit)
		if errors.Is(err, seed.ErrTooLarge) {
			return false, fmt.Errorf("%s: body %w", what, err)
		}
		if err != nil {
			// A body cut off mid-way (timeout, reset) is worth another try.
			return true, fmt.Errorf("%s: reading body: %w", what, err)
		}
		return false, nil
	})
	return out, err
}

// httpGet fetches url from a remote server (each request bounded by
// o.FetchTimeout), retrying as fetch does. 404 is errNoItem.
func httpGet(ctx context.Context, o Options, url string, limit int64) ([]byte, error) {
	o.RequestTimeout = o.FetchTimeout
	resp, err := fetch(ctx, o, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}, limit)
	switch {
	case err != nil:
		return nil, err
	case resp.status == http.StatusNotFound:
		return nil, errNoItem
	case resp.status != http.StatusOK:
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.status)
	}
	return resp.body, nil
}

// retryNet calls f with a per-request timeout (o.RequestTimeout) until it
// succeeds, fails for good (retry false), or both o.NetWait is spent and
// minAttempts were made. The delay between attempts doubles from 100ms up
// to 2s, as the network may still be coming up.
func retryNet(ctx context.Context, o Options, f func(context.Context) (retry bool, err error)) error {
	deadline := time.Now().Add(o.NetWait)
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
		retry, err := f(rctx)
		cancel()
		if err == nil || !retry {
			return err
		}
		if attempt >= minAttempts && time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		o.Log.Debug("network source not answering yet", "attempt", attempt, "err", err)
		wait := delay
		var ra *retryAfter
		if errors.As(err, &ra) {
			wait = max(wait, ra.after)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (canceled: %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		delay = min(delay*2, 2*time.Second)
	}
}
