package datasource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
)

// ErrIMDSDisabled is IMDS answering 403 to the token request: the instance
// has its metadata endpoint turned off (http-endpoint disabled).
var ErrIMDSDisabled = errors.New("EC2 instance metadata service is disabled")

// imds is an IMDSv2 session: a token from PUT /latest/api/token sent with
// every GET, fetched again when a GET answers 401 (expired). The protocol is
// AWS's "Use the Instance Metadata Service to access instance metadata".
type imds struct {
	o     Options
	token string
}

// tokenTTL is the token lifetime asked for; provisioning needs seconds.
const tokenTTL = "300"

// Limits of what IMDS sends: a token is 56 bytes; meta-data items are
// short; user-data is at most 16 KiB on EC2, held to the NoCloud limit.
const (
	maxToken    = 4096
	maxMetaItem = 64 << 10
)

// refresh gets a new session token. Connection errors, 5xx and 429 are
// retried (fetch); 403 means IMDS is disabled.
func (c *imds) refresh(ctx context.Context) error {
	resp, err := fetch(ctx, c.o, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.o.IMDSBase+"/latest/api/token", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", tokenTTL)
		return req, nil
	}, maxToken)
	switch {
	case err != nil:
		return fmt.Errorf("requesting IMDSv2 token: %w", err)
	case resp.status == http.StatusForbidden:
		return ErrIMDSDisabled
	case resp.status != http.StatusOK:
		return fmt.Errorf("requesting IMDSv2 token: HTTP %d", resp.status)
	}
	c.token = strings.TrimSpace(string(resp.body))
	if c.token == "" {
		return errors.New("requesting IMDSv2 token: empty token")
	}
	return nil
}

// get fetches one item; a missing item (404) is errNoItem. A 401 (token
// expired or revoked) gets one new token and one more try.
func (c *imds) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		resp, err := fetch(ctx, c.o, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.IMDSBase+"/"+path, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("X-aws-ec2-metadata-token", c.token)
			return req, nil
		}, limit)
		if err != nil {
			return nil, err
		}
		switch resp.status {
		case http.StatusOK:
			return resp.body, nil
		case http.StatusNotFound:
			return nil, errNoItem
		case http.StatusUnauthorized:
			if attempt == 0 {
				if err := c.refresh(ctx); err != nil {
					return nil, err
				}
				continue
			}
		}
		return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.status)
	}
	return nil, fmt.Errorf("GET %s: still unauthorized with a new token", path)
}

// publicKeys reads every key pair's OpenSSH key: meta-data/public-keys/
// lists one "index=name" line per key pair, each key is at
// public-keys/<index>/openssh-key.
func (c *imds) publicKeys(ctx context.Context) ([]string, error) {
	list, err := c.get(ctx, "latest/meta-data/public-keys/", maxMetaItem)
	if errors.Is(err, errNoItem) {
		return nil, nil // launched without a key pair
	}
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, l := range strings.Split(string(list), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		n, _, _ := strings.Cut(l, "=")
		i, err := strconv.Atoi(strings.TrimSuffix(n, "/"))
		if err != nil || i < 0 {
			return nil, fmt.Errorf("public-keys/: line %q: want index=name", l)
		}
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var keys []string
	for _, i := range idx {
		k, err := c.get(ctx, fmt.Sprintf("latest/meta-data/public-keys/%d/openssh-key", i), maxMetaItem)
		if err != nil {
			return nil, fmt.Errorf("public-keys/%d/openssh-key: %w", i, err)
		}
		for _, l := range strings.Split(string(k), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				keys = append(keys, l)
			}
		}
	}
	return keys, nil
}

// EC2 reads instance-id, local-hostname, every public key and user-data
// from IMDSv2 (IMDSv1 is not used: instances may require v2).
func EC2(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	c := &imds{o: o}
	if err := c.refresh(ctx); err != nil {
		return nil, fmt.Errorf("ec2: %w", err)
	}
	d := &Data{Source: "ec2"}
	id, err := c.get(ctx, "latest/meta-data/instance-id", maxMetaItem)
	if err != nil {
		return nil, fmt.Errorf("ec2: instance-id: %w", err)
	}
	d.MetaData.InstanceID = strings.TrimSpace(string(id))
	if h, err := c.get(ctx, "latest/meta-data/local-hostname", maxMetaItem); err == nil {
		d.MetaData.LocalHostname = strings.TrimSpace(string(h))
	} else if !errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("ec2: local-hostname: %w", err)
	}
	if d.MetaData.PublicKeys, err = c.publicKeys(ctx); err != nil {
		return nil, fmt.Errorf("ec2: public-keys: %w", err)
	}
	ud, err := c.get(ctx, "latest/user-data", seed.MaxUserData)
	switch {
	case err == nil:
		d.UserData = ud
	case errors.Is(err, errNoItem): // launched without user-data
	default:
		return nil, fmt.Errorf("ec2: user-data: %w", err)
	}
	return d, nil
}
