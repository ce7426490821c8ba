package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
)

// WorkloadDir is where declared containers live on a host (cloud-config's
// bulkhead.containers are written there, one file per container).
const WorkloadDir = "/etc/hostd/containers"

// ParseWorkload decodes one workload file. Unknown fields are refused; the
// name defaults to the file's base name.
func ParseWorkload(data []byte, file string) (ContainerSpec, error) {
	var s ContainerSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %w", file, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".yml")
	}
	if err := s.Validate(); err != nil {
		// Prefix every problem with the file.
		var msgs []string
		for _, line := range strings.Split(err.Error(), "\n") {
			msgs = append(msgs, file+": "+line)
		}
		return s, errors.New(strings.Join(msgs, "\n"))
	}
	return s, nil
}

// LoadWorkloads reads every *.yaml and *.yml in dir. Files that do not parse
// or validate are reported in the error; the others are returned, so one
// bad file does not keep the rest from running.
func LoadWorkloads(dir string) ([]ContainerSpec, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading workloads in %s: %w", dir, err)
	}
	var specs []ContainerSpec
	var errs []error
	seen := map[string]string{}
	for _, ent := range ents {
		n := ent.Name()
		if ent.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		p := filepath.Join(dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
			continue
		}
		s, err := ParseWorkload(b, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := seen[s.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: name %q is already declared in %s", p, s.Name, other))
			continue
		}
		seen[s.Name] = p
		specs = append(specs, s)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs, errors.Join(errs...)
}

// Converge makes the managed containers match specs: new ones are pulled,
// created and started, changed ones replaced, undeclared ones removed. With
// boot set, every declared container that is not running is started (the
// host just came up). Errors of single containers are joined; the others
// still converge.
func (e *Engine) Converge(ctx context.Context, specs []ContainerSpec, boot bool) error {
	var errs []error
	want := map[string]bool{}
	for _, s := range specs {
		want[s.Name] = true
		if err := e.convergeOne(ctx, s, boot); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", s.Name, err))
		}
	}
	for _, c := range e.List() {
		if c.Managed && !want[c.Name] {
			e.log.Info("removing container no longer declared", "container", c.Name)
			if err := e.Remove(ctx, c.ID, true); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) convergeOne(ctx context.Context, s ContainerSpec, boot bool) error {
	cur, err := e.Get(s.Name)
	switch {
	case err == nil && !cur.Managed:
		return fmt.Errorf("%w: a container not declared in %s has this name", ErrConflict, WorkloadDir)
	case err == nil && reflect.DeepEqual(cur.Spec, s):
		if cur.State == StateCreated || (boot && cur.State != StateRunning) {
			return e.Start(ctx, cur.ID)
		}
		return nil
	case err == nil:
		e.log.Info("replacing changed container", "container", s.Name)
		if err := e.Stop(ctx, cur.ID, 10*time.Second); err != nil {
			return err
		}
		if err := e.Remove(ctx, cur.ID, true); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if _, err := e.images.Get(s.Image); errors.Is(err, image.ErrNotFound) {
		if _, err := e.images.Pull(ctx, s.Image); err != nil {
			return err
		}
	}
	c, err := e.Create(ctx, s)
	if err != nil {
		return err
	}
	if _, err := e.update(c.ID, func(x *Container) { x.Managed = true }); err != nil {
		return err
	}
	return e.Start(ctx, c.ID)
}

// WatchWorkloads converges dir now (as at boot) and again whenever its
// files change, until ctx ends. Problems are logged; it never gives up.
func (e *Engine) WatchWorkloads(ctx context.Context, dir string, every time.Duration) {
	last := ""
	boot := true
	for {
		fp := fingerprint(dir)
		if fp != last {
			specs, err := LoadWorkloads(dir)
			if err != nil {
				e.log.Warn("loading workloads", "dir", dir, "err", err)
			}
			e.SetDeclared(specs)
			err = e.Converge(ctx, specs, boot)
			last, boot = fp, false
			if err != nil {
				e.log.Warn("converging workloads", "dir", dir, "err", err)
				last = "" // try again next time (a registry may be down)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.done:
			return
		case <-time.After(every):
		}
	}
}

// SetDeclared records the declared workloads for HealthCheck, which fails
// until each exists. WatchWorkloads calls it on every load; hostd may call
// it once before serving, so the gate never sees the moment before.
func (e *Engine) SetDeclared(specs []ContainerSpec) {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		names = append(names, s.Name)
	}
	e.mu.Lock()
	e.declared = names
	e.mu.Unlock()
}

// fingerprint hashes the names and contents of dir's files.
func fingerprint(dir string) string {
	h := sha256.New()
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
		fmt.Fprintf(h, "%s\x00%d\x00", ent.Name(), len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
