package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// networks is the engine's network manager, or an error naming what is
// missing (a host without bridge networking).
func (a *API) networks() (engine.UserNetworks, error) {
	if un := a.E.UserNetworks(); un != nil {
		return un, nil
	}
	return nil, fmt.Errorf("%w: this host has no bridge networking: networks cannot be managed", engine.ErrForbidden)
}

// networkJSON is a network as dockerd shows it (docker network inspect);
// the running containers only when withContainers, as GET /networks
// leaves them out.
func networkJSON(n engine.NetworkInfo, withContainers bool) map[string]any {
	ipam := []map[string]string{}
	if n.Subnet != "" {
		ipam = append(ipam, map[string]string{"Subnet": n.Subnet, "Gateway": n.Gateway})
	}
	ctrs := map[string]any{}
	if withContainers {
		for id, ep := range n.Endpoints {
			ctrs[id] = map[string]string{"Name": ep.Name, "EndpointID": endpointID(n.ID, id), "MacAddress": "",
				"IPv4Address": fmt.Sprintf("%s/%d", ep.IP, ep.PrefixLen), "IPv6Address": ""}
		}
	}
	labels, opts := n.Labels, n.Options
	if labels == nil {
		labels = map[string]string{}
	}
	if opts == nil {
		opts = map[string]string{}
	}
	if n.Predefined && n.Bridge != "" {
		opts = map[string]string{"com.docker.network.bridge.name": n.Bridge, "com.docker.network.bridge.default_bridge": "true"}
	}
	created := n.Created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	return map[string]any{
		"Name": n.Name, "Id": n.ID, "Created": created.Format(time.RFC3339Nano), "Scope": "local", "Driver": n.Driver,
		"EnableIPv6": false, "IPAM": map[string]any{"Driver": "default", "Options": map[string]string{}, "Config": ipam},
		"Internal": false, "Attachable": n.Attachable, "Ingress": false, "ConfigFrom": map[string]string{"Network": ""},
		"ConfigOnly": false, "Containers": ctrs, "Options": opts, "Labels": labels,
	}
}

// endpointID is stable per network and container: hostd keeps no other.
func endpointID(network, container string) string {
	return network[:32] + container[:32]
}

func (a *API) networkList(w http.ResponseWriter, r *http.Request) {
	un, err := a.networks()
	if err != nil {
		apiError(w, err)
		return
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = f.validate("dangling", "driver", "id", "label", "name", "scope", "type")
	}
	if err != nil {
		apiError(w, err)
		return
	}
	for _, t := range f["type"] {
		if t != "custom" && t != "builtin" {
			apiError(w, badRequest("invalid filter: 'type'='%s'", t))
			return
		}
	}
	dangling, danglingSet, err := f.boolValue("dangling")
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, n := range un.Networks() {
		typ := "custom"
		if n.Predefined {
			typ = "builtin"
		}
		switch {
		case !f.match("name", n.Name), !f.match("id", n.ID), !f.matchLabels("label", n.Labels),
			!f.exact("driver", n.Driver), !f.exact("type", typ), !f.exact("scope", "local"):
			continue
		case danglingSet && dangling != (!n.Predefined && len(n.Endpoints) == 0):
			continue
		}
		out = append(out, networkJSON(n, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) networkInspect(w http.ResponseWriter, r *http.Request) {
	un, err := a.networks()
	if err != nil {
		apiError(w, err)
		return
	}
	for k := range r.URL.Query() {
		if k != "verbose" && k != "scope" {
			apiError(w, badRequest("network inspect: unsupported parameter %q", k))
			return
		}
	}
	n, err := un.Network(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, networkJSON(n, true))
}

// networkFields are the POST /networks/create fields hostd implements;
// any other with a value (--internal, --ipv6, --ingress, --config-from)
// is refused by name.
var networkFields = fieldSet{
	"name": nil, "checkduplicate": nil, "driver": nil, "scope": nil, "labels": nil, "options": nil, "attachable": nil,
	"ipam": {"driver": nil, "config": nil, "options": nil},
}

var networkFlags = map[string]string{
	"internal": "--internal", "enableipv6": "--ipv6", "ingress": "--ingress", "configonly": "--config-only",
	"configfrom": "--config-from", "ipam.options": "--ipam-opt",
}

func (a *API) networkCreate(w http.ResponseWriter, r *http.Request) {
	un, err := a.networks()
	if err != nil {
		apiError(w, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		apiError(w, fmt.Errorf("reading the network create request: %w", err))
		return
	}
	var b struct {
		Name       string
		Driver     string
		Scope      string
		Attachable bool
		Labels     map[string]string
		Options    map[string]string
		IPAM       struct {
			Driver  string
			Options map[string]string
			Config  []map[string]any
		}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		apiError(w, badRequest("network create: %v", err))
		return
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	var unsupported []string
	walkUnsupported("", raw, networkFields, &unsupported)
	if len(b.IPAM.Options) > 0 {
		unsupported = append(unsupported, "IPAM.Options")
	}
	spec := engine.NetworkSpec{Name: b.Name, Labels: b.Labels, Options: b.Options, Attachable: b.Attachable}
	switch {
	case b.Name == "":
		err = badRequest("network create: a name is required")
	case b.Driver != "" && b.Driver != "bridge":
		err = badRequest("network create: driver %q (-d): hostd has the bridge driver only", b.Driver)
	case b.Scope != "" && b.Scope != "local":
		err = badRequest("network create: scope %q (--scope): hostd's networks are local", b.Scope)
	case b.IPAM.Driver != "" && b.IPAM.Driver != "default":
		err = badRequest("network create: IPAM driver %q (--ipam-driver): hostd has the default one only", b.IPAM.Driver)
	case len(b.IPAM.Config) > 1:
		err = badRequest("network create: %d IPAM configs (--subnet): hostd takes one IPv4 subnet", len(b.IPAM.Config))
	case len(unsupported) > 0:
		sort.Strings(unsupported)
		names := make([]string, len(unsupported))
		for i, p := range unsupported {
			names[i] = p
			if flag, ok := networkFlags[strings.ToLower(p)]; ok {
				names[i] += " (" + flag + ")"
			}
		}
		err = badRequest("unsupported network option: %s: hostd does not implement it", strings.Join(names, ", "))
	}
	if err == nil && len(b.IPAM.Config) == 1 {
		spec.Subnet, err = ipamSubnet(b.IPAM.Config[0])
	}
	if err != nil {
		apiError(w, err)
		return
	}
	n, err := un.CreateNetwork(r.Context(), spec)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": n.ID, "Warning": ""})
}

// ipamSubnet reads one IPAM config: a subnet, and a gateway only if it is
// the subnet's first address (the bridge's own, as hostd assigns it).
func ipamSubnet(c map[string]any) (string, error) {
	subnet, _ := c["Subnet"].(string)
	for k, v := range c {
		switch k {
		case "Subnet":
		case "Gateway":
			gw, _ := v.(string)
			_, n, err := net.ParseCIDR(subnet)
			if gw == "" || err != nil {
				continue
			}
			first := n.IP.To4()
			if first != nil {
				first = net.IPv4(first[0], first[1], first[2], first[3]+1)
			}
			if !net.ParseIP(gw).Equal(first) {
				return "", badRequest("network create: gateway %s (--gateway): hostd's gateway is the subnet's first address, %s", gw, first)
			}
		default:
			if !isDefault("ipam.config."+strings.ToLower(k), v) {
				return "", badRequest("unsupported network option: IPAM.Config.%s: hostd does not implement it", k)
			}
		}
	}
	return subnet, nil
}

func (a *API) networkRemove(w http.ResponseWriter, r *http.Request) {
	un, err := a.networks()
	if err == nil {
		err = un.RemoveNetwork(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// networkPrune is POST /networks/prune: user-defined networks without
// running containers that match the filters.
func (a *API) networkPrune(w http.ResponseWriter, r *http.Request) {
	un, err := a.networks()
	if err != nil {
		apiError(w, err)
		return
	}
	p, err := parsePrune(r)
	if err != nil {
		apiError(w, err)
		return
	}
	deleted := []string{}
	for _, n := range un.Networks() {
		if n.Predefined || len(n.Endpoints) > 0 || !p.match(n.Created, n.Labels) {
			continue
		}
		if err := un.RemoveNetwork(r.Context(), n.ID); err != nil {
			apiError(w, err)
			return
		}
		deleted = append(deleted, n.Name)
	}
	writeJSON(w, http.StatusOK, map[string]any{"NetworksDeleted": deleted})
}

var connectFields = fieldSet{"container": nil, "endpointconfig": {"aliases": nil, "networkid": nil, "endpointid": nil}}

func (a *API) networkConnect(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		apiError(w, fmt.Errorf("reading the network connect request: %w", err))
		return
	}
	var b struct {
		Container      string
		EndpointConfig struct{ Aliases []string }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		apiError(w, badRequest("network connect: %v", err))
		return
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	var unsupported []string
	walkUnsupported("", raw, connectFields, &unsupported)
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		apiError(w, badRequest("unsupported network connect option: %s (--ip/--link/--driver-opt): hostd does not implement it", strings.Join(unsupported, ", ")))
		return
	}
	if err := a.E.Connect(r.Context(), b.Container, r.PathValue("id"), engine.EndpointSpec{Aliases: b.EndpointConfig.Aliases}); err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) networkDisconnect(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Container string
		Force     bool
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&b); err != nil {
		apiError(w, badRequest("network disconnect: %v", err))
		return
	}
	err := a.E.Disconnect(r.Context(), b.Container, r.PathValue("id"))
	if errors.Is(err, engine.ErrNotFound) && b.Force {
		err = nil
	}
	if err != nil {
		apiError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// containerNetworks is a container's NetworkSettings.Networks: each
// network it is on, with its address there while it runs and its aliases
// (its short ID first, as dockerd lists, which compose looks for).
func (a *API) containerNetworks(c engine.Container) map[string]any {
	out := map[string]any{}
	nw := a.E.NetworkOf(c)
	names := map[string]engine.EndpointSpec{}
	for n, ep := range c.Spec.Networks {
		names[n] = ep
	}
	if _, ok := names[nw]; !ok && nw != "" {
		names[nw] = engine.EndpointSpec{}
	}
	un := a.E.UserNetworks()
	var live map[string]engine.EndpointInfo
	if un != nil && c.State == engine.StateRunning {
		live = un.Endpoints(c.ID)
	}
	for name, spec := range names {
		ep := map[string]any{"IPAMConfig": nil, "Links": nil, "Aliases": nil, "NetworkID": "", "EndpointID": "",
			"Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
			"GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": nil}
		if un != nil {
			if n, err := un.Network(name); err == nil {
				ep["NetworkID"] = n.ID
				if !n.Predefined {
					ep["Aliases"] = append([]string{c.ID[:12]}, spec.Aliases...)
				}
				if l, ok := live[name]; ok {
					ep["EndpointID"], ep["Gateway"], ep["IPAddress"], ep["IPPrefixLen"] = endpointID(n.ID, c.ID), n.Gateway, l.IP, l.PrefixLen
				}
			}
		}
		out[name] = ep
	}
	return out
}

// onNetwork reports whether c is on one of the networks refs names (by
// name or ID), as the ps network filter matches.
func (a *API) onNetwork(refs []string, c engine.Container) bool {
	for name, ep := range a.containerNetworks(c) {
		id, _ := ep.(map[string]any)["NetworkID"].(string)
		for _, ref := range refs {
			if ref == name || (id != "" && ref == id) {
				return true
			}
		}
	}
	return false
}
