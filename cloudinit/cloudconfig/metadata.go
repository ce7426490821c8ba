package cloudconfig

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MetaData is what Bulkhead reads from NoCloud meta-data (YAML or JSON,
// which is YAML) and what the EC2 datasource fills from IMDS.
type MetaData struct {
	InstanceID    string
	LocalHostname string
	PublicKeys    []string
	// NetworkInterfaces is older NoCloud seeds' network configuration, in
	// /etc/network/interfaces syntax (see ParseENI); a network-config file
	// takes precedence, as in cloud-init.
	NetworkInterfaces string
}

// ParseMetaData decodes meta-data. Unknown keys are kept out of the result
// silently: meta-data is the platform's, not the user's, and carries many.
func ParseMetaData(data []byte) (MetaData, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return MetaData{}, fmt.Errorf("meta-data: malformed YAML: %s", yamlMsg(err))
	}
	var md MetaData
	var probs Problems
	str := func(key string) string {
		v, ok := raw[key]
		if !ok || v == nil {
			return ""
		}
		switch v := v.(type) {
		case string:
			return v
		case int, float64, bool:
			return fmt.Sprint(v)
		}
		probs.add(key, "want a string")
		return ""
	}
	md.InstanceID = str("instance-id")
	md.LocalHostname = str("local-hostname")
	if md.LocalHostname == "" {
		md.LocalHostname = str("hostname")
	}
	md.NetworkInterfaces = str("network-interfaces")
	md.PublicKeys = publicKeys(raw["public-keys"], "public-keys", &probs)
	if len(probs) > 0 {
		return md, fmt.Errorf("meta-data: %w", probs)
	}
	return md, nil
}

// publicKeys flattens the shapes public-keys takes: a string of lines, a
// list, or a map (name -> key, or EC2's 0: {openssh-key: ...}).
func publicKeys(v any, path string, probs *Problems) []string {
	var out []string
	switch v := v.(type) {
	case nil:
	case string:
		for _, l := range strings.Split(v, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
	case []any:
		for i, e := range v {
			out = append(out, publicKeys(e, fmt.Sprintf("%s[%d]", path, i), probs)...)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, publicKeys(v[k], path+"."+k, probs)...)
		}
	case map[any]any: // YAML mappings with non-string keys (EC2's 0:)
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = e
		}
		out = publicKeys(m, path, probs)
	default:
		probs.add(path, "want a key, a list or a map of keys")
	}
	return out
}

// DecodeContent decodes write_files content by its encoding: b64/base64,
// gz/gzip, gz+b64 (and the spellings cloud-init accepts), text/plain.
func DecodeContent(content, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", "text/plain":
		return []byte(content), nil
	case "b64", "base64":
		return decodeB64([]byte(content))
	case "gz", "gzip":
		return gunzip([]byte(content))
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		raw, err := decodeB64([]byte(content))
		if err != nil {
			return nil, err
		}
		return gunzip(raw)
	}
	return nil, fmt.Errorf("unknown encoding %q: want b64, gzip, gz+b64 or text/plain", encoding)
}

// decodeB64 decodes standard base64, ignoring the line breaks YAML block
// scalars and MIME put in.
func decodeB64(data []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, data)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	return out[:n], nil
}
