package engine

import (
	"context"
	"fmt"
)

// ContainerUpdate is what docker update changes in a container; nil
// fields are kept. The limits are Limits' fields.
type ContainerUpdate struct {
	Memory, MemorySwap, MemoryReservation *string
	CPUs                                  *float64
	CPUShares, CPUQuota, CPUPeriod        *int64
	CpusetCpus, CpusetMems                *string
	Pids                                  *int64
	Restart                               *string // the restart policy
}

// apply sets u's limits on l.
func (u ContainerUpdate) apply(l *Limits) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&l.Memory, u.Memory)
	set(&l.MemorySwap, u.MemorySwap)
	set(&l.MemoryReservation, u.MemoryReservation)
	set(&l.CpusetCpus, u.CpusetCpus)
	set(&l.CpusetMems, u.CpusetMems)
	for _, f := range []struct {
		dst *int64
		v   *int64
	}{{&l.CPUShares, u.CPUShares}, {&l.CPUQuota, u.CPUQuota}, {&l.CPUPeriod, u.CPUPeriod}, {&l.Pids, u.Pids}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if u.CPUs != nil {
		l.CPUs = *u.CPUs
	}
}

// UpdateContainer changes a container's limits and restart policy, as
// docker update does: they are kept in its spec for every later start
// and, while it runs, its cgroup gets the new limits at once (they are
// applied first, so a limit the kernel refuses changes nothing). A
// declared container (a workload file) goes back to its file's spec when
// the workloads are next reconciled and the file differs.
func (e *Engine) UpdateContainer(ctx context.Context, ref string, u ContainerUpdate) (Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return Container{}, err
	}
	m := e.op(c.ID)
	m.Lock()
	defer m.Unlock()
	if c, err = e.Get(c.ID); err != nil {
		return Container{}, err
	}
	spec := c.Spec
	u.apply(&spec.Limits)
	if u.Restart != nil {
		if p, err := ParseRestart(*u.Restart); err == nil && p.Name != RestartNo && spec.AutoRemove {
			// dockerd's answer: an --rm container is removed at its exit.
			return Container{}, fmt.Errorf("updating %s: %w: Restart policy cannot be updated because AutoRemove is enabled for the container", c.Name, ErrConflict)
		}
		spec.Restart = *u.Restart
	}
	if err := spec.Validate(); err != nil {
		return Container{}, fmt.Errorf("updating %s: %w: %v", c.Name, ErrInvalid, err)
	}
	if c.State == StateRunning && spec.Limits != c.Spec.Limits {
		lim, err := e.limits(spec.Limits)
		if err != nil {
			return Container{}, fmt.Errorf("updating %s: %w", c.Name, err)
		}
		if err := e.rt.Update(c.ID, lim.Resources()); err != nil {
			return Container{}, fmt.Errorf("updating %s: %w", c.Name, err)
		}
	}
	c, err = e.update(c.ID, func(x *Container) { x.Spec.Limits, x.Spec.Restart = spec.Limits, spec.Restart })
	if err != nil {
		return Container{}, err
	}
	e.emit(c, "update")
	return c, nil
}
