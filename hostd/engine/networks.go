package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// Network sentinels, for the API's status codes.
var (
	// ErrNoNetwork: no network has that name or ID (404).
	ErrNoNetwork = errors.New("network not found")
	// ErrForbidden: the request is refused as it stands, e.g. removing
	// a predefined network or one with running containers (403).
	ErrForbidden = errors.New("forbidden")
)

// EndpointSpec is a container's configuration on one network: the names
// the network's resolver answers with its address, besides its own name
// and short ID.
type EndpointSpec struct {
	Aliases []string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
}

// Attachment is what a network needs to attach a container: the
// container, its primary network (its default route) and every network it
// is on, and the ports it publishes.
type Attachment struct {
	ID, Name string
	Network  string
	Networks map[string]EndpointSpec
	Ports    []Port
}

// Networker attaches containers to networks: the default bridge, and
// user-defined ones when it is a UserNetworks too.
type Networker interface {
	// Setup makes the container's network namespace, attached to its
	// networks with an address on each and the given published ports;
	// it returns the namespace path and the primary network's address.
	Setup(ctx context.Context, a Attachment) (netns, ip string, err error)
	// Teardown undoes Setup; doing it twice is fine.
	Teardown(ctx context.Context, id string) error
	// DNS returns the resolv.conf content for a container whose primary
	// network is network.
	DNS(network string) []byte
}

// NetworkSpec is a user-defined network as a client asks for it.
type NetworkSpec struct {
	Name    string            `json:"name"`
	Subnet  string            `json:"subnet,omitempty"` // "" picks a free /24
	Labels  map[string]string `json:"labels,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	// Attachable is kept for clients that compare it (compose); on a
	// local bridge every network is.
	Attachable bool `json:"attachable,omitempty"`
}

// NetworkInfo is a network as the API shows it.
type NetworkInfo struct {
	NetworkSpec
	ID      string    `json:"id"`
	Driver  string    `json:"driver"` // bridge, host, null
	Created time.Time `json:"created"`
	Gateway string    `json:"gateway,omitempty"`
	Bridge  string    `json:"bridge,omitempty"` // the Linux bridge device
	// Predefined: bridge, host and none, which cannot be removed.
	Predefined bool `json:"-"`
	// Endpoints are the running containers on it, by container ID.
	Endpoints map[string]EndpointInfo `json:"-"`
}

// EndpointInfo is a running container's attachment to a network.
type EndpointInfo struct {
	Name      string   // the container's
	IP        string   // its address on the network
	PrefixLen int      // of the network's subnet
	Aliases   []string // every name the resolver answers with IP for it
}

// UserNetworks is a Networker with user-defined networks (docker network
// create): each a bridge of its own, isolated from the others, with a
// resolver for its containers' names.
type UserNetworks interface {
	Networker
	CreateNetwork(ctx context.Context, spec NetworkSpec) (NetworkInfo, error)
	// Networks lists every network, the predefined ones first.
	Networks() []NetworkInfo
	// Network finds one by name, ID or unique ID prefix.
	Network(ref string) (NetworkInfo, error)
	RemoveNetwork(ctx context.Context, ref string) error
	// Connect attaches a running container (set up before) to one more
	// network; Disconnect undoes it.
	Connect(ctx context.Context, a Attachment, network string) error
	Disconnect(ctx context.Context, id, network string) error
	// Endpoints are a running container's, by network name.
	Endpoints(id string) map[string]EndpointInfo
}

// UserNetworks is the engine's network manager when it has user-defined
// networks, else nil.
func (e *Engine) UserNetworks() UserNetworks {
	un, _ := e.cfg.Network.(UserNetworks)
	return un
}

// dnsLabel is one label of a DNS name (letters, digits, hyphens, and the
// underscores and dots container names allow).
var dnsLabel = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_])?$`)

func dnsName(s string) bool { return len(s) <= 253 && dnsLabel.MatchString(s) }

// attachment is c's for its networker.
func (c *Container) attachment(network string, ports []Port) Attachment {
	return Attachment{ID: c.ID, Name: c.Name, Network: network, Networks: c.Spec.Networks, Ports: ports}
}

// networkRef resolves a user-defined network reference to its name; the
// predefined ones stay as they are.
func (e *Engine) networkRef(ref string) (string, error) {
	switch ref {
	case "", NetworkBridge, runtime.NetworkHost, runtime.NetworkNone:
		return ref, nil
	}
	un := e.UserNetworks()
	if un == nil {
		return "", fmt.Errorf("%w: network %s not found: this host has no user-defined networks", ErrNoNetwork, ref)
	}
	n, err := un.Network(ref)
	if err != nil {
		return "", err
	}
	return n.Name, nil
}

// resolveNetworks names spec's networks by name (a client may give an
// ID) and checks they exist.
func (e *Engine) resolveNetworks(spec *ContainerSpec) error {
	name, err := e.networkRef(spec.Network)
	if err != nil {
		return err
	}
	if spec.Network != name {
		if ep, ok := spec.Networks[spec.Network]; ok {
			delete(spec.Networks, spec.Network)
			spec.Networks[name] = ep
		}
		spec.Network = name
	}
	out := map[string]EndpointSpec{}
	for _, ref := range slices.Sorted(maps.Keys(spec.Networks)) {
		switch ref {
		case "default", NetworkBridge, runtime.NetworkHost, runtime.NetworkNone:
			// What a client sends for a predefined network: nothing to keep.
			if len(spec.Networks[ref].Aliases) > 0 {
				return fmt.Errorf("%w: network-scoped aliases are for user-defined networks, not %s", ErrInvalid, ref)
			}
			continue
		}
		n, err := e.networkRef(ref)
		if err != nil {
			return err
		}
		if n != spec.Network {
			return fmt.Errorf("%w: network %s: a container joins one network at create (its --network); connect it to others after", ErrInvalid, ref)
		}
		out[n] = spec.Networks[ref]
	}
	if spec.Network != "" && spec.Network != NetworkBridge && spec.Network != runtime.NetworkHost && spec.Network != runtime.NetworkNone {
		if _, ok := out[spec.Network]; !ok {
			out[spec.Network] = EndpointSpec{}
		}
	}
	spec.Networks = out
	if len(out) == 0 {
		spec.Networks = nil
	}
	return nil
}

// Connect puts container ref on the user-defined network (docker network
// connect): recorded in its spec, and attached at once when it runs.
func (e *Engine) Connect(ctx context.Context, ref, network string, ep EndpointSpec) error {
	un := e.UserNetworks()
	if un == nil {
		return fmt.Errorf("%w: network %s not found: this host has no user-defined networks", ErrNoNetwork, network)
	}
	n, err := un.Network(network)
	if err != nil {
		return err
	}
	if n.Predefined {
		return fmt.Errorf("%w: connecting to %s: hostd connects containers to user-defined networks only", ErrForbidden, n.Name)
	}
	for _, a := range ep.Aliases {
		if !dnsName(a) {
			return fmt.Errorf("%w: alias %q: not a DNS name", ErrInvalid, a)
		}
	}
	e.mu.Lock()
	c, err := e.find(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	switch nw := c.network(e.hasBridge()); {
	case nw == runtime.NetworkHost || nw == runtime.NetworkNone:
		e.mu.Unlock()
		return fmt.Errorf("%w: container %s is on network %s, which it shares with nothing else: it cannot join %s", ErrForbidden, c.Name, nw, n.Name)
	}
	if _, ok := c.Spec.Networks[n.Name]; ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: endpoint with name %s already exists in network %s", ErrForbidden, c.Name, n.Name)
	}
	old := c.Spec.Networks
	c.Spec.Networks = maps.Clone(old)
	if c.Spec.Networks == nil {
		c.Spec.Networks = map[string]EndpointSpec{}
	}
	c.Spec.Networks[n.Name] = ep
	if err := e.save(c); err != nil {
		c.Spec.Networks = old
		e.mu.Unlock()
		return err
	}
	running, att := c.State == StateRunning, c.attachment(c.network(e.hasBridge()), nil)
	e.mu.Unlock()
	if running {
		if err := un.Connect(ctx, att, n.Name); err != nil {
			_, _ = e.update(c.ID, func(x *Container) { x.Spec.Networks = old })
			return fmt.Errorf("connecting %s to %s: %w", c.Name, n.Name, err)
		}
	}
	e.log.Info("connected container", "container", c.Name, "network", n.Name)
	return nil
}

// Disconnect takes container ref off a network it was connected to.
// Its primary network stays: that is its default route and resolver.
func (e *Engine) Disconnect(ctx context.Context, ref, network string) error {
	un := e.UserNetworks()
	if un == nil {
		return fmt.Errorf("%w: network %s not found", ErrNoNetwork, network)
	}
	n, err := un.Network(network)
	if err != nil {
		return err
	}
	e.mu.Lock()
	c, err := e.find(ref)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	if c.network(e.hasBridge()) == n.Name {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s is container %s's primary network (its default route and resolver): hostd does not disconnect it; remove the container instead",
			ErrForbidden, n.Name, c.Name)
	}
	if _, ok := c.Spec.Networks[n.Name]; !ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: container %s is not connected to network %s", ErrForbidden, c.Name, n.Name)
	}
	old := c.Spec.Networks
	c.Spec.Networks = maps.Clone(old)
	delete(c.Spec.Networks, n.Name)
	if err := e.save(c); err != nil {
		c.Spec.Networks = old
		e.mu.Unlock()
		return err
	}
	running := c.State == StateRunning
	e.mu.Unlock()
	if running {
		if err := un.Disconnect(ctx, c.ID, n.Name); err != nil {
			return fmt.Errorf("disconnecting %s from %s: %w", c.Name, n.Name, err)
		}
	}
	e.log.Info("disconnected container", "container", c.Name, "network", n.Name)
	return nil
}

// hasBridge reports whether the host has the default bridge network,
// containers' default.
func (e *Engine) hasBridge() bool {
	if un := e.UserNetworks(); un != nil {
		_, err := un.Network(NetworkBridge)
		return err == nil
	}
	return e.cfg.Network != nil
}
