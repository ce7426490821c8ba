package cloudinit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
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
	// ssh-keygen's comment: root@ the name the hostname module just set.
	host := readFile(p.o.Root.Join("/etc/hostname"))
	if strings.TrimSpace(host) == "" {
		host, _ = os.Hostname()
	}
	comment := "root@" + strings.TrimSpace(host)
	var errs []error
	for _, t := range types {
		key := "/etc/ssh/ssh_host_" + t + "_key"
		if _, err := os.Lstat(p.o.Root.Join(key)); err == nil {
			continue
		}
		if err := writeHostKey(p.o.Root, key, t, comment, p.o.NewHostKey); err != nil {
			errs = append(errs, fmt.Errorf("ssh_genkeytypes: %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// writeHostKey makes a host key of type t in-process (what ssh-keygen -t t
// makes: ed25519, ECDSA P-256, RSA 3072) and writes it inside root as key
// (OpenSSH's private key format, 0600) and key.pub (0644). Forking
// ssh-keygen costs seconds on an emulated machine; the key is the same.
func writeHostKey(root fsroot.Root, key, t, comment string, gen func(string) (crypto.Signer, error)) error {
	if gen == nil {
		gen = newHostKey
	}
	priv, err := gen(t)
	if err != nil {
		return fmt.Errorf("making the key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return fmt.Errorf("encoding the key: %w", err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("encoding the public key: %w", err)
	}
	// The public half last: sshd-keygen-style checks look for the pair.
	if err := root.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment + "\n"
	return root.WriteFile(key+".pub", []byte(line), 0o644)
}

// newHostKey generates a key of type t from crypto/rand.
func newHostKey(t string) (crypto.Signer, error) {
	switch t {
	case "ed25519":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("no such key type %q", t)
}

// fingerprint is a public key line as ssh-keygen -l prints it: bits,
// SHA256 fingerprint, comment, (TYPE).
func fingerprint(line []byte) (string, error) {
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return "", err
	}
	var bits int
	var typ string
	switch k := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(type) {
	case ed25519.PublicKey:
		bits, typ = 256, "ED25519"
	case *ecdsa.PublicKey:
		bits, typ = k.Curve.Params().BitSize, "ECDSA"
	case *rsa.PublicKey:
		bits, typ = k.N.BitLen(), "RSA"
	default:
		return "", fmt.Errorf("unknown key type %s", pub.Type())
	}
	if comment == "" {
		comment = "no comment"
	}
	return fmt.Sprintf("%d %s %s (%s)", bits, ssh.FingerprintSHA256(pub), comment, typ), nil
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
		data, err := os.ReadFile(pub)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys_to_console: %w", err))
			continue
		}
		fp, err := fingerprint(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys_to_console: %s: %w", pub, err))
			continue
		}
		fps = append(fps, fp)
		keys = append(keys, strings.TrimSpace(string(data)))
	}
	fmt.Fprintf(p.o.Console, "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n%s\n-----END SSH HOST KEY FINGERPRINTS-----\n", strings.Join(fps, "\n"))
	fmt.Fprintf(p.o.Console, "-----BEGIN SSH HOST KEY KEYS-----\n%s\n-----END SSH HOST KEY KEYS-----\n", strings.Join(keys, "\n"))
	return errors.Join(errs...)
}
