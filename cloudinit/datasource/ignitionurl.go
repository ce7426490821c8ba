package datasource

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// maxIgnitionConfig bounds a fetched Ignition config, as user-data is
// bounded (seed.MaxUserData): a config is JSON of a few KiB; files it
// writes are fetched by the Ignition stage, not here.
const maxIgnitionConfig = 16 << 20

// ignitionUserAgent is sent with the fetch, so a config server can tell
// provisioning requests from others (Ignition sends "Ignition/<version>").
const ignitionUserAgent = "Bulkhead-Ignition/1"

// IgnitionURL fetches the Ignition config named on the kernel command line
// by ignition.config.url= (Fedora CoreOS's flag for bare metal and PXE).
// It is fetched with the datasource's own HTTP client: connection errors,
// timeouts, 5xx and 429 are retried with backoff while the network comes
// up, for at most Options.NetWait (each request bounded by
// FetchTimeout); a body over 16 MiB is an error, never a truncation.
// Only http and https URLs are supported: tftp, s3, gs, arn and data URLs
// are refused by name. ErrNotFound when the flag is absent.
func IgnitionURL(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	raw := ""
	for _, f := range strings.Fields(o.Cmdline) {
		if v, ok := strings.CutPrefix(f, "ignition.config.url="); ok {
			raw = v
		}
	}
	if raw == "" {
		return nil, ErrNotFound
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("ignition.config.url=%s: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("ignition.config.url=%s: scheme %q is not supported (http and https are)", u.Redacted(), u.Scheme)
	}
	o.RequestTimeout = o.FetchTimeout
	resp, err := fetch(ctx, o, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", ignitionUserAgent)
		req.Header.Set("Accept", "application/vnd.coreos.ignition+json;version=3.4.0, */*;q=0.1")
		return req, nil
	}, maxIgnitionConfig)
	if err != nil {
		return nil, fmt.Errorf("ignition.config.url: %w", err)
	}
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("ignition.config.url: GET %s: HTTP %d", u.Redacted(), resp.status)
	}
	if strings.TrimSpace(string(resp.body)) == "" {
		return nil, fmt.Errorf("ignition.config.url: GET %s: empty config", u.Redacted())
	}
	return ignitionData("ignition:"+u.Redacted(), resp.body), nil
}
