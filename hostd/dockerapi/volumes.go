package dockerapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

func volumeJSON(v engine.NamedVolume, withUsage bool, users int) map[string]any {
	out := map[string]any{
		"Name": v.Name, "Driver": "local", "Mountpoint": v.Mountpoint, "CreatedAt": v.Created.Format(time.RFC3339),
		"Labels": v.Labels, "Scope": "local", "Options": map[string]string{},
	}
	if withUsage {
		out["UsageData"] = map[string]any{"Size": image.DirSize(v.Mountpoint), "RefCount": users}
	}
	return out
}

// volumeList is GET /volumes with dockerd's filters: dangling, driver,
// label, name.
func (a *API) volumeList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = f.validate("dangling", "driver", "label", "name")
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
	vols, err := a.E.Volumes()
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, v := range vols {
		unused := len(a.E.VolumeUsers(v.Name)) == 0
		if (danglingSet && unused != dangling) || !f.match("name", v.Name) || !f.exact("driver", "local") || !f.matchLabels("label", v.Labels) {
			continue
		}
		out = append(out, volumeJSON(v, false, 0))
	}
	writeJSON(w, http.StatusOK, map[string]any{"Volumes": out, "Warnings": []string{}})
}

// volumeCreate is POST /volumes/create; hostd has the local driver
// without options (a directory), and refuses others by name.
func (a *API) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Name       string
		Driver     string
		DriverOpts map[string]string
		Labels     map[string]string
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &b)
	}
	if err != nil {
		apiError(w, badRequest("volume create: %v", err))
		return
	}
	if b.Driver != "" && b.Driver != "local" {
		apiError(w, badRequest("volume create: driver %q: hostd has only the local driver", b.Driver))
		return
	}
	if len(b.DriverOpts) > 0 {
		apiError(w, badRequest("volume create: driver options %v (-o): unsupported by hostd's local driver (a directory)", sortedKeys(b.DriverOpts)))
		return
	}
	if b.Name == "" {
		b.Name = newID()
		if b.Labels == nil {
			b.Labels = map[string]string{}
		}
		b.Labels[engine.AnonymousLabel] = ""
	}
	v, err := a.E.CreateVolume(b.Name, b.Labels)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeJSON(v, false, 0))
}

func (a *API) volumeInspect(w http.ResponseWriter, r *http.Request) {
	v, err := a.E.Volume(r.PathValue("name"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeJSON(v, false, 0))
}

func (a *API) volumeRemove(w http.ResponseWriter, r *http.Request) {
	err := a.E.RemoveVolume(r.PathValue("name"))
	if errors.Is(err, engine.ErrNotFound) && queryBool(r, "force") {
		err = nil // volume rm -f of a missing volume succeeds, as dockerd's
	}
	if err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// volumePrune is POST /volumes/prune: unused anonymous volumes, or with
// the all=true filter every unused one (API 1.42+ semantics).
func (a *API) volumePrune(w http.ResponseWriter, r *http.Request) {
	p, err := parsePrune(r, "all")
	if err != nil {
		apiError(w, err)
		return
	}
	all, _, err := p.f.boolValue("all")
	if err != nil {
		apiError(w, err)
		return
	}
	vols, err := a.E.Volumes()
	if err != nil {
		apiError(w, err)
		return
	}
	deleted := []string{}
	var space int64
	for _, v := range vols {
		_, anonymous := v.Labels[engine.AnonymousLabel]
		if (!all && !anonymous) || len(a.E.VolumeUsers(v.Name)) > 0 || !p.match(v.Created, v.Labels) {
			continue
		}
		size := image.DirSize(v.Mountpoint)
		if err := a.E.RemoveVolume(v.Name); err != nil {
			apiError(w, err)
			return
		}
		deleted = append(deleted, v.Name)
		space += size
	}
	writeJSON(w, http.StatusOK, map[string]any{"VolumesDeleted": deleted, "SpaceReclaimed": space})
}

// systemDF is GET /system/df: images, containers and volumes with their
// disk use (docker system df); hostd has no build cache.
func (a *API) systemDF(w http.ResponseWriter, r *http.Request) {
	ctrs := a.E.List()
	users := map[string]int{}
	for _, c := range ctrs {
		users[c.ImageID]++
	}
	imgs, err := a.E.Images().List()
	if err != nil {
		apiError(w, err)
		return
	}
	var layers int64
	imgOut := []map[string]any{}
	for _, im := range imgs {
		layers += im.Size
		imgOut = append(imgOut, map[string]any{
			"Id": im.ID, "RepoTags": refsMatching(nil, im.Names), "RepoDigests": refsMatching(nil, im.RepoDigests),
			"Created": im.Created.Unix(), "Size": im.Size, "SharedSize": 0, "VirtualSize": im.Size,
			"Containers": users[im.ID], "Labels": map[string]string{}, "ParentId": "",
		})
	}
	ctrOut := []map[string]any{}
	for _, c := range ctrs {
		ctrOut = append(ctrOut, map[string]any{
			"Id": c.ID, "Names": []string{"/" + c.Name}, "Image": c.Spec.Image, "ImageID": c.ImageID,
			"Command": strings.Join(c.Args, " "), "Created": c.Created.Unix(), "State": a.stateOf(c),
			"Status": a.statusOf(c), "SizeRw": a.E.SizeRw(c), "SizeRootFs": 0, "Labels": labelsOf(c),
		})
	}
	vols, err := a.E.Volumes()
	if err != nil {
		apiError(w, err)
		return
	}
	volOut := []map[string]any{}
	for _, v := range vols {
		volOut = append(volOut, volumeJSON(v, true, len(a.E.VolumeUsers(v.Name))))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"LayersSize": layers, "Images": imgOut, "Containers": ctrOut, "Volumes": volOut, "BuildCache": []any{},
	})
}
