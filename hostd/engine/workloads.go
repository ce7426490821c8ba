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

// WorkloadErrors is LoadWorkloads's error: the files that did not load and
// the container names they declare (their name field when it can be read,
// else the file's base name). Those containers are kept as they run: a
// typo, or a field a rolled-back hostd does not know, must not remove a
// workload.
type WorkloadErrors struct {
	Names []string
	Errs  []error
}

func (w *WorkloadErrors) Error() string   { return errors.Join(w.Errs...).Error() }
func (w *WorkloadErrors) Unwrap() []error { return w.Errs }

// brokenName is the container name a workload file that failed to load
// declares, as far as it can be read.
func brokenName(data []byte, file string) string {
	var s struct {
		Name string `yaml:"name"`
	}
	if yaml.Unmarshal(data, &s) == nil && s.Name != "" {
		return s.Name
	}
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".yml")
}

// LoadWorkloads reads every *.yaml and *.yml in dir. Files that do not parse
// or validate are reported in the error (a *WorkloadErrors); the others are
// returned, so one bad file does not keep the rest from running.
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
	var broken []string
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
			broken = append(broken, brokenName(nil, p))
			continue
		}
		s, err := ParseWorkload(b, p)
		if err != nil {
			errs = append(errs, err)
			broken = append(broken, brokenName(b, p))
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
	if len(errs) > 0 {
		return specs, &WorkloadErrors{Names: broken, Errs: errs}
	}
	return specs, nil
}

// Converge makes the managed containers match specs: new ones are pulled,
// created and started, changed ones replaced, undeclared ones removed. With
// boot set, every declared container that is not running is started (the
// host just came up). Errors of single containers are joined; the others
// still converge.
func (e *Engine) Converge(ctx context.Context, specs []ContainerSpec, boot bool) error {
	return e.converge(ctx, specs, nil, boot)
}

// converge is Converge keeping the managed containers named in keep (their
// files did not load) as they are.
func (e *Engine) converge(ctx context.Context, specs []ContainerSpec, keep []string, boot bool) error {
	var errs []error
	want := map[string]bool{}
	for _, n := range keep {
		want[n] = true
	}
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
		return e.replace(ctx, cur, s)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := e.ensureImage(ctx, s.Image); err != nil {
		return err
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

func (e *Engine) ensureImage(ctx context.Context, ref string) error {
	if _, err := e.images.Get(ref); errors.Is(err, image.ErrNotFound) {
		if _, err := e.images.Pull(ctx, ref); err != nil {
			return err
		}
	}
	return nil
}

// replace swaps the managed container cur for one made from its changed
// spec s. The new image is pulled and the new container created (under a
// temporary name) while cur still runs; cur is stopped only then, and
// started again if the new one cannot start: a bad change never costs the
// running workload.
func (e *Engine) replace(ctx context.Context, cur Container, s ContainerSpec) error {
	e.log.Info("replacing changed container", "container", s.Name)
	if err := e.ensureImage(ctx, s.Image); err != nil {
		return fmt.Errorf("keeping the running container: %w", err)
	}
	next := s
	next.Name = s.Name + "-next"
	if old, err := e.Get(next.Name); err == nil {
		// Left by a replacement that crashed half-way.
		if err := e.Remove(ctx, old.ID, true); err != nil {
			return err
		}
	}
	c, err := e.Create(ctx, next)
	if err != nil {
		return fmt.Errorf("keeping the running container: %w", err)
	}
	wasRunning := cur.State == StateRunning
	if err := e.Stop(ctx, cur.ID, 10*time.Second); err != nil {
		_ = e.Remove(ctx, c.ID, true)
		return err
	}
	if err := e.Start(ctx, c.ID); err != nil {
		_ = e.Remove(ctx, c.ID, true)
		if wasRunning {
			if serr := e.Start(ctx, cur.ID); serr != nil {
				return errors.Join(err, fmt.Errorf("restarting the previous container: %w", serr))
			}
		}
		return fmt.Errorf("kept the previous container: %w", err)
	}
	if err := e.Remove(ctx, cur.ID, true); err != nil {
		return err
	}
	_, err = e.update(c.ID, func(x *Container) { x.Name, x.Spec.Name, x.Managed = s.Name, s.Name, true })
	return err
}

// WorkloadProblems is the error of the last load of the declared
// workloads (files that did not parse or validate), nil when all loaded;
// for status output.
func (e *Engine) WorkloadProblems() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workloadErr
}

// missingDeclared says whether a declared container does not exist (was
// removed by hand): the loader then re-creates it.
func (e *Engine) missingDeclared() bool {
	e.mu.Lock()
	declared := append([]string(nil), e.declared...)
	e.mu.Unlock()
	for _, n := range declared {
		if _, err := e.Get(n); errors.Is(err, ErrNotFound) {
			return true
		}
	}
	return false
}

// WatchWorkloads converges dir now (as at boot) and again whenever its
// files change, until ctx ends. Problems are logged; it never gives up.
func (e *Engine) WatchWorkloads(ctx context.Context, dir string, every time.Duration) {
	// Workload files carry env secrets (passwords, tokens) and are
	// written 0644 by hand or by provisioning: the directory, hostd's own,
	// is made private so no local user reads them.
	if err := os.Chmod(dir, 0o700); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.log.Warn("making the workload directory private", "dir", dir, "err", err)
	}
	last := ""
	boot := true
	for {
		fp := fingerprint(dir)
		if fp != last || e.missingDeclared() {
			specs, err := LoadWorkloads(dir)
			var keep []string
			if err != nil {
				e.log.Warn("loading workloads", "dir", dir, "err", err)
				var we *WorkloadErrors
				if errors.As(err, &we) {
					keep = we.Names
				}
			}
			e.mu.Lock()
			e.workloadErr = err
			e.mu.Unlock()
			e.SetDeclared(specs)
			err = e.converge(ctx, specs, keep, boot)
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
