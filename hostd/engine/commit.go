package engine

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
)

// CommitOptions are docker commit's parameters.
type CommitOptions struct {
	Ref     string   // repo[:tag], "" for an unnamed image
	Author  string   // -a
	Comment string   // -m
	Changes []string // -c, Dockerfile instructions applied to the config
	Pause   bool     // freeze a running container while its changes are read
}

// Commit makes an image of a container's changes on top of its image
// (docker commit): its overlay upper directory as one more layer, and a
// config from the container's (command, env, workdir, user, labels,
// exposed ports) with o.Changes applied.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (image.Image, error) {
	c, err := e.Get(ref)
	if err != nil {
		return image.Image{}, err
	}
	base, err := e.images.Get(c.ImageID)
	if err != nil {
		return image.Image{}, fmt.Errorf("committing %s: its image: %w", c.Name, err)
	}
	bcfg, err := e.images.Config(base)
	if err != nil {
		return image.Image{}, err
	}
	cfg := *bcfg.Config.DeepCopy()
	if len(c.Spec.Entrypoint) > 0 {
		cfg.Entrypoint, cfg.Cmd = c.Spec.Entrypoint, nil
	}
	if len(c.Spec.Command) > 0 {
		cfg.Cmd = c.Spec.Command
	}
	cfg.Env, cfg.WorkingDir, cfg.User = c.Env, c.Cwd, c.User
	if len(c.Spec.Labels) > 0 && cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for k, v := range c.Spec.Labels {
		cfg.Labels[k] = v
	}
	for _, p := range c.Exposed {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if c.Spec.StopSignal != "" {
		cfg.StopSignal = c.Spec.StopSignal
	}
	if err := image.ApplyChanges(&cfg, o.Changes); err != nil {
		return image.Image{}, fmt.Errorf("committing %s: %w", c.Name, err)
	}
	if o.Pause && c.State == StateRunning && !e.Paused(c) {
		if err := e.Pause(c.ID); err != nil {
			return image.Image{}, fmt.Errorf("committing %s: %w", c.Name, err)
		}
		defer func() { _ = e.Unpause(c.ID) }()
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.writeDiff(c, pw)) }()
	defer pr.Close()
	im, err := e.images.Commit(ctx, c.ImageID, pr, image.CommitOptions{
		Ref: o.Ref, Author: o.Author, Comment: o.Comment, Config: cfg, CreatedBy: strings.Join(c.Args, " "),
	})
	if err != nil {
		return image.Image{}, fmt.Errorf("committing %s: %w", c.Name, err)
	}
	return im, nil
}

// writeDiff writes c's upper directory as a layer tar. The mount points
// the runtime made for the engine's bind mounts (hosts, resolver,
// volumes) are not the container's changes and are left out, as docker
// diff leaves them out.
func (e *Engine) writeDiff(c Container, w io.Writer) error {
	skip := map[string]bool{"etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true}
	for _, d := range c.Destinations() {
		skip[strings.TrimPrefix(d, "/")] = true
	}
	fd, err := unix.Open(e.snaps.Upper(c.ID), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err == unix.ENOENT {
		return tar.NewWriter(w).Close() // never started: no changes
	}
	if err != nil {
		return fmt.Errorf("reading changes of %s: %w", c.Name, err)
	}
	defer unix.Close(fd)
	tw := tar.NewWriter(w)
	if err := (treeWriter{tw: tw, layer: true, skip: skip}).children(fd, ""); err != nil {
		return fmt.Errorf("reading changes of %s: %w", c.Name, err)
	}
	return tw.Close()
}

// opaque reports whether the overlay directory fd hides its lower
// layers' contents.
func opaque(fd int) bool {
	buf := make([]byte, 4)
	n, err := unix.Fgetxattr(fd, layer.OverlayOpaqueXattr, buf)
	return err == nil && n == 1 && buf[0] == 'y'
}
