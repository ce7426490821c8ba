package cloudconfig

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
)

// Kind is what a user-data part is.
type Kind string

// Part kinds, named after the MIME types cloud-init uses for them.
const (
	KindCloudConfig Kind = "text/cloud-config"
	KindScript      Kind = "text/x-shellscript"
	KindBoothook    Kind = "text/cloud-boothook"
	KindIgnition    Kind = "application/vnd.coreos.ignition+json"
	KindInclude     Kind = "text/x-include-url"
)

// Part is one piece of user-data.
type Part struct {
	Kind    Kind
	Name    string // file name for scripts: from MIME, else part-NNN
	Content []byte
}

// maxUserData bounds decompressed user-data (a gzip bomb must not fill RAM).
const maxUserData = 64 << 20

// maxDepth bounds nesting of gzip and multipart inside each other.
const maxDepth = 5

// Split turns raw user-data into its parts. Parts it cannot use are reported
// as problems and left out; the rest are still returned.
func Split(data []byte) ([]Part, Problems) {
	var s splitter
	s.split("user-data", data, 0)
	for i := range s.parts {
		if s.parts[i].Name == "" {
			s.parts[i].Name = fmt.Sprintf("part-%03d", i+1)
		}
	}
	return s.parts, s.probs
}

type splitter struct {
	parts []Part
	probs Problems
}

func (s *splitter) split(path string, data []byte, depth int) {
	if depth > maxDepth {
		s.probs.add(path, "nested more than %d levels deep", maxDepth)
		return
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		plain, err := gunzip(data)
		if err != nil {
			s.probs.add(path, "gzip: %v", err)
			return
		}
		s.split(path, plain, depth+1)
		return
	}
	first := firstLine(data)
	switch {
	case strings.HasPrefix(first, "#cloud-config-archive"):
		s.probs.add(path, "#cloud-config-archive is not supported; use MIME multipart")
	case strings.HasPrefix(first, "#cloud-config"):
		s.parts = append(s.parts, Part{Kind: KindCloudConfig, Content: data})
	case strings.HasPrefix(first, "#!"):
		s.parts = append(s.parts, Part{Kind: KindScript, Content: data})
	case strings.HasPrefix(first, "#cloud-boothook"):
		s.parts = append(s.parts, Part{Kind: KindBoothook, Content: data})
	case strings.HasPrefix(first, "#include"):
		s.probs.add(path, "#include is not supported; put the content in the user-data")
	case strings.HasPrefix(first, "## template:"):
		s.probs.add(path, "Jinja templates are not supported")
	case isMIME(data):
		s.splitMIME(path, data, depth)
	case IsIgnition(data):
		s.parts = append(s.parts, Part{Kind: KindIgnition, Content: data})
	default:
		s.probs.add(path, "unrecognized format (first line %q): want #cloud-config, #!, MIME multipart, gzip or an Ignition config", trim(first, 40))
	}
}

func (s *splitter) splitMIME(path string, data []byte, depth int) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		s.probs.add(path, "MIME: %v", err)
		return
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		s.probs.add(path, "MIME Content-Type: %v", err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(msg.Body, maxUserData))
	if err != nil {
		s.probs.add(path, "MIME: %v", err)
		return
	}
	if !strings.HasPrefix(mt, "multipart/") {
		s.addTyped(path, mt, "", body, depth)
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return
		}
		ppath := fmt.Sprintf("%s[%d]", path, i)
		if err != nil {
			s.probs.add(ppath, "MIME: %v", err)
			return
		}
		content, err := io.ReadAll(io.LimitReader(p, maxUserData))
		if err != nil {
			s.probs.add(ppath, "MIME: %v", err)
			return
		}
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			// multipart.Part only undoes quoted-printable by itself.
			content, err = decodeB64(content)
			if err != nil {
				s.probs.add(ppath, "base64: %v", err)
				continue
			}
		}
		pmt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		s.addTyped(ppath, pmt, p.FileName(), content, depth)
	}
}

// addTyped adds a MIME part by its declared type.
func (s *splitter) addTyped(path, mt, name string, content []byte, depth int) {
	before := len(s.parts)
	switch mt {
	case string(KindCloudConfig), "text/cloud-config-jsonp":
		s.parts = append(s.parts, Part{Kind: KindCloudConfig, Content: content})
	case string(KindScript):
		s.parts = append(s.parts, Part{Kind: KindScript, Content: content})
	case string(KindBoothook):
		s.parts = append(s.parts, Part{Kind: KindBoothook, Content: content})
	case "application/x-gzip", "application/gzip", "text/plain", "", "multipart/mixed", "text/x-not-multipart":
		// Untyped: sniff the content, as cloud-init does for text/plain.
		s.split(path, content, depth+1)
	case string(KindInclude):
		s.probs.add(path, "%s is not supported", mt)
	case string(KindIgnition), "application/json":
		if IsIgnition(content) {
			s.parts = append(s.parts, Part{Kind: KindIgnition, Content: content})
		} else {
			s.probs.add(path, "%s part is not an Ignition config", mt)
		}
	default:
		s.probs.add(path, "unsupported MIME type %q", mt)
	}
	if name != "" && len(s.parts) == before+1 {
		s.parts[before].Name = name
	}
}

// IsIgnition reports whether data is a JSON object with ignition.version.
func IsIgnition(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	var probe struct {
		Ignition struct {
			Version string `json:"version"`
		} `json:"ignition"`
	}
	return json.Unmarshal(trimmed, &probe) == nil && probe.Ignition.Version != ""
}

func isMIME(data []byte) bool {
	head := strings.ToLower(string(data[:min(len(data), 4096)]))
	return strings.HasPrefix(head, "content-type:") || strings.HasPrefix(head, "mime-version:") ||
		strings.Contains(head, "\ncontent-type: multipart/")
}

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxUserData+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxUserData {
		return nil, fmt.Errorf("larger than %d bytes uncompressed", maxUserData)
	}
	return out, nil
}

func firstLine(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if sc.Scan() {
		return strings.TrimRight(sc.Text(), "\r")
	}
	return ""
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
