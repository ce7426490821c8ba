package ignition

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"
	"golang.org/x/net/http/httpproxy"
)

// Defaults of FetchOptions. The response-header timeout and the backoff
// are Ignition's (internal/resource/http.go). httpTotal is 0 ("no
// timeout") in the spec, which in the initramfs means retrying until the
// server answers; here the provisioning of everything after Ignition waits
// on the fetch, so an unset or zero total is capped at DefaultHTTPTotal.
const (
	DefaultHTTPResponseHeaders = 10 * time.Second
	DefaultHTTPTotal           = 10 * time.Minute
	DefaultMaxSize             = 128 << 20
	initialBackoff             = 200 * time.Millisecond
	maxBackoff                 = 5 * time.Second
)

// ErrTooLarge is returned for a resource over FetchOptions.MaxSize, as
// fetched or after decompression; nothing is ever silently truncated.
var ErrTooLarge = errors.New("resource over the size limit")

// ErrUnsupportedScheme is returned for a source whose scheme Ignition
// knows but Bulkhead does not fetch (tftp, s3, arn, gs).
var ErrUnsupportedScheme = errors.New("scheme not supported by Bulkhead (data, http and https are)")

// FetchOptions are the connection settings of every fetch of a config:
// the `ignition.timeouts`, `ignition.proxy` and
// `ignition.security.tls.certificateAuthorities` sections.
type FetchOptions struct {
	// HTTPResponseHeaders bounds the wait for a response's headers, per
	// attempt; 0 takes DefaultHTTPResponseHeaders, negative means none.
	HTTPResponseHeaders time.Duration
	// HTTPTotal bounds one fetch with all its retries; 0 takes
	// DefaultHTTPTotal.
	HTTPTotal time.Duration
	// Proxy is ignition.proxy; an empty one fetches directly (Ignition
	// does not read the proxy environment variables).
	Proxy types.Proxy
	// CAs are PEM bundles trusted for https in addition to the system
	// pool.
	CAs [][]byte
	// MaxSize bounds a resource's size, as fetched and decompressed; 0
	// takes DefaultMaxSize.
	MaxSize int64
}

// OptionsFrom turns a config's ignition section into FetchOptions. CAs
// are left to the caller: they are resources to fetch themselves.
func OptionsFrom(ign types.Ignition) FetchOptions {
	var o FetchOptions
	if t := ign.Timeouts.HTTPResponseHeaders; t != nil {
		o.HTTPResponseHeaders = time.Duration(*t) * time.Second
		if *t == 0 {
			o.HTTPResponseHeaders = -1 // spec: 0 is no timeout
		}
	}
	if t := ign.Timeouts.HTTPTotal; t != nil {
		o.HTTPTotal = time.Duration(*t) * time.Second
	}
	o.Proxy = ign.Proxy
	return o
}

// Fetch fetches a config or file from a data:, http: or https: URL with
// Ignition's fetch rules: retries with exponential backoff on connection
// errors and 5xx answers until opts.HTTPTotal, any other answer than 200
// an error, a body over opts.MaxSize an error. `ignition.config.url=` on
// the kernel command line is fetched with it.
func Fetch(ctx context.Context, opts FetchOptions, rawURL string) ([]byte, error) {
	f, err := newFetcher(opts)
	if err != nil {
		return nil, err
	}
	return f.fetch(ctx, types.Resource{Source: &rawURL})
}

// fetcher holds the client built from one set of FetchOptions.
type fetcher struct {
	opts   FetchOptions
	client *http.Client
}

func newFetcher(opts FetchOptions) (*fetcher, error) {
	if opts.HTTPResponseHeaders == 0 {
		opts.HTTPResponseHeaders = DefaultHTTPResponseHeaders
	}
	if opts.HTTPTotal <= 0 {
		opts.HTTPTotal = DefaultHTTPTotal
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = max(opts.HTTPResponseHeaders, 0)
	proxy := httpproxy.Config{
		HTTPProxy:  deref(opts.Proxy.HTTPProxy),
		HTTPSProxy: deref(opts.Proxy.HTTPSProxy),
	}
	var noProxy []string
	for _, n := range opts.Proxy.NoProxy {
		noProxy = append(noProxy, string(n))
	}
	proxy.NoProxy = strings.Join(noProxy, ",")
	proxyFunc := proxy.ProxyFunc()
	tr.Proxy = func(r *http.Request) (*url.URL, error) { return proxyFunc(r.URL) }
	if len(opts.CAs) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("reading the system certificate pool: %w", err)
		}
		for i, bundle := range opts.CAs {
			if err := addPEM(pool, bundle); err != nil {
				return nil, fmt.Errorf("ignition.security.tls.certificateAuthorities[%d]: %w", i, err)
			}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &fetcher{opts: opts, client: &http.Client{Transport: tr}}, nil
}

// addPEM adds every certificate of a PEM bundle; anything else in it is
// an error, as in Ignition (a bundle that is not PEM was a mistake).
func addPEM(pool *x509.CertPool, bundle []byte) error {
	rest := bytes.TrimSpace(bundle)
	if len(rest) == 0 {
		return errors.New("empty certificate bundle")
	}
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return errors.New("not a PEM certificate bundle")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("parsing certificate: %w", err)
		}
		pool.AddCert(cert)
		rest = bytes.TrimSpace(rest)
	}
	return nil
}

// schemeOf returns the scheme of a source, lowercased, and whether
// Bulkhead fetches it. Ignition's spec lists http, https, tftp, s3, arn,
// gs and data.
func schemeOf(src string) (string, bool) {
	u, err := url.Parse(src)
	if err != nil {
		scheme, _, _ := strings.Cut(src, ":")
		return strings.ToLower(scheme), false
	}
	s := strings.ToLower(u.Scheme)
	return s, s == "data" || s == "http" || s == "https"
}

// fetch reads a resource, decompresses it and checks its verification
// hash against the decompressed bytes: spec 3.x, "If compression is
// specified, the hash describes the decompressed file".
func (f *fetcher) fetch(ctx context.Context, r types.Resource) ([]byte, error) {
	src := deref(r.Source)
	scheme, ok := schemeOf(src)
	if !ok {
		return nil, fmt.Errorf("source %s: %w", redact(src), ErrUnsupportedScheme)
	}
	var raw []byte
	switch scheme {
	case "data":
		u, err := dataurl.DecodeString(src)
		if err != nil {
			return nil, fmt.Errorf("source: data URL: %w", err)
		}
		raw = u.Data
		if int64(len(raw)) > f.opts.MaxSize {
			return nil, fmt.Errorf("source: data URL of %d bytes: %w (%d bytes)", len(raw), ErrTooLarge, f.opts.MaxSize)
		}
	default:
		var err error
		if raw, err = f.http(ctx, src, r.HTTPHeaders); err != nil {
			return nil, err
		}
	}
	data, err := f.decompress(raw, deref(r.Compression))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(src), err)
	}
	if err := verify(data, r.Verification.Hash); err != nil {
		return nil, fmt.Errorf("%s: %w", redact(src), err)
	}
	return data, nil
}

func (f *fetcher) decompress(raw []byte, compression string) ([]byte, error) {
	switch compression {
	case "":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("compression gzip: %w", err)
		}
		out, err := readLimited(zr, f.opts.MaxSize)
		if err != nil {
			return nil, fmt.Errorf("compression gzip: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("compression: %q not supported (want gzip)", compression)
}

// readLimited reads all of r, or fails with ErrTooLarge past limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return data, nil
}

// http GETs src, retrying as Ignition does: connection errors and 5xx
// answers are tried again after 200ms, doubling up to 5s, until
// HTTPTotal has passed since the first attempt.
func (f *fetcher) http(ctx context.Context, src string, headers types.HTTPHeaders) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.HTTPTotal)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", redact(src), err)
	}
	req.Header.Set("User-Agent", "Ignition/2 (Bulkhead)")
	for _, h := range headers {
		req.Header.Set(h.Name, deref(h.Value))
	}
	backoff := initialBackoff
	for attempt := 1; ; attempt++ {
		body, retry, err := f.attempt(req)
		if err == nil {
			return body, nil
		}
		if !retry {
			return nil, fmt.Errorf("fetching %s: %w", redact(src), err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, fmt.Errorf("fetching %s: gave up after %d attempts in %s (ignition.timeouts.httpTotal): %w",
				redact(src), attempt, f.opts.HTTPTotal, err)
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// attempt makes one request; retry says whether a failure is worth
// another (Ignition retries transport errors and every 5xx).
func (f *fetcher) attempt(req *http.Request) ([]byte, bool, error) {
	resp, err := f.client.Do(req)
	if err != nil {
		// a TLS verification failure will not heal by waiting
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		if errors.As(err, &uerr) || errors.As(err, &herr) {
			return nil, false, err
		}
		return nil, true, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return nil, true, fmt.Errorf("server answered %s", resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("server answered %s", resp.Status)
	}
	if resp.ContentLength > f.opts.MaxSize {
		return nil, false, fmt.Errorf("body of %d bytes: %w (%d bytes)", resp.ContentLength, ErrTooLarge, f.opts.MaxSize)
	}
	body, err := readLimited(resp.Body, f.opts.MaxSize)
	if errors.Is(err, ErrTooLarge) {
		return nil, false, fmt.Errorf("body: %w", err)
	}
	if err != nil {
		return nil, true, fmt.Errorf("reading body: %w", err)
	}
	return body, false, nil
}

// redact shortens data: URLs in messages: they may hold secrets and are
// as long as the file.
func redact(src string) string {
	if strings.HasPrefix(strings.ToLower(src), "data:") {
		return "data URL"
	}
	return src
}

// verify checks "sha512-<hex>" or "sha256-<hex>" against data.
func verify(data []byte, want *string) error {
	if want == nil {
		return nil
	}
	algo, sum, ok := strings.Cut(*want, "-")
	var h hash.Hash
	switch {
	case ok && algo == "sha512":
		h = sha512.New()
	case ok && algo == "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("verification.hash: %q: want sha512-<hex> or sha256-<hex>", *want)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(sum) {
		return fmt.Errorf("verification.hash: got %s-%s, want %s", algo, got, *want)
	}
	return nil
}
