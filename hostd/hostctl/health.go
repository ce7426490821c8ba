package hostctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/client"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// Health check directories, like greenboot's: executables run in name order;
// a file in /etc replaces the one of the same name in /usr, and an empty or
// /dev/null one in /etc disables it.
var healthDirs = []string{"/usr/lib/bulkhead/health.d", "/etc/bulkhead/health.d"}

func newHealthCmd(d Deps) *cobra.Command {
	var timeout time.Duration
	var noReboot bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "The boot health gate: hostd healthy and every health.d check passing",
		Long: "Waits for hostd to answer and report healthy, then runs the executables in\n" +
			"/usr/lib/bulkhead/health.d and /etc/bulkhead/health.d. On failure during a slot's\n" +
			"trial boot it reboots, so GRUB counts the try and falls back when tries run out.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			err := checkHealth(ctx, d, cmd.OutOrStdout())
			if err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "bulkhead: health checks passed")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: health check failed: %v\n", err)
			if noReboot {
				return err
			}
			if _, rerr := rebootIfTrial(cmd.Context(), d, cmd.OutOrStdout()); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long hostd may take to become healthy")
	cmd.Flags().BoolVar(&noReboot, "no-reboot", false, "never reboot on failure")
	return cmd
}

// rebootIfTrial reboots when the booted slot is on trial (GRUB's try slot,
// not yet the default), so GRUB counts the try down and falls back to the
// default slot when no tries are left. It reports whether it rebooted.
func rebootIfTrial(ctx context.Context, d Deps, out io.Writer) (bool, error) {
	h := slots.Host{Root: d.Root}
	booted, err := h.Booted()
	if err != nil {
		return false, err
	}
	st, _, err := h.BootState()
	if err != nil {
		return false, err
	}
	if !st.OnTrial(booted) {
		return false, nil
	}
	fmt.Fprintf(out, "bulkhead: slot %s is on trial (%d tries left): rebooting\n", booted, st.TriesLeft)
	if _, err := d.Runner.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"reboot", "--no-block"}}); err != nil {
		return false, fmt.Errorf("rebooting out of the trial of slot %s: %w", booted, err)
	}
	return true, nil
}

// checkHealth waits for hostd's health endpoint to say healthy (retrying
// until ctx ends), then runs the health.d checks once.
func checkHealth(ctx context.Context, d Deps, out io.Writer) error {
	c := client.New(d.Socket)
	var last error
	for {
		var resp hostd.HealthResponse
		last = c.Do(ctx, http.MethodGet, "/v1/health", nil, &resp)
		if last == nil {
			break
		}
		if !resp.Healthy && len(resp.Checks) > 0 {
			var bad []string
			for _, ch := range resp.Checks {
				if ch.Error != "" {
					bad = append(bad, ch.Name+": "+ch.Error)
				}
			}
			last = fmt.Errorf("hostd unhealthy: %s", strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for hostd to be healthy: %w", last)
		case <-time.After(time.Second):
		}
	}
	checks, err := healthChecks(d.Root)
	if err != nil {
		return err
	}
	for _, p := range checks {
		if _, err := d.Runner.Run(ctx, run.Cmd{Name: p}); err != nil {
			return fmt.Errorf("health check %s: %w", d.Root.Rel(p), err)
		}
		fmt.Fprintf(out, "bulkhead: health check %s passed\n", filepath.Base(p))
	}
	return nil
}

// healthChecks lists the executables to run, /etc overriding /usr by name.
func healthChecks(root fsroot.Root) ([]string, error) {
	byName := map[string]string{}
	for _, dir := range healthDirs {
		ents, err := os.ReadDir(root.Join(dir))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing health checks in %s: %w", dir, err)
		}
		for _, e := range ents {
			p := root.Join(dir, e.Name())
			st, err := os.Stat(p)
			if err != nil || st.IsDir() || st.Size() == 0 || st.Mode()&0o111 == 0 {
				delete(byName, e.Name()) // masked or not a check
				continue
			}
			byName[e.Name()] = p
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out, nil
}
