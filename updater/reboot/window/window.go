package window

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// MaxLength bounds a window: Next looks this far back for a window that is
// still open.
const MaxLength = 7 * 24 * time.Hour

// Clock is a wall-clock time of day.
type Clock struct{ Hour, Minute int }

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute) }

// ParseClock reads "HH:MM" (24-hour).
func ParseClock(s string) (Clock, error) {
	var c Clock
	if len(s) != 5 || s[2] != ':' {
		return c, fmt.Errorf("%q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &c.Hour, &c.Minute); err != nil || c.Hour > 23 || c.Minute > 59 || c.Hour < 0 || c.Minute < 0 {
		return Clock{}, fmt.Errorf("%q is not HH:MM", s)
	}
	return c, nil
}

var dayNames = map[string]time.Weekday{}

func init() {
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		dayNames[name] = d
		dayNames[name[:3]] = d
	}
}

// ParseDays reads weekday names ("mon", "Monday") and ranges ("mon-fri",
// "fri-mon" wraps over the weekend). The result is a set indexed by weekday.
func ParseDays(items []string) ([7]bool, error) {
	var set [7]bool
	var errs []error
	for _, it := range items {
		lo, hi, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(it)), "-")
		a, ok1 := dayNames[lo]
		b, ok2 := a, true
		if isRange {
			b, ok2 = dayNames[hi]
		}
		if !ok1 || !ok2 {
			errs = append(errs, fmt.Errorf("%q is not a weekday or a range of weekdays", it))
			continue
		}
		for d := a; ; d = (d + 1) % 7 {
			set[d] = true
			if d == b {
				break
			}
		}
	}
	return set, errors.Join(errs...)
}

// LoadLocation resolves a configured time zone: "" or "local" is the host's
// /etc/localtime, "UTC" is UTC, anything else an IANA name read from the
// host's /usr/share/zoneinfo, then from Go's own database.
func LoadLocation(root fsroot.Root, name string) (*time.Location, error) {
	switch name {
	case "UTC":
		return time.UTC, nil
	case "", "local":
		data, err := os.ReadFile(root.Join("/etc/localtime"))
		if errors.Is(err, os.ErrNotExist) {
			// systemd's rule: no /etc/localtime means UTC.
			return time.UTC, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading local time zone: %w", err)
		}
		loc, err := time.LoadLocationFromTZData("Local", data)
		if err != nil {
			return nil, fmt.Errorf("reading local time zone from %s: %w", root.Join("/etc/localtime"), err)
		}
		return loc, nil
	}
	if data, err := os.ReadFile(root.Join("/usr/share/zoneinfo", name)); err == nil && !strings.Contains(name, "..") {
		if loc, err := time.LoadLocationFromTZData(name, data); err == nil {
			return loc, nil
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("loading time zone %q: %w", name, err)
	}
	return loc, nil
}

// Window is a recurring maintenance window.
type Window struct {
	// Days on which a window opens (indexed by time.Weekday); all false
	// means every day.
	Days  [7]bool
	Start Clock
	// End, when set, closes the window at that wall-clock time: on the same
	// day if after Start, otherwise on the next day. Without End, the window
	// lasts Length of elapsed time, so a night with a DST change is an hour
	// longer or shorter on the wall clock but not in real time.
	End      *Clock
	Length   time.Duration
	Location *time.Location
}

// Validate reports every problem with w.
func (w Window) Validate() error {
	var errs []error
	if w.Location == nil {
		errs = append(errs, errors.New("no time zone"))
	}
	switch {
	case w.End != nil && *w.End == w.Start:
		errs = append(errs, fmt.Errorf("end %s equals start", w.End))
	case w.End == nil && (w.Length <= 0 || w.Length > MaxLength):
		errs = append(errs, fmt.Errorf("length %s must be > 0 and <= %s", w.Length, MaxLength))
	}
	return errors.Join(errs...)
}

// Next returns the earliest instant at or after t at which the window is
// open: t itself when it is open now.
func (w Window) Next(t time.Time) time.Time {
	every := w.Days == [7]bool{}
	lt := t.In(w.Location)
	var best time.Time
	// A window that opened up to MaxLength ago may still be open; one opens
	// within a week from now on some allowed day.
	for k := -8; k <= 8; k++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+k, 12, 0, 0, 0, w.Location)
		if !every && !w.Days[day.Weekday()] {
			continue
		}
		open, shut := w.interval(day)
		if !shut.After(t) || !shut.After(open) {
			continue
		}
		cand := open
		if t.After(open) {
			cand = t
		}
		if best.IsZero() || cand.Before(best) {
			best = cand
		}
	}
	return best
}

// Closes returns when the window open at t closes (the latest close among
// overlapping windows), or t itself when no window is open at t.
func (w Window) Closes(t time.Time) time.Time {
	every := w.Days == [7]bool{}
	lt := t.In(w.Location)
	end := t
	for k := -8; k <= 1; k++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+k, 12, 0, 0, 0, w.Location)
		if !every && !w.Days[day.Weekday()] {
			continue
		}
		if open, shut := w.interval(day); !t.Before(open) && t.Before(shut) && shut.After(end) {
			end = shut
		}
	}
	return end
}

// Open reports whether the window is open at t.
func (w Window) Open(t time.Time) bool { return w.Next(t).Equal(t) }

// interval is the window that opens on day's date: [open, shut).
func (w Window) interval(day time.Time) (open, shut time.Time) {
	y, m, d := day.Date()
	open = Resolve(y, m, d, w.Start, w.Location)
	if w.End == nil {
		return open, open.Add(w.Length)
	}
	if w.End.Hour*60+w.End.Minute <= w.Start.Hour*60+w.Start.Minute {
		d++
	}
	return open, Resolve(y, m, d, *w.End, w.Location)
}

// Resolve turns a wall-clock time on a date into an instant. A time that
// occurs twice (the hour repeated when clocks go back) resolves to its first
// occurrence; a time that does not occur (the hour skipped when clocks go
// forward) resolves to the moment the clocks jump, the first instant whose
// wall clock has passed it. Go's time.Date leaves both cases unspecified.
func Resolve(y int, m time.Month, d int, c Clock, loc *time.Location) time.Time {
	naive := time.Date(y, m, d, c.Hour, c.Minute, 0, 0, time.UTC)
	y, m, d = naive.Date() // normalised: the day after Nov 30 is Dec 1
	// The zone offsets in force a day either side cover both sides of any
	// transition near this wall time.
	_, before := naive.Add(-24 * time.Hour).In(loc).Zone()
	_, after := naive.Add(24 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		inst := naive.Add(-time.Duration(off) * time.Second)
		ly, lm, ld := inst.In(loc).Date()
		lh, lmin, _ := inst.In(loc).Clock()
		if ly == y && lm == m && ld == d && lh == c.Hour && lmin == c.Minute {
			if best.IsZero() || inst.Before(best) {
				best = inst
			}
		}
	}
	if !best.IsZero() {
		return best.In(loc)
	}
	// In a gap: find the transition instant by bisection on the offset.
	lo, hi := naive.Add(-24*time.Hour), naive.Add(24*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, off := mid.In(loc).Zone(); off == after {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi.Truncate(time.Second).In(loc)
}
