package dockerapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

// rename is POST /containers/{id}/rename?name=NEW.
func (a *API) rename(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		apiError(w, badRequest("rename needs a name"))
		return
	}
	if err := a.E.Rename(r.PathValue("id"), name); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// imagePost routes POST /images/{name}/tag; other image actions (push)
// are not implemented and say so.
func (a *API) imagePost(w http.ResponseWriter, r *http.Request) {
	ref, action, _ := cutLast(r.PathValue("name"), "/")
	if action == "push" {
		a.push(w, r, ref)
		return
	}
	if action != "tag" {
		apiError(w, badRequest("POST /images/%s: not implemented by hostd", r.PathValue("name")))
		return
	}
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		apiError(w, badRequest("tag needs a repo"))
		return
	}
	if tag != "" {
		repo += ":" + tag
	}
	if _, err := a.E.Images().Tag(ref, repo); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// pruneFilter is the filters of the prune endpoints: until (created
// before), label and label! (with, or without, a label).
type pruneFilter struct {
	f     filterArgs
	until time.Time
}

func parsePrune(r *http.Request, keys ...string) (pruneFilter, error) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return pruneFilter{}, err
	}
	if err := f.validate(append(keys, "until", "label", "label!")...); err != nil {
		return pruneFilter{}, err
	}
	p := pruneFilter{f: f}
	for _, v := range f["until"] {
		if p.until, err = parseTimestamp(v, time.Now()); err != nil {
			return pruneFilter{}, badRequest("invalid filter 'until=%s': %v", v, err)
		}
	}
	return p, nil
}

func (p pruneFilter) match(created time.Time, labels map[string]string) bool {
	if !p.until.IsZero() && !created.Before(p.until) {
		return false
	}
	if !p.f.matchLabels("label", labels) {
		return false
	}
	for _, v := range p.f["label!"] {
		if (filterArgs{"label": {v}}).matchLabels("label", labels) {
			return false
		}
	}
	return true
}

// containerPrune is POST /containers/prune: every container that is not
// running and matches the filters is removed.
func (a *API) containerPrune(w http.ResponseWriter, r *http.Request) {
	p, err := parsePrune(r)
	if err != nil {
		apiError(w, err)
		return
	}
	deleted := []string{}
	var space int64
	for _, c := range a.E.List() {
		if c.State == engine.StateRunning || !p.match(c.Created, c.Spec.Labels) {
			continue
		}
		size := a.E.SizeRw(c)
		if err := a.E.Remove(r.Context(), c.ID, false); err != nil {
			apiError(w, err)
			return
		}
		deleted = append(deleted, c.ID)
		space += size
	}
	writeJSON(w, http.StatusOK, map[string]any{"ContainersDeleted": deleted, "SpaceReclaimed": space})
}

// imagePrune is POST /images/prune: dangling images no container uses,
// or with dangling=false (docker image prune -a) every image no container
// uses.
func (a *API) imagePrune(w http.ResponseWriter, r *http.Request) {
	p, err := parsePrune(r, "dangling")
	if err != nil {
		apiError(w, err)
		return
	}
	danglingOnly := true
	if v, set, err := p.f.boolValue("dangling"); err != nil {
		apiError(w, err)
		return
	} else if set {
		danglingOnly = v
	}
	used := map[string]bool{}
	for _, c := range a.E.List() {
		used[c.ImageID] = true
	}
	imgs, err := a.E.Images().List()
	if err != nil {
		apiError(w, err)
		return
	}
	deleted := []map[string]string{}
	var space int64
	for _, im := range imgs {
		if used[im.ID] || (danglingOnly && len(im.Names) > 0) {
			continue
		}
		labels := map[string]string{}
		if cfg, err := a.E.Images().Config(im); err == nil && cfg.Config.Labels != nil {
			labels = cfg.Config.Labels
		}
		if !p.match(im.Created, labels) {
			continue
		}
		for _, n := range im.Names {
			deleted = append(deleted, map[string]string{"Untagged": image.FamiliarName(n)})
		}
		if _, err := a.E.RemoveImage(r.Context(), im.ID, false); err != nil {
			apiError(w, err)
			return
		}
		deleted = append(deleted, map[string]string{"Deleted": im.ID})
		space += im.Size
	}
	if _, err := a.E.GC(r.Context()); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ImagesDeleted": deleted, "SpaceReclaimed": space})
}

// pause is POST /containers/{id}/pause and /unpause (cgroup freezer).
func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	var err error
	if strings.HasSuffix(r.URL.Path, "/unpause") {
		err = a.E.Unpause(r.PathValue("id"))
	} else {
		err = a.E.Pause(r.PathValue("id"))
	}
	if err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// changes is GET /containers/{id}/changes (docker diff).
func (a *API) changes(w http.ResponseWriter, r *http.Request) {
	chs, err := a.E.Changes(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, ch := range chs {
		out = append(out, map[string]any{"Path": ch.Path, "Kind": ch.Kind})
	}
	writeJSON(w, http.StatusOK, out)
}

// updateFields are the POST /containers/{id}/update fields hostd applies
// (docker update); any other with a value is refused by name.
var updateFields = fieldSet{
	"memory": nil, "memoryswap": nil, "memoryreservation": nil, "nanocpus": nil, "pidslimit": nil,
	"cpushares": nil, "cpuquota": nil, "cpuperiod": nil, "cpusetcpus": nil, "cpusetmems": nil,
	"restartpolicy": {"name": nil, "maximumretrycount": nil},
}

// updateBody is the part of an update request hostd reads; a zero value
// leaves that setting as it is, as with dockerd.
type updateBody struct {
	Memory, MemorySwap, MemoryReservation int64
	NanoCpus                              int64
	CpuShares, CpuQuota, CpuPeriod        int64
	CpusetCpus, CpusetMems                string
	PidsLimit                             *int64
	RestartPolicy                         struct {
		Name              string
		MaximumRetryCount int
	}
}

// toUpdate is b as the engine's update.
func (b updateBody) toUpdate() engine.ContainerUpdate {
	var u engine.ContainerUpdate
	size := func(v int64) *string {
		if v == 0 {
			return nil
		}
		s := strconv.FormatInt(v, 10)
		return &s
	}
	num := func(v int64) *int64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	u.Memory, u.MemorySwap, u.MemoryReservation = size(b.Memory), size(b.MemorySwap), size(b.MemoryReservation)
	u.CPUShares, u.CPUQuota, u.CPUPeriod = num(b.CpuShares), num(b.CpuQuota), num(b.CpuPeriod)
	u.CpusetCpus, u.CpusetMems = str(b.CpusetCpus), str(b.CpusetMems)
	if b.NanoCpus != 0 {
		cpus := float64(b.NanoCpus) / 1e9
		u.CPUs = &cpus
	}
	if b.PidsLimit != nil && *b.PidsLimit > 0 {
		u.Pids = b.PidsLimit
	}
	if rp := b.RestartPolicy; rp.Name != "" {
		s := restartString(rp.Name, rp.MaximumRetryCount)
		u.Restart = &s
	}
	return u
}

// update is docker update: limits and the restart policy, kept for later
// starts and applied to a running container's cgroup at once.
func (a *API) update(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCreateBody))
	if err != nil {
		apiError(w, fmt.Errorf("reading the update request: %w", err))
		return
	}
	var raw map[string]any
	var b updateBody
	if err := json.Unmarshal(body, &raw); err != nil {
		apiError(w, badRequest("update: %v", err))
		return
	}
	if err := json.Unmarshal(body, &b); err != nil {
		apiError(w, badRequest("update: %v", err))
		return
	}
	var unsupported []string
	walkUnsupported("", raw, updateFields, &unsupported)
	if b.PidsLimit != nil && *b.PidsLimit < 0 {
		// hostd keeps a pids limit on every container (engine.DefaultPidsLimit).
		unsupported = append(unsupported, "PidsLimit")
	}
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		apiError(w, badRequest("unsupported update option: %s: hostd does not implement it", flagNames(unsupported, "hostconfig.")))
		return
	}
	u := b.toUpdate()
	if _, err := a.E.UpdateContainer(r.Context(), r.PathValue("id"), u); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"Warnings": []string{}})
}
