package cloudinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// defaultKeyTypes are the host keys made for a new instance when
// ssh_genkeytypes is not given. cloud-init's default adds rsa; Bulkhead
// leaves it out because an RSA key takes 5-20 s to make on an emulated
// (TCG) machine, on the boot path. ssh_genkeytypes: [rsa, ...] asks for it.
var defaultKeyTypes = []string{"ed25519", "ecdsa"}

// keyTypes ssh-keygen makes host keys of (OpenSSH 9 dropped dsa).
var keyTypes = []string{"rsa", "ecdsa", "ed25519"}

// sshHostKeys gives a new instance its own host keys, as cloud-init's ssh
// module does: the keys a cloned disk or AMI carries are deleted
// (ssh_deletekeys, default true), and the types of ssh_genkeytypes made.
// It runs before sshd starts. A tree provisioned offline gets none: every
// machine made from it must make its own.
func (p *provisioner) sshHostKeys(ctx context.Context) error {
	if p.o.Offline {
		return errNothing
	}
	types := []string(p.cfg.SSHGenKeyTypes)
	if types == nil {
		types = defaultKeyTypes
	}
	for _, t := range types {
		if !slices.Contains(keyTypes, t) {
			return fmt.Errorf("ssh_genkeytypes: %q: want rsa, ecdsa or ed25519", t)
		}
	}
	dir := p.o.Root.Join("/etc/ssh")
	if del := p.cfg.SSHDeleteKeys; del == nil || *del {
		old, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*key*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("ssh_deletekeys: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ssh_genkeytypes: %w", err)
	}
	var errs []error
	for _, t := range types {
		// The runner acts on the running system, whose root is Root.
		key := p.o.Root.Join("/etc/ssh/ssh_host_" + t + "_key")
		if _, err := os.Lstat(key); err == nil {
			continue
		}
		if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "ssh-keygen", Args: []string{"-q", "-t", t, "-N", "", "-f", key}}); err != nil {
			errs = append(errs, fmt.Errorf("ssh_genkeytypes: %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// keysToConsole prints the host keys' fingerprints and the keys between
// the markers cloud-init writes (and that tools parse out of a cloud's
// console output), so the owner of a new machine can check the key ssh
// shows on first contact.
func (p *provisioner) keysToConsole(ctx context.Context) error {
	if p.o.Offline {
		return errNothing
	}
	pubs, _ := filepath.Glob(p.o.Root.Join("/etc/ssh/ssh_host_*_key.pub"))
	if len(pubs) == 0 {
		return errNothing
	}
	slices.Sort(pubs)
	var fps, keys []string
	var errs []error
	for _, pub := range pubs {
		out, err := p.o.Runner.Run(ctx, run.Cmd{Name: "ssh-keygen", Args: []string{"-l", "-f", pub}})
		if err != nil {
			errs = append(errs, fmt.Errorf("keys_to_console: %w", err))
			continue
		}
		fps = append(fps, strings.TrimSpace(string(out)))
		data, err := os.ReadFile(pub)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys_to_console: %w", err))
			continue
		}
		keys = append(keys, strings.TrimSpace(string(data)))
	}
	fmt.Fprintf(p.o.Console, "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n%s\n-----END SSH HOST KEY FINGERPRINTS-----\n", strings.Join(fps, "\n"))
	fmt.Fprintf(p.o.Console, "-----BEGIN SSH HOST KEY KEYS-----\n%s\n-----END SSH HOST KEY KEYS-----\n", strings.Join(keys, "\n"))
	return errors.Join(errs...)
}
