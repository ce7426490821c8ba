package dockerapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

// psFilterKeys are the filters GET /containers/json documents (Engine API
// 1.45); any other key is refused.
var psFilterKeys = []string{"ancestor", "before", "exited", "expose", "health", "id", "isolation", "is-task",
	"label", "name", "network", "publish", "since", "status", "volume"}

// containerStates are the states Docker's status filter accepts; hostd's
// containers are only ever created, running or exited.
var containerStates = []string{"created", "restarting", "running", "removing", "paused", "exited", "dead"}

// psQuery is a parsed GET /containers/json: all, limit, size and filters,
// with the references in the filters (before, since, ancestor) resolved.
type psQuery struct {
	all    bool
	limit  int
	size   bool
	f      filterArgs
	before string // container ID; containers up to and with it are skipped
	since  string // container ID; listing stops at it
	exited []int
	// images are the IDs ancestor names; nil without an ancestor filter.
	images          map[string]bool
	publish, expose map[string]bool
}

// queryBool is Docker's boolean query value: 1 or true (any case).
func queryBool(r *http.Request, key string) bool {
	v := strings.ToLower(r.URL.Query().Get(key))
	return v == "1" || v == "true"
}

// parsePS reads the query of GET /containers/json, refusing what dockerd
// refuses (unknown filters, bad values, unknown before/since containers).
func (a *API) parsePS(r *http.Request) (*psQuery, error) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return nil, err
	}
	if err := f.validate(psFilterKeys...); err != nil {
		return nil, err
	}
	p := &psQuery{all: queryBool(r, "all"), size: queryBool(r, "size"), f: f}
	if l := q.Get("limit"); l != "" {
		if p.limit, err = strconv.Atoi(l); err != nil {
			return nil, badRequest("invalid limit %q: %v", l, err)
		}
	}
	for _, v := range f["exited"] {
		code, err := strconv.Atoi(v)
		if err != nil {
			return nil, badRequest("invalid filter 'exited=%s': %v", v, err)
		}
		p.exited = append(p.exited, code)
	}
	for _, v := range f["status"] {
		if !contains(containerStates, v) {
			return nil, badRequest("invalid filter 'status=%s'", v)
		}
		p.all = true // dockerd: a status filter lists stopped containers too
	}
	for _, v := range f["health"] {
		if !contains([]string{engine.HealthStarting, engine.HealthHealthy, engine.HealthUnhealthy, "none"}, v) {
			return nil, badRequest("Unrecognised filter value for health: %s", v)
		}
	}
	if _, _, err := f.boolValue("is-task"); err != nil {
		return nil, err
	}
	for key, dst := range map[string]*string{"before": &p.before, "since": &p.since} {
		for _, v := range f[key] {
			c, err := a.E.Get(v)
			if err != nil {
				return nil, err
			}
			*dst = c.ID
		}
	}
	if f.has("ancestor") {
		p.images = map[string]bool{}
		for _, v := range f["ancestor"] {
			// An unknown image matches nothing, as with dockerd (which
			// only logs it).
			if im, err := a.E.Images().Get(v); err == nil {
				p.images[im.ID] = true
			}
		}
	}
	for key, dst := range map[string]*map[string]bool{"publish": &p.publish, "expose": &p.expose} {
		for _, v := range f[key] {
			ports, err := portFilter(key, v)
			if err != nil {
				return nil, err
			}
			if *dst == nil {
				*dst = map[string]bool{}
			}
			for k := range ports {
				(*dst)[k] = true
			}
		}
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// list applies the query to containers, newest first, as dockerd's
// includeContainerInList: before skips up to its container, since stops
// at its container, then the stopped ones unless all or a limit, then the
// filters, at most limit results.
func (a *API) list(p *psQuery, ctrs []engine.Container) []engine.Container {
	var out []engine.Container
	skipping := p.before != ""
	for _, c := range ctrs {
		if skipping {
			skipping = c.ID != p.before
			continue
		}
		if p.since != "" && c.ID == p.since {
			break
		}
		if p.limit > 0 && len(out) == p.limit {
			break
		}
		if c.State != engine.StateRunning && !p.all && p.limit <= 0 {
			continue
		}
		if a.matchContainer(p, c) {
			out = append(out, c)
		}
	}
	return out
}

func (a *API) matchContainer(p *psQuery, c engine.Container) bool {
	f := p.f
	if !f.match("name", "/"+c.Name, c.Name) || !f.match("id", c.ID) || !f.matchLabels("label", c.Spec.Labels) {
		return false
	}
	// hostd has no swarm tasks and only the default isolation.
	if isTask, set, _ := f.boolValue("is-task"); set && isTask {
		return false
	}
	if !f.exact("isolation", "default") {
		return false
	}
	if len(p.exited) > 0 {
		ok := false
		for _, code := range p.exited {
			ok = ok || (c.State == engine.StateExited && c.ExitCode == code && !c.StartedAt.IsZero())
		}
		if !ok {
			return false
		}
	}
	if !f.exact("status", a.stateOf(c)) {
		return false
	}
	health := c.Health
	if health == "" || c.Spec.Healthcheck == nil {
		health = "none"
	}
	if !f.exact("health", health) {
		return false
	}
	if f.has("volume") && !matchVolume(f["volume"], c.MountPoints()) {
		return false
	}
	if p.images != nil && !p.images[c.ImageID] {
		return false
	}
	if f.has("network") && !a.onNetwork(f["network"], c) {
		return false
	}
	if p.publish != nil || p.expose != nil {
		// dockerd matches the ports of the container's current network
		// settings: publish the host port, expose the container port;
		// a container that is not running has none.
		ok := false
		for _, pt := range c.Ports {
			ok = ok || p.publish[fmt.Sprintf("%d/%s", pt.HostPort, pt.Proto)] || p.expose[fmt.Sprintf("%d/%s", pt.ContainerPort, pt.Proto)]
		}
		if c.State == engine.StateRunning && c.IP != "" {
			ok = ok || anyPort(p.expose, c.Exposed)
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchVolume: a value names a volume, a bind's host path, or a mount's
// destination in the container.
func matchVolume(values []string, mounts []engine.MountPoint) bool {
	for _, m := range mounts {
		for _, want := range values {
			if want == m.Name || (m.Source != "" && want == m.Source) || want == m.Destination {
				return true
			}
		}
	}
	return false
}

func anyPort(want map[string]bool, have []string) bool {
	for _, h := range have {
		if want[h] {
			return true
		}
	}
	return false
}

func (a *API) containers(w http.ResponseWriter, r *http.Request) {
	p, err := a.parsePS(r)
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, c := range a.list(p, a.E.List()) {
		nw := a.E.NetworkOf(c)
		item := map[string]any{
			"Id": c.ID, "Names": []string{"/" + c.Name}, "Image": imageName(c), "ImageID": c.ImageID,
			"Command": strings.Join(c.Args, " "), "Created": c.Created.Unix(), "State": a.stateOf(c),
			"Status": a.statusOf(c), "Ports": ports(c), "Labels": labelsOf(c),
			"HostConfig":      map[string]string{"NetworkMode": nw},
			"NetworkSettings": map[string]any{"Networks": a.containerNetworks(c)},
			"Mounts":          mountsJSON(c, a.E.VolumeMountpoint),
		}
		if p.size {
			rw := a.E.SizeRw(c)
			item["SizeRw"] = rw
			if im, err := a.E.Images().Get(c.ImageID); err == nil {
				item["SizeRootFs"] = rw + im.Size
			} else {
				item["SizeRootFs"] = rw
			}
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, out)
}

// imageFilterKeys are the filters GET /images/json documents (1.45).
var imageFilterKeys = []string{"before", "dangling", "label", "reference", "since", "until"}

// images is GET /images/json with Docker's filters: dangling (no tag),
// reference (a glob on the short reference; only matching tags are
// listed), label, before/since (created before/after an image's
// creation) and until (created before a time).
func (a *API) images(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = f.validate(imageFilterKeys...)
	}
	if err != nil {
		apiError(w, err)
		return
	}
	dangling, danglingSet, err := f.boolValue("dangling")
	if err != nil {
		apiError(w, err)
		return
	}
	var before, since, until time.Time
	for key, dst := range map[string]*time.Time{"before": &before, "since": &since} {
		for _, v := range f[key] {
			im, err := a.E.Images().Get(v)
			if err != nil {
				apiError(w, err)
				return
			}
			*dst = im.Created
		}
	}
	for _, v := range f["until"] {
		if until, err = parseTimestamp(v, time.Now()); err != nil {
			apiError(w, badRequest("invalid filter 'until=%s': %v", v, err))
			return
		}
	}
	imgs, err := a.E.Images().List()
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, im := range imgs {
		if (!before.IsZero() && !im.Created.Before(before)) || (!since.IsZero() && !im.Created.After(since)) ||
			(!until.IsZero() && !im.Created.Before(until)) {
			continue
		}
		labels := map[string]string{}
		if cfg, err := a.E.Images().Config(im); err == nil && cfg.Config.Labels != nil {
			labels = cfg.Config.Labels
		}
		if !f.matchLabels("label", labels) {
			continue
		}
		tags := refsMatching(f["reference"], im.Names)
		digests := refsMatching(f["reference"], im.RepoDigests)
		switch {
		case len(tags) == 0 && len(digests) == 0 && (f.has("reference") || (danglingSet && !dangling)):
			// dockerd: an image without references is dangling, and
			// never matches a reference.
			continue
		case danglingSet && dangling && len(tags) > 0:
			continue
		}
		out = append(out, map[string]any{
			"Id": im.ID, "ParentId": "", "RepoTags": tags, "RepoDigests": digests, "Created": im.Created.Unix(),
			"Size": im.Size, "SharedSize": -1, "VirtualSize": im.Size, "Labels": labels, "Containers": -1,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// refsMatching are the short forms of refs matching one of the reference
// patterns (all refs without patterns).
func refsMatching(patterns, refs []string) []string {
	out := []string{}
	for _, ref := range refs {
		s := image.FamiliarName(ref)
		ok := len(patterns) == 0
		for _, p := range patterns {
			ok = ok || familiarMatch(p, s)
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// parseTimestamp reads Docker's time filter values: a Go duration before
// now (10m), Unix seconds (1700000000.5), or an RFC 3339 time or date.
func parseTimestamp(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if sec, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(0, int64(sec*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequest("%q is not a duration, Unix time or RFC 3339 time", v)
}

// stateOf is Docker's state string: hostd's, or paused for a running
// container whose processes are frozen.
func (a *API) stateOf(c engine.Container) string {
	if a.E != nil && a.E.Paused(c) {
		return "paused"
	}
	if a.E != nil && a.E.Live(c.ID).Restarting {
		return "restarting"
	}
	return c.State
}

func (a *API) statusOf(c engine.Container) string {
	switch a.stateOf(c) {
	case "paused":
		return statusText(c) + " (Paused)"
	case "restarting":
		// dockerd's words for a container its policy brings back.
		return fmt.Sprintf("Restarting (%d) %s ago", c.ExitCode, humanDuration(time.Since(c.FinishedAt)))
	}
	return statusText(c)
}
