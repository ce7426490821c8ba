package datasource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrIMDSDisabled is IMDS answering 403 to the token request: the instance
// has its metadata endpoint turned off (http-endpoint disabled).
var ErrIMDSDisabled = errors.New("EC2 instance metadata service is disabled")

// imds is an IMDSv2 session: a token from PUT /latest/api/token sent with
// every GET, fetched again when a GET answers 401 (expired).
type imds struct {
	o     Options
	token string
}

// tokenTTL is the token lifetime asked for; provisioning needs seconds.
const tokenTTL = "300"

func (c *imds) refresh(ctx context.Context) error {
	return retryNet(ctx, c.o, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.o.IMDSBase+"/latest/api/token", nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", tokenTTL)
		resp, err := c.o.HTTP.Do(req)
		if err != nil {
			return true, fmt.Errorf("requesting IMDSv2 token: %w", err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusForbidden:
			return false, ErrIMDSDisabled
		default:
			return false, fmt.Errorf("requesting IMDSv2 token: %s", resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return false, fmt.Errorf("reading IMDSv2 token: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		return false, nil
	})
}

// get fetches one item; a missing item (404) is errNoItem.
func (c *imds) get(ctx context.Context, path string) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		var body []byte
		status := 0
		err := retryNet(ctx, c.o, func(ctx context.Context) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.IMDSBase+"/"+path, nil)
			if err != nil {
				return false, err
			}
			req.Header.Set("X-aws-ec2-metadata-token", c.token)
			resp, err := c.o.HTTP.Do(req)
			if err != nil {
				return true, err
			}
			defer resp.Body.Close()
			status = resp.StatusCode
			if status == http.StatusOK {
				body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
			}
			return false, err
		})
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		switch status {
		case http.StatusOK:
			return body, nil
		case http.StatusNotFound:
			return nil, errNoItem
		case http.StatusUnauthorized:
			if attempt == 0 { // token expired or revoked: one new one
				if err := c.refresh(ctx); err != nil {
					return nil, err
				}
				continue
			}
		}
		return nil, fmt.Errorf("GET %s: HTTP %d", path, status)
	}
	return nil, fmt.Errorf("GET %s: still unauthorized with a new token", path)
}

// EC2 reads instance-id, local-hostname, the first public key and
// user-data from IMDSv2 (IMDSv1 is not used: instances may require v2).
func EC2(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	c := &imds{o: o}
	if err := c.refresh(ctx); err != nil {
		return nil, fmt.Errorf("ec2: %w", err)
	}
	d := &Data{Source: "ec2"}
	id, err := c.get(ctx, "latest/meta-data/instance-id")
	if err != nil {
		return nil, fmt.Errorf("ec2: instance-id: %w", err)
	}
	d.MetaData.InstanceID = strings.TrimSpace(string(id))
	if h, err := c.get(ctx, "latest/meta-data/local-hostname"); err == nil {
		d.MetaData.LocalHostname = strings.TrimSpace(string(h))
	} else if !errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("ec2: local-hostname: %w", err)
	}
	if k, err := c.get(ctx, "latest/meta-data/public-keys/0/openssh-key"); err == nil {
		for _, l := range strings.Split(string(k), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				d.MetaData.PublicKeys = append(d.MetaData.PublicKeys, l)
			}
		}
	} else if !errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("ec2: public-keys: %w", err)
	}
	ud, err := c.get(ctx, "latest/user-data")
	switch {
	case err == nil:
		d.UserData = ud
	case errors.Is(err, errNoItem): // launched without user-data
	default:
		return nil, fmt.Errorf("ec2: user-data: %w", err)
	}
	return d, nil
}
