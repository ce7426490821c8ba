package cloudinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// StateDir holds provisioning state, relative to the root.
const StateDir = "/var/lib/bulkhead/provision"

// Frequency says when a module runs.
type Frequency string

// Frequencies, as cloud-init names them.
const (
	PerInstance Frequency = "once-per-instance"
	PerBoot     Frequency = "always"
)

// Status is what happened to a module this boot.
type Status string

// Module statuses.
const (
	StatusRan     Status = "ran"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped" // per-instance, already ran for this instance
	StatusNothing Status = "nothing" // no input for it
)

// ModuleResult is one module's line in the report.
type ModuleResult struct {
	Name      string    `json:"name"`
	Frequency Frequency `json:"frequency"`
	Stage     Stage     `json:"stage,omitempty"`
	Status    Status    `json:"status"`
	DurMS     float64   `json:"dur_ms"`
	Error     string    `json:"error,omitempty"`
}

// Report is the record of one provisioning run, kept in
// /var/lib/bulkhead/provision/report.json for `hostctl status`.
type Report struct {
	// Stage is the last stage that ran this boot: init, then final (or
	// all, for a tree provisioned offline).
	Stage Stage `json:"stage,omitempty"`
	// BootID is the kernel's boot_id of the boot the report is about.
	BootID string `json:"boot_id,omitempty"`
	// Disabled says why provisioning did not run (cloud-init.disabled).
	Disabled    string    `json:"disabled,omitempty"`
	InstanceID  string    `json:"instance_id,omitempty"`
	Source      string    `json:"source,omitempty"`
	NewInstance bool      `json:"new_instance"`
	Started     time.Time `json:"started"`
	DurMS       float64   `json:"dur_ms"`
	// Problems are faults in the input (unknown keys, refused keys, bad
	// formats): reported, and the rest applied.
	Problems []string       `json:"problems,omitempty"`
	Modules  []ModuleResult `json:"modules"`
	// Errors are modules or items that failed while applying.
	Errors []string `json:"errors,omitempty"`
}

// Done says whether provisioning has finished for the boot the report is
// about: the final stage ran, or it was disabled.
func (r *Report) Done() bool {
	return r.Disabled != "" || r.Stage == StageFinal || r.Stage == StageAll
}

// OK reports whether the run had neither problems nor errors.
func (r *Report) OK() bool { return len(r.Problems) == 0 && len(r.Errors) == 0 }

// String renders the report for people: a header, a line per module
// that did something, then problems and errors.
func (r *Report) String() string {
	var b strings.Builder
	src := r.Source
	if src == "" {
		src = "none"
	}
	inst := "same instance"
	if r.NewInstance {
		inst = "new instance"
	}
	if r.Disabled != "" {
		fmt.Fprintf(&b, "provisioning: disabled (%s)\n", r.Disabled)
		return b.String()
	}
	fmt.Fprintf(&b, "provisioning: source %s, instance %s (%s), %s, took %.0f ms\n",
		src, orDash(r.InstanceID), inst, r.Started.UTC().Format(time.RFC3339), r.DurMS)
	for _, m := range r.Modules {
		if m.Status == StatusNothing {
			continue
		}
		fmt.Fprintf(&b, "  %-22s %-8s %8.1f ms", m.Name, m.Status, m.DurMS)
		if m.Error != "" {
			fmt.Fprintf(&b, "  %s", m.Error)
		}
		b.WriteByte('\n')
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ErrNoReport means provisioning has not run on this root yet.
var ErrNoReport = errors.New("no provisioning report")

// LoadReport returns the report of the last provisioning run on root.
func LoadReport(root fsroot.Root) (*Report, error) {
	path := root.Join(StateDir, "report.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoReport
	}
	if err != nil {
		return nil, fmt.Errorf("reading provisioning report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading provisioning report %s: %w", path, err)
	}
	return &r, nil
}

func saveReport(root fsroot.Root, r *Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fsroot.WriteFile(root.Join(StateDir, "report.json"), append(data, '\n'), 0o644)
}
