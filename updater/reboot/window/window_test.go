package window

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST tests must not depend on the host's tzdata

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func clock(s string) Clock {
	c, err := ParseClock(s)
	if err != nil {
		panic(err)
	}
	return c
}

func days(s ...string) [7]bool {
	d, err := ParseDays(s)
	if err != nil {
		panic(err)
	}
	return d
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestResolveAcrossDST(t *testing.T) {
	ny, berlin := zone(t, "America/New_York"), zone(t, "Europe/Berlin")
	for _, tc := range []struct {
		name string
		loc  *time.Location
		date string
		at   string
		want string
	}{
		// 2026-03-08: New York skips 02:00-03:00 EST -> EDT.
		{"ny normal", ny, "2026-03-07", "02:30", "2026-03-07T07:30:00Z"},
		{"ny gap", ny, "2026-03-08", "02:30", "2026-03-08T07:00:00Z"},
		{"ny gap start", ny, "2026-03-08", "02:00", "2026-03-08T07:00:00Z"},
		{"ny after gap", ny, "2026-03-08", "03:00", "2026-03-08T07:00:00Z"},
		{"ny before gap", ny, "2026-03-08", "01:59", "2026-03-08T06:59:00Z"},
		// 2026-11-01: New York repeats 01:00-02:00 (EDT, then EST).
		{"ny repeated hour, first", ny, "2026-11-01", "01:30", "2026-11-01T05:30:00Z"},
		{"ny after repeat", ny, "2026-11-01", "02:00", "2026-11-01T07:00:00Z"},
		// 2026-03-29: Berlin skips 02:00-03:00 CET -> CEST.
		{"berlin gap", berlin, "2026-03-29", "02:30", "2026-03-29T01:00:00Z"},
		// 2026-10-25: Berlin repeats 02:00-03:00.
		{"berlin repeated hour, first", berlin, "2026-10-25", "02:30", "2026-10-25T00:30:00Z"},
		{"berlin after repeat", berlin, "2026-10-25", "03:00", "2026-10-25T02:00:00Z"},
		{"day overflow", time.UTC, "2026-11-30", "01:00", "2026-11-30T01:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := time.Parse(time.DateOnly, tc.date)
			got := Resolve(d.Year(), d.Month(), d.Day(), clock(tc.at), tc.loc)
			if want := utc(tc.want); !got.Equal(want) {
				t.Errorf("got %s, want %s", got.UTC().Format(time.RFC3339), tc.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	ny, berlin := zone(t, "America/New_York"), zone(t, "Europe/Berlin")
	end := func(s string) *Clock { c := clock(s); return &c }
	for _, tc := range []struct {
		name string
		w    Window
		now  string
		want string
	}{
		{"ny sunday 02:30 in the gap opens at 03:00 EDT",
			Window{Days: days("sun"), Start: clock("02:30"), Length: time.Hour, Location: ny},
			"2026-03-07T17:00:00Z", "2026-03-08T07:00:00Z"},
		{"ny gap window closes an hour after it opened",
			Window{Days: days("sun"), Start: clock("02:30"), Length: time.Hour, Location: ny},
			"2026-03-08T08:00:00Z", "2026-03-15T06:30:00Z"},
		{"ny repeated hour: the first 01:30 opens it",
			Window{Start: clock("01:30"), Length: 30 * time.Minute, Location: ny},
			"2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"},
		{"ny repeated hour: the second 01:45 is outside",
			Window{Start: clock("01:30"), Length: 30 * time.Minute, Location: ny},
			"2026-11-01T06:45:00Z", "2026-11-02T06:30:00Z"},
		{"ny wall-clock end on fall-back night spans three real hours",
			Window{Start: clock("01:00"), End: end("03:00"), Location: ny},
			"2026-11-01T07:30:00Z", "2026-11-01T07:30:00Z"},
		{"ny wall-clock end on spring-forward night spans one real hour",
			Window{Start: clock("01:00"), End: end("03:00"), Location: ny},
			"2026-03-08T07:00:00Z", "2026-03-09T05:00:00Z"},
		{"berlin weekday night window crossing midnight, still open saturday 01:00",
			Window{Days: days("mon-fri"), Start: clock("22:00"), End: end("02:00"), Location: berlin},
			"2026-11-27T23:00:00Z", "2026-11-27T23:00:00Z"},
		{"berlin after friday's window waits for monday",
			Window{Days: days("mon-fri"), Start: clock("22:00"), End: end("02:00"), Location: berlin},
			"2026-11-28T02:00:00Z", "2026-11-30T21:00:00Z"},
		{"berlin spring forward 02:30 opens at 03:00 CEST",
			Window{Start: clock("02:30"), Length: time.Hour, Location: berlin},
			"2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
		{"berlin fall back 02:30 opens at the first 02:30",
			Window{Start: clock("02:30"), Length: time.Hour, Location: berlin},
			"2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
		{"utc open now", Window{Start: clock("00:00"), Length: 6 * time.Hour, Location: time.UTC},
			"2026-11-23T05:59:59Z", "2026-11-23T05:59:59Z"},
		{"utc just closed", Window{Start: clock("00:00"), Length: 6 * time.Hour, Location: time.UTC},
			"2026-11-23T06:00:00Z", "2026-11-24T00:00:00Z"},
		{"week-long window from saturday", Window{Days: days("sat"), Start: clock("00:00"), Length: MaxLength, Location: time.UTC},
			"2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.w.Validate(); err != nil {
				t.Fatal(err)
			}
			got := tc.w.Next(utc(tc.now))
			if want := utc(tc.want); !got.Equal(want) {
				t.Errorf("got %s, want %s", got.UTC().Format(time.RFC3339), tc.want)
			}
		})
	}
}

// TestNextIsOpen checks, every 37 minutes over a year in New York with a
// weekend window, that Next lands in the window and never goes back.
func TestNextIsOpen(t *testing.T) {
	w := Window{Days: days("sat-sun"), Start: clock("01:30"), Length: 90 * time.Minute, Location: zone(t, "America/New_York")}
	for now := utc("2026-01-01T00:00:00Z"); now.Year() == 2026; now = now.Add(37 * time.Minute) {
		n := w.Next(now)
		if n.Before(now) || !w.Open(n) {
			t.Fatalf("Next(%s) = %s: before now or not open", now, n)
		}
		if c := w.Closes(n); !c.After(n) || w.Open(c) && w.Closes(c).Equal(c) {
			t.Fatalf("Closes(%s) = %s: not after it, or open but not closing", n, c)
		}
		if wd := n.In(w.Location).Weekday(); wd != time.Saturday && wd != time.Sunday {
			t.Fatalf("Next(%s) = %s on %s", now, n, wd)
		}
	}
}

func TestCloses(t *testing.T) {
	ny := zone(t, "America/New_York")
	w := Window{Start: clock("01:00"), End: &Clock{3, 0}, Location: ny}
	for _, tc := range []struct{ now, want string }{
		{"2026-11-01T05:30:00Z", "2026-11-01T08:00:00Z"}, // fall back: 3 real hours
		{"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z"}, // spring forward: 1 real hour
		{"2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z"}, // closed: itself
	} {
		if got := w.Closes(utc(tc.now)); !got.Equal(utc(tc.want)) {
			t.Errorf("Closes(%s): got %s, want %s", tc.now, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	if _, err := ParseClock("24:00"); err == nil {
		t.Error("24:00: got nil error")
	}
	if _, err := ParseClock("2:30"); err == nil {
		t.Error("2:30: got nil error")
	}
	got := days("fri-mon", "Wednesday")
	want := [7]bool{true, true, false, true, false, true, true}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	_, err := ParseDays([]string{"mon", "funday", "mon-xyz"})
	if err == nil || !strings.Contains(err.Error(), "funday") || !strings.Contains(err.Error(), "mon-xyz") {
		t.Errorf("got %v, want both bad days reported", err)
	}
	if err := (Window{Start: clock("02:00"), End: &Clock{2, 0}}).Validate(); err == nil || !strings.Contains(err.Error(), "equals start") || !strings.Contains(err.Error(), "no time zone") {
		t.Errorf("got %v, want both problems", err)
	}
}

func TestLoadLocation(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	loc, err := LoadLocation(root, "local")
	if err != nil || loc != time.UTC {
		t.Errorf("no /etc/localtime: got %v, %v, want UTC", loc, err)
	}
	ny := zone(t, "America/New_York")
	// The host's zone file, copied under the root, is what "local" reads.
	src, err := os.ReadFile("/usr/share/zoneinfo/America/New_York")
	if err != nil {
		t.Fatal("needs the host's tzdata (Debian package tzdata)")
	}
	if err := os.MkdirAll(filepath.Join(string(root), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Join("/etc/localtime"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	loc, err = LoadLocation(root, "")
	if err != nil {
		t.Fatal(err)
	}
	jul := utc("2026-07-01T12:00:00Z")
	if _, off := jul.In(loc).Zone(); off != -4*3600 {
		t.Errorf("got offset %d, want -14400", off)
	}
	if loc, err := LoadLocation(root, "America/New_York"); err != nil || loc.String() != ny.String() {
		t.Errorf("got %v, %v", loc, err)
	}
	if _, err := LoadLocation(root, "Mars/Olympus"); err == nil {
		t.Error("Mars/Olympus: got nil error")
	}
}
