package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// pathStatHeader carries a path's stat, base64 of its JSON (Engine API,
// "Get information about files in a container").
const pathStatHeader = "X-Docker-Container-Path-Stat"

func setPathStat(w http.ResponseWriter, ps engine.PathStat) {
	b, _ := json.Marshal(ps)
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(b))
}

// archiveError answers a docker cp failure: a path the container does not
// have is a 404, as with dockerd.
func archiveError(w http.ResponseWriter, err error) {
	if errors.Is(err, engine.ErrNoPath) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": err.Error()})
		return
	}
	apiError(w, err)
}

// archivePath is the path query parameter, required.
func archivePath(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.URL.Query().Get("path")
	if p == "" {
		apiError(w, badRequest("archive: the path parameter is required"))
		return "", false
	}
	return p, true
}

// archiveHead is HEAD /containers/{id}/archive: the stat of path.
func (a *API) archiveHead(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	ps, err := a.E.StatPath(r.PathValue("id"), p)
	if err != nil {
		archiveError(w, err)
		return
	}
	setPathStat(w, ps)
	w.WriteHeader(http.StatusOK)
}

// archiveGet is GET /containers/{id}/archive (docker cp out): a tar of
// path, its stat in the header.
func (a *API) archiveGet(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	started := false
	err := a.E.CopyFrom(r.PathValue("id"), p, func(ps engine.PathStat) {
		setPathStat(w, ps)
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
	}, w)
	switch {
	case err != nil && !started:
		archiveError(w, err)
	case err != nil:
		// The status is sent; cutting the stream short makes the
		// client's tar reader fail instead of taking a partial copy.
		a.log().Warn("docker cp from container", "container", r.PathValue("id"), "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// archivePut is PUT /containers/{id}/archive (docker cp in): the tar body
// unpacked into the directory path.
func (a *API) archivePut(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	var o engine.CopyOptions
	for key, v := range map[string]*bool{"copyUIDGID": &o.KeepOwner, "noOverwriteDirNonDir": &o.NoOverwriteDirNonDir} {
		if s := r.URL.Query().Get(key); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				apiError(w, badRequest("archive: %s %q: not a boolean", key, s))
				return
			}
			*v = b
		}
	}
	if err := a.E.CopyTo(r.Context(), r.PathValue("id"), p, r.Body, o); err != nil {
		archiveError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
