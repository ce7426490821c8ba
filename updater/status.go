package updater

import (
	"fmt"
	"io"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/etcmerge"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// UpdateStatus is the update part of `hostctl status`: the channel followed,
// the last check, and the /etc merge conflicts of this boot.
type UpdateStatus struct {
	Channel      string            `json:"channel"`
	Source       string            `json:"source,omitempty"`
	Policy       string            `json:"policy,omitempty"`
	Pin          *Pin              `json:"pin,omitempty"`
	BadVersions  []string          `json:"badVersions,omitempty"`
	LastCheck    *LastCheck        `json:"lastCheck,omitempty"`
	EtcConflicts []etcmerge.Change `json:"etcConflicts,omitempty"`
	Problems     []string          `json:"problems,omitempty"` // what could not be read
}

// ReadUpdateStatus gathers the update status; what cannot be read is listed
// in Problems rather than failing, so status works on a damaged host.
func ReadUpdateStatus(root fsroot.Root) UpdateStatus {
	var s UpdateStatus
	cfg, err := LoadConfig(root)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	s.Channel, s.Source, s.Policy = cfg.Channel, cfg.URL, cfg.PolicyName()
	if err != nil {
		s.Policy = ""
	}
	if s.Pin, err = ReadPin(root); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if s.BadVersions, err = (slots.Host{Root: root}).BadVersions(); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if s.LastCheck, err = ReadLastCheck(root); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if s.EtcConflicts, err = etcmerge.ReadConflicts(root); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	return s
}

// Print writes the status for people, in the style of `hostctl status`.
func (s UpdateStatus) Print(w io.Writer) {
	src := s.Source
	switch {
	case s.Policy == "":
		src = "update.yaml is invalid; periodic checks retry every interval"
	case src == "":
		src = "no repository configured; periodic checks off"
	}
	fmt.Fprintf(w, "Updates: channel %s (%s)", s.Channel, src)
	if s.Policy != "" && s.Source != "" {
		fmt.Fprintf(w, ", policy %s", s.Policy)
	}
	fmt.Fprintln(w)
	if p := s.Pin; p != nil {
		fmt.Fprintf(w, "  pinned to %s (%s, %s): hostctl update unpin to follow the channel\n", p.Version, p.Reason, p.Time.Format(time.RFC3339))
	}
	for _, v := range s.BadVersions {
		fmt.Fprintf(w, "  version %s failed its trial here: not staged again (hostctl update forget-bad %s)\n", v, v)
	}
	if c := s.LastCheck; c != nil {
		line := fmt.Sprintf("  last check %s: ", c.Time.Format(time.RFC3339))
		switch {
		case c.Error != "":
			line += "failed: " + c.Error
		case c.Pinned != "" && c.Current == c.Pinned:
			line += "up to date with the pinned version " + c.Pinned
		case c.Held != "":
			line += fmt.Sprintf("%s available, held: %s", c.Available, c.Held)
		case c.Staged:
			line += fmt.Sprintf("%s staged, reboot to use it", c.Available)
		case c.Available == c.Current:
			line += "up to date"
		case c.Policy == PolicyCheck:
			line += "available " + c.Available + " (policy check: not staged)"
		default:
			line += "available " + c.Available
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "  never checked")
	}
	for _, c := range s.EtcConflicts {
		fmt.Fprintf(w, "  /etc conflict: /etc/%s: %s\n", c.Path, c.Reason)
		if c.New != "" {
			fmt.Fprintf(w, "    new default in /etc/%s: merge it by hand, then remove it\n", c.New)
		}
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  unknown: %s\n", p)
	}
}
