package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// Errors callers decide on.
var (
	ErrNotFound       = errors.New("not in the update repository")
	ErrTruncated      = errors.New("download ended before the size the manifest gives")
	ErrDigestMismatch = errors.New("downloaded part does not match the manifest's sha256")
	ErrTooLarge       = errors.New("download is larger than the size the manifest gives")
)

// Client reads a repository at Base: an http(s):// URL, a file:// URL or a
// plain directory path.
type Client struct {
	Base     string
	HTTP     *http.Client // nil for one whose transport bounds connecting (Timeouts.Connect)
	Timeouts Timeouts     // zero fields: DefaultTimeouts
	Retry    Retry        // zero: DefaultRetry
	Log      *slog.Logger
}

// isHTTP tells whether the base is fetched over HTTP.
func (c *Client) isHTTP() bool {
	return strings.HasPrefix(c.Base, "http://") || strings.HasPrefix(c.Base, "https://")
}

// localPath turns a repository path into a file path for file:// and DIR bases.
func (c *Client) localPath(p string) (string, error) {
	base := c.Base
	if strings.HasPrefix(base, "file://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parsing repository URL %s: %w", base, err)
		}
		base = u.Path
	}
	return filepath.Join(base, filepath.FromSlash(p)), nil
}

func (c *Client) url(p string) string { return strings.TrimSuffix(c.Base, "/") + "/" + p }

// open returns a reader of p from offset on, whether the source honoured the
// offset (HTTP servers may answer a Range request with the whole file), and
// the total size when known (-1 otherwise).
func (c *Client) open(ctx context.Context, p string, offset int64, whole time.Duration) (io.ReadCloser, bool, int64, error) {
	if !c.isHTTP() {
		lp, err := c.localPath(p)
		if err != nil {
			return nil, false, 0, err
		}
		f, err := os.Open(lp)
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, 0, fmt.Errorf("reading %s: %w", lp, ErrNotFound)
		}
		if err != nil {
			return nil, false, 0, fmt.Errorf("reading %s: %w", lp, err)
		}
		st, err := f.Stat()
		if err == nil {
			_, err = f.Seek(offset, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, false, 0, fmt.Errorf("reading %s: %w", lp, err)
		}
		return f, true, st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(p), nil)
	if err != nil {
		return nil, false, 0, fmt.Errorf("fetching %s: %w", c.url(p), err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.do(ctx, req, whole)
	if err != nil {
		return nil, false, 0, fmt.Errorf("fetching %s: %w", c.url(p), err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, false, 0, fmt.Errorf("fetching %s: %w", c.url(p), ErrNotFound)
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		total := int64(-1)
		if _, after, ok := strings.Cut(resp.Header.Get("Content-Range"), "/"); ok {
			if n, err := strconv.ParseInt(after, 10, 64); err == nil {
				total = n
			}
		}
		return resp.Body, true, total, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The partial file is already as long as (or longer than) the
		// resource: restart from zero and let the digest decide. The
		// reader starts at 0, not at offset: not resumed.
		resp.Body.Close()
		rc, _, total, err := c.open(ctx, p, 0, whole)
		return rc, false, total, err
	case resp.StatusCode == http.StatusOK:
		return resp.Body, offset == 0, resp.ContentLength, nil
	}
	resp.Body.Close()
	err = fmt.Errorf("fetching %s: HTTP %s", c.url(p), resp.Status)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
		err = fmt.Errorf("%w: %w", errTransient, err)
	}
	return nil, false, 0, err
}

// maxSmall bounds channel, manifest, signature and TUF metadata files. The
// targets metadata lists five targets per published version (about 1 KiB),
// so 16 MiB holds thousands of versions.
const maxSmall = 16 << 20

// get reads a small file whole, retrying transient failures.
func (c *Client) get(ctx context.Context, p string) ([]byte, error) {
	var b []byte
	err := c.retry(ctx, p, func() error {
		var err error
		b, err = c.getOnce(ctx, p)
		return err
	})
	return b, err
}

func (c *Client) getOnce(ctx context.Context, p string) ([]byte, error) {
	rc, _, _, err := c.open(ctx, p, 0, c.timeouts().Request)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", p, c.Base, err)
	}
	if len(b) > maxSmall {
		return nil, fmt.Errorf("reading %s from %s: over %d bytes", p, c.Base, maxSmall)
	}
	return b, nil
}

// Channel fetches channels/<name>.json.
func (c *Client) Channel(ctx context.Context, name string) (*Channel, error) {
	if err := CheckChannelName(name); err != nil {
		return nil, err
	}
	b, err := c.get(ctx, ChannelPath(name))
	if err != nil {
		return nil, err
	}
	ch, err := ParseChannel(b)
	if err != nil {
		return nil, fmt.Errorf("reading channel %s from %s: %w", name, c.Base, err)
	}
	return ch, nil
}

// SignedManifest is a manifest's exact bytes and its signature file.
type SignedManifest struct {
	Body []byte
	Sig  []byte // nil when the repository has no signature file
}

// Manifest fetches a version's manifest and signature. It does not verify
// them: payload.Verify does, before anything uses the manifest.
func (c *Client) Manifest(ctx context.Context, version string) (*SignedManifest, error) {
	if err := payload.CheckVersion(version); err != nil {
		return nil, fmt.Errorf("fetching manifest of %q: %w", version, err)
	}
	body, err := c.get(ctx, VersionPath(version, ManifestName))
	if err != nil {
		return nil, err
	}
	sig, err := c.get(ctx, VersionPath(version, SigName))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return &SignedManifest{Body: body, Sig: sig}, nil
}

// Progress is told how far a part's download is.
type Progress func(part string, done, total int64)

// DownloadRequest is one part to fetch.
type DownloadRequest struct {
	Version  string
	Name     string // part name, for progress and errors
	Part     payload.Part
	Dir      string // download directory for this version
	Progress Progress
}

// partialSuffix marks a download in progress.
const partialSuffix = ".partial"

// Download fetches a part (see downloadOnce), retrying transient failures:
// each retry resumes from the bytes the failed attempt kept.
func (c *Client) Download(ctx context.Context, r DownloadRequest) (string, error) {
	var path string
	err := c.retry(ctx, r.Name, func() error {
		var err error
		path, err = c.downloadOnce(ctx, r)
		return err
	})
	return path, err
}

// downloadOnce fetches a part into Dir/<file>, resuming a previous partial
// download with an HTTP Range request, and returns the path once its size
// and sha256 match the manifest. A complete file from an earlier run is
// checked and kept. A mismatch deletes the partial file, so the next try
// starts over instead of resuming garbage.
func (c *Client) downloadOnce(ctx context.Context, r DownloadRequest) (string, error) {
	final := filepath.Join(r.Dir, r.Part.File)
	partial := final + partialSuffix
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	if n, sum, err := manifest.HashFile(final); err == nil && n == r.Part.Size && sum == r.Part.SHA256 {
		report(r, n)
		return final, nil
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	if have > r.Part.Size {
		have = 0
	}
	// Complete but not renamed: a power cut after the download, whose
	// rename did not reach the disk. Nothing to fetch; check and keep it.
	if have == r.Part.Size {
		if _, sum, err := manifest.HashFile(partial); err == nil && sum == r.Part.SHA256 {
			if err := os.Rename(partial, final); err != nil {
				return "", fmt.Errorf("downloading %s: %w", r.Name, err)
			}
			report(r, have)
			return final, nil
		}
		have = 0
	}
	rc, resumed, _, err := c.open(ctx, VersionPath(r.Version, r.Part.File), have, c.timeouts().Download)
	if err != nil {
		return "", fmt.Errorf("downloading %s of %s: %w", r.Name, r.Version, err)
	}
	defer rc.Close()
	if !resumed {
		have = 0
	}
	if err := f.Truncate(have); err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	// Hash as we go; a resumed download hashes the bytes it already has.
	h := sha256.New()
	if have > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return "", fmt.Errorf("downloading %s: reading %s: %w", r.Name, partial, err)
		}
		c.log().Info("resuming download", "part", r.Name, "version", r.Version, "offset", have)
	}
	done := have
	buf := make([]byte, 1<<20)
	// Read one byte more than the rest, to notice a source that is too long.
	src := io.LimitReader(rc, r.Part.Size-have+1)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if done+int64(n) > r.Part.Size {
				f.Close()
				os.Remove(partial)
				return "", fmt.Errorf("downloading %s of %s: %w", r.Name, r.Version, ErrTooLarge)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return "", fmt.Errorf("downloading %s to %s: %w", r.Name, partial, err)
			}
			h.Write(buf[:n])
			done += int64(n)
			report(r, done)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// Keep the partial file: the next run resumes from here.
			return "", fmt.Errorf("downloading %s of %s at byte %d: %w", r.Name, r.Version, done, rerr)
		}
	}
	if done < r.Part.Size {
		return "", fmt.Errorf("downloading %s of %s: %d of %d bytes: %w", r.Name, r.Version, done, r.Part.Size, ErrTruncated)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != r.Part.SHA256 {
		f.Close()
		os.Remove(partial)
		return "", fmt.Errorf("downloading %s of %s: sha256 %s, want %s: %w", r.Name, r.Version, sum, r.Part.SHA256, ErrDigestMismatch)
	}
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("downloading %s: %w", r.Name, err)
	}
	return final, nil
}

func report(r DownloadRequest, done int64) {
	if r.Progress != nil {
		r.Progress(r.Name, done, r.Part.Size)
	}
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return append(b, '\n'), nil
}

// FetchPart reads a small part of a version (a chunk index) whole into
// memory and checks its size and sha256 against the manifest's entry.
func (c *Client) FetchPart(ctx context.Context, version string, pt payload.Part) ([]byte, error) {
	if pt.Size > maxSmall {
		return nil, fmt.Errorf("fetching %s of %s: %d bytes: %w", pt.File, version, pt.Size, ErrTooLarge)
	}
	b, err := c.get(ctx, VersionPath(version, pt.File))
	if err != nil {
		return nil, fmt.Errorf("fetching %s of %s: %w", pt.File, version, err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != pt.Size || hex.EncodeToString(sum[:]) != pt.SHA256 {
		return nil, fmt.Errorf("fetching %s of %s: %d bytes sha256 %x, want %d bytes %s: %w", pt.File, version, len(b), sum, pt.Size, pt.SHA256, ErrDigestMismatch)
	}
	return b, nil
}

// Chunk reads one stored chunk (p: its path in the chunk store, ChunksDir).
// The caller checks it against its id.
func (c *Client) Chunk(ctx context.Context, p string) ([]byte, error) {
	return c.get(ctx, path.Join(ChunksDir, p))
}
