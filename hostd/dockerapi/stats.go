package dockerapi

import (
	"encoding/json"
	"net/http"
	goruntime "runtime"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// stats is GET /containers/{id}/stats: one sample (stream=false) or one a
// second until the client goes (stream=true, the default), in dockerd's
// shape; precpu_stats is the previous sample, as the CLI's percentages
// need.
func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	c, err := a.E.Get(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	stream := r.URL.Query().Get("stream") == "" || queryBool(r, "stream")
	prev, err := a.E.Stats(c.ID)
	if err != nil {
		apiError(w, err)
		return
	}
	if !stream && !queryBool(r, "one-shot") {
		// dockerd waits a second for a precpu sample too.
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for {
		cur, err := a.E.Stats(c.ID)
		if err != nil {
			return // stopped: the stream ends, as dockerd's
		}
		if err := enc.Encode(statsJSON(c, cur, prev)); err != nil || !stream {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		prev = cur
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
	}
}

func statsJSON(c engine.Container, cur, prev engine.Stats) map[string]any {
	cpu := func(s engine.Stats) map[string]any {
		return map[string]any{
			"cpu_usage":        map[string]any{"total_usage": s.CPUNanos, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
			"system_cpu_usage": s.SystemNanos, "online_cpus": goruntime.NumCPU(), "throttling_data": map[string]any{},
		}
	}
	return map[string]any{
		"read": cur.Read.Format(time.RFC3339Nano), "preread": prev.Read.Format(time.RFC3339Nano),
		"id": c.ID, "name": "/" + c.Name,
		"pids_stats":   map[string]any{"current": cur.Pids},
		"cpu_stats":    cpu(cur),
		"precpu_stats": cpu(prev),
		"memory_stats": map[string]any{"usage": cur.MemoryUsage, "limit": cur.MemoryLimit, "stats": cur.MemoryStat},
		"blkio_stats":  map[string]any{},
		"networks":     map[string]any{},
	}
}
