package engine

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// publish returns the ports container c publishes in this run: its spec's,
// plus every exposed one with PublishAll, and a free host port picked for
// each that names none (-p 80, -p 127.0.0.1::80, -P).
func (e *Engine) publish(c *Container) ([]Port, error) {
	var ports []Port
	bound := map[string]bool{}
	for _, s := range c.Spec.Ports {
		p, err := ParsePort(s)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
		bound[fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)] = true
	}
	if c.Spec.PublishAll {
		for _, x := range c.Exposed {
			if bound[x] {
				continue
			}
			p, err := ParseExpose(x)
			if err != nil {
				return nil, err
			}
			ports = append(ports, p)
		}
	}
	taken := e.hostPortsInUse(c.ID)
	for i := range ports {
		if ports[i].HostPort != 0 {
			if err := hostPortFree(ports[i], taken); err != nil {
				return nil, fmt.Errorf("publishing %d/%s of %s: %w", ports[i].ContainerPort, ports[i].Proto, c.Name, err)
			}
			taken[portKey(ports[i].Proto, ports[i].HostPort)] = true
			continue
		}
		n, err := freePort(ports[i], taken)
		if err != nil {
			return nil, fmt.Errorf("publishing %d/%s of %s: %w", ports[i].ContainerPort, ports[i].Proto, c.Name, err)
		}
		ports[i].HostPort = n
		taken[portKey(ports[i].Proto, n)] = true
	}
	return ports, nil
}

func portKey(proto string, port int) string { return proto + ":" + strconv.Itoa(port) }

// hostPortsInUse lists the host ports other running containers publish:
// a DNAT rule holds no socket, so the kernel could hand one out again.
func (e *Engine) hostPortsInUse(except string) map[string]bool {
	out := map[string]bool{}
	for _, c := range e.List() {
		if c.ID == except || c.State != StateRunning {
			continue
		}
		for _, p := range c.Ports {
			out[portKey(p.Proto, p.HostPort)] = true
		}
	}
	return out
}

// freePort asks the kernel for a free port in its ephemeral range
// (net.ipv4.ip_local_port_range, Docker's choice too) by binding port 0 on
// p's host address, skipping ports in taken.
func freePort(p Port, taken map[string]bool) (int, error) {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	addr := net.JoinHostPort(ip, "0")
	for range 20 {
		var n int
		if p.Proto == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return 0, fmt.Errorf("finding a free udp port on %s: %w", ip, err)
			}
			n = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return 0, fmt.Errorf("finding a free tcp port on %s: %w", ip, err)
			}
			n = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if !taken[portKey(p.Proto, n)] {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no free %s port on %s", p.Proto, ip)
}

// hostPortFree refuses a host port another container publishes or a host
// program listens on (-p 22:80 with sshd on 22): the DNAT rule would
// silently take the port's connections from the program.
func hostPortFree(p Port, taken map[string]bool) error {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	if taken[portKey(p.Proto, p.HostPort)] {
		return fmt.Errorf("%w: host port %d/%s is published by another container", ErrConflict, p.HostPort, p.Proto)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(p.HostPort))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: host port %d/%s on %s is in use by a program on the host", ErrConflict, p.HostPort, p.Proto, ip)
	}
	if err != nil {
		return fmt.Errorf("checking host port %d/%s on %s: %w", p.HostPort, p.Proto, ip, err)
	}
	return nil
}
