package dockerapi

import (
	"net/http"
)

// export is GET /containers/{id}/export (docker export): a tar of the
// container's filesystem.
func (a *API) export(w http.ResponseWriter, r *http.Request) {
	sw := &startWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
	}}
	if err := a.E.Export(r.Context(), r.PathValue("id"), sw); err != nil {
		if !sw.started {
			apiError(w, err)
			return
		}
		a.log().Warn("docker export", "container", r.PathValue("id"), "err", err)
		panic(http.ErrAbortHandler)
	}
}

// startWriter sends the status with the first bytes, so an error found
// before any (no such container) can still be answered as one.
type startWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.start()
		s.started = true
	}
	return s.w.Write(p)
}
