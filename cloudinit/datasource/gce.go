package datasource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// ErrNotGCEMetadata is an answer without Metadata-Flavor: Google. Google's
// metadata server sets that header on every answer; one without it came
// from something else on the path (a proxy, a spoofer), and its data must
// not provision the host.
var ErrNotGCEMetadata = errors.New("answer lacks Metadata-Flavor: Google: not the GCE metadata server")

// maxGCEAttributes bounds the attributes directory read as JSON: Compute
// Engine caps all of an instance's metadata at 512 KB, user-data included.
const maxGCEAttributes = 1 << 20

// IsGCE reports whether the hardware says Compute Engine, the check
// cloud-init makes before asking the metadata server: the SMBIOS product
// name is "Google Compute Engine" (or "Google"), the BIOS vendor "Google",
// or the serial "GoogleCloud-..." when the product name is missing.
func IsGCE(root fsroot.Root) bool {
	p := dmi(root, "product_name")
	return p == "Google Compute Engine" || p == "Google" || dmi(root, "bios_vendor") == "Google" ||
		strings.HasPrefix(dmi(root, "product_serial"), "GoogleCloud-")
}

// gceGet fetches one item of the metadata server's v1 tree (Google's
// "About VM metadata"): every request carries Metadata-Flavor: Google,
// which the server demands (403 without), and every answer must carry it
// back. A missing item (404) is errNoItem.
func gceGet(ctx context.Context, o Options, path string, limit int64) ([]byte, error) {
	resp, err := fetch(ctx, o, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.IMDSBase+"/computeMetadata/v1/"+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Metadata-Flavor", "Google")
		return req, nil
	}, limit)
	if err != nil {
		return nil, err
	}
	if resp.header.Get("Metadata-Flavor") != "Google" {
		return nil, fmt.Errorf("GET %s: %w", path, ErrNotGCEMetadata)
	}
	switch resp.status {
	case http.StatusOK:
		return resp.body, nil
	case http.StatusNotFound:
		return nil, errNoItem
	}
	return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.status)
}

// gceAttributes reads an attributes directory (instance/attributes/ or
// project/attributes/) in one request as a JSON object of strings.
func gceAttributes(ctx context.Context, o Options, dir string) (map[string]string, error) {
	body, err := gceGet(ctx, o, dir+"/?recursive=true", maxGCEAttributes)
	if errors.Is(err, errNoItem) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	if err := json.Unmarshal(body, &attrs); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of strings: %w", dir, err)
	}
	return attrs, nil
}

// GCE reads instance id, hostname, SSH keys and user-data from Compute
// Engine's metadata server, as cloud-init's GCE datasource does:
//   - the hostname is the first label of instance/hostname (Google's FQDNs
//     are long; cloud-init asked for short names);
//   - public keys are the lines of the instance's ssh-keys and sshKeys
//     attributes, and of the project's unless the instance sets
//     block-project-ssh-keys to true or has the legacy sshKeys; each line is
//     USER:KEY, and only keys of the user "cloudinit" or of the default user
//     (Options.DefaultUser) are kept, for the default user. Other users'
//     keys are for Google's guest agent, which Bulkhead does not run; keys
//     whose google-ssh expireOn has passed are dropped;
//   - user-data is the instance attribute user-data, base64-decoded when
//     user-data-encoding is base64.
//
// It asks 169.254.169.254 (Options.IMDSBase), the address Google documents
// beside metadata.google.internal: the init stage runs before name
// resolution is up.
func GCE(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	d := &Data{Source: "gce"}
	id, err := gceGet(ctx, o, "instance/id", maxMetaItem)
	if err != nil {
		return nil, fmt.Errorf("gce: instance/id: %w", err)
	}
	d.MetaData.InstanceID = strings.TrimSpace(string(id))
	if d.MetaData.InstanceID == "" {
		return nil, errors.New("gce: instance/id: empty")
	}
	host, err := gceGet(ctx, o, "instance/hostname", maxMetaItem)
	switch {
	case err == nil:
		d.MetaData.LocalHostname, _, _ = strings.Cut(strings.TrimSpace(string(host)), ".")
	case !errors.Is(err, errNoItem):
		return nil, fmt.Errorf("gce: instance/hostname: %w", err)
	}
	inst, err := gceAttributes(ctx, o, "instance/attributes")
	if err != nil {
		return nil, fmt.Errorf("gce: %w", err)
	}
	var lines []string
	lines = append(lines, inst["sshKeys"], inst["ssh-keys"])
	if !strings.EqualFold(inst["block-project-ssh-keys"], "true") && inst["sshKeys"] == "" {
		proj, err := gceAttributes(ctx, o, "project/attributes")
		if err != nil {
			return nil, fmt.Errorf("gce: %w", err)
		}
		lines = append(lines, proj["ssh-keys"], proj["sshKeys"])
	}
	var others []string
	d.MetaData.PublicKeys, others = gceKeys(strings.Split(strings.Join(lines, "\n"), "\n"), o.DefaultUser, time.Now())
	if len(others) > 0 {
		o.Log.Info("gce: ssh-keys of other users left to Google's guest agent, which is not run", "users", others)
	}
	if ud, ok := inst["user-data"]; ok {
		switch enc := inst["user-data-encoding"]; enc {
		case "":
			d.UserData = []byte(ud)
		case "base64":
			if d.UserData, err = base64.StdEncoding.DecodeString(strings.TrimSpace(ud)); err != nil {
				return nil, fmt.Errorf("gce: user-data: user-data-encoding is base64: %w", err)
			}
		default:
			// cloud-init warns and takes the value as it is.
			o.Log.Warn("gce: unknown user-data-encoding; user-data taken as it is", "encoding", enc)
			d.UserData = []byte(ud)
		}
		if len(d.UserData) > seed.MaxUserData {
			return nil, fmt.Errorf("gce: user-data: %d bytes: more than %d bytes: %w", len(d.UserData), seed.MaxUserData, seed.ErrTooLarge)
		}
	}
	return d, nil
}

// gceKeys picks the default user's keys from ssh-keys lines (USER:KEY):
// the users "cloudinit" and defaultUser, keys not expired at now, in their
// order, each once. It returns the other users named, each once.
func gceKeys(lines []string, defaultUser string, now time.Time) (keys, others []string) {
	seen := map[string]bool{}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.IndexFunc(l, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
			continue // cloud-init skips non-ASCII lines
		}
		user, key, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if user != "cloudinit" && (defaultUser == "" || user != defaultUser) {
			if !seen["user "+user] {
				seen["user "+user] = true
				others = append(others, user)
			}
			continue
		}
		key = strings.TrimSpace(key)
		if key == "" || gceKeyExpired(key, now) || seen[key] {
			continue
		}
		seen[key] = true
		keys = append(keys, key)
	}
	return keys, others
}

// gceKeyExpired reads Google's key format "TYPE KEY google-ssh
// {"userName":...,"expireOn":"2006-01-02T15:04:05+0000"}": such a key is
// dropped once expireOn has passed. Keys in other forms never expire.
func gceKeyExpired(key string, now time.Time) bool {
	f := strings.SplitN(key, " ", 4)
	if len(f) != 4 || f[2] != "google-ssh" {
		return false
	}
	var v struct {
		ExpireOn string `json:"expireOn"`
	}
	if json.Unmarshal([]byte(f[3]), &v) != nil || v.ExpireOn == "" {
		return false
	}
	t, err := time.Parse("2006-01-02T15:04:05-0700", v.ExpireOn)
	return err == nil && now.After(t)
}
