package dockerapi

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

func TestParseFilters(t *testing.T) {
	tests := []struct {
		name, in string
		want     filterArgs
		wantErr  string
	}{
		{name: "empty", in: "", want: filterArgs{}},
		{name: "set form", in: `{"name":{"web":true,"db":true},"label":{"a=b":true}}`, want: filterArgs{"name": {"db", "web"}, "label": {"a=b"}}},
		{name: "set form false dropped", in: `{"name":{"web":false}}`, want: filterArgs{}},
		{name: "list form", in: `{"status":["exited"]}`, want: filterArgs{"status": {"exited"}}},
		{name: "not json", in: `name=web`, wantErr: "invalid filters"},
		{name: "bad value", in: `{"name":"web"}`, wantErr: `value of "name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFilters(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errBadRequest) {
					t.Fatalf("got %v, want a bad request containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	f := filterArgs{"name": {"x"}, "nmae": {"y"}}
	err := f.validate(psFilterKeys...)
	if err == nil || err.Error() != "invalid filter 'nmae'" {
		t.Errorf("got %v, want invalid filter 'nmae'", err)
	}
	if err := (filterArgs{"name": {"x"}, "label": {"a"}}).validate(psFilterKeys...); err != nil {
		t.Errorf("known keys: got %v", err)
	}
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		name    string
		f       filterArgs
		sources []string
		want    bool
	}{
		{"no filter", filterArgs{}, []string{"/web"}, true},
		{"substring", filterArgs{"name": {"eb"}}, []string{"/web", "web"}, true},
		{"other name", filterArgs{"name": {"db"}}, []string{"/web", "web"}, false},
		{"anchored", filterArgs{"name": {"^web$"}}, []string{"/web", "web"}, true},
		{"anchored miss", filterArgs{"name": {"^web$"}}, []string{"/web2", "web2"}, false},
		{"one of two", filterArgs{"name": {"db", "web"}}, []string{"/web", "web"}, true},
		{"bad regexp exact", filterArgs{"name": {"["}}, []string{"["}, true},
		{"bad regexp", filterArgs{"name": {"["}}, []string{"/web"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.match("name", tt.sources...); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterLabelsAndBools(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": ""}
	for _, tt := range []struct {
		vals []string
		want bool
	}{
		{nil, true}, {[]string{"app"}, true}, {[]string{"app=web"}, true}, {[]string{"app=db"}, false},
		{[]string{"app", "tier="}, true}, {[]string{"app", "owner"}, false}, {[]string{"tier=x"}, false},
	} {
		if got := (filterArgs{"label": tt.vals}).matchLabels("label", labels); got != tt.want {
			t.Errorf("label %v: got %v, want %v", tt.vals, got, tt.want)
		}
	}
	for _, tt := range []struct {
		vals         []string
		value, isSet bool
		err          bool
	}{
		{nil, false, false, false}, {[]string{"true"}, true, true, false}, {[]string{"1"}, true, true, false},
		{[]string{"false"}, false, true, false}, {[]string{"maybe"}, false, false, true},
		{[]string{"true", "false"}, false, false, true},
	} {
		v, set, err := (filterArgs{"dangling": tt.vals}).boolValue("dangling")
		if v != tt.value || set != tt.isSet || (err != nil) != tt.err {
			t.Errorf("dangling %v: got %v %v %v, want %v %v err=%v", tt.vals, v, set, err, tt.value, tt.isSet, tt.err)
		}
	}
}

func TestPortFilterAndReference(t *testing.T) {
	got, err := portFilter("publish", "8080-8082/udp")
	if err != nil || len(got) != 3 || !got["8081/udp"] {
		t.Errorf("range: got %v, %v", got, err)
	}
	if got, err := portFilter("expose", "80"); err != nil || !got["80/tcp"] {
		t.Errorf("80: got %v, %v", got, err)
	}
	if _, err := portFilter("publish", "abc"); err == nil {
		t.Error("abc: got no error")
	}
	for _, tt := range []struct {
		pattern, ref string
		want         bool
	}{
		{"busybox", "busybox:latest", true}, {"busybox:latest", "busybox:latest", true}, {"busy*", "busybox:1", true},
		{"busybox:1", "busybox:latest", false}, {"*/busybox", "127.0.0.1:5000/busybox:latest", true},
		{"busybox", "127.0.0.1:5000/busybox:latest", false}, {"alpine", "busybox:latest", false},
		{"127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox@sha256:abc", true},
	} {
		if got := familiarMatch(tt.pattern, tt.ref); got != tt.want {
			t.Errorf("reference=%s on %s: got %v, want %v", tt.pattern, tt.ref, got, tt.want)
		}
	}
}

// TestListOrderLimitStatus runs the listing rules over containers, newest
// first as the engine gives them.
func TestListOrderLimitStatus(t *testing.T) {
	now := time.Now()
	mk := func(name, state string, code int, labels map[string]string) engine.Container {
		c := engine.Container{ID: name + strings.Repeat("0", 60), Name: name, State: state, ExitCode: code,
			Spec: engine.ContainerSpec{Labels: labels}}
		if state != engine.StateCreated {
			c.StartedAt = now
		}
		return c
	}
	ctrs := []engine.Container{
		mk("new", engine.StateExited, 3, nil),
		mk("web", engine.StateRunning, 0, map[string]string{"app": "web"}),
		mk("web2", engine.StateExited, 0, map[string]string{"app": "web"}),
		mk("fresh", engine.StateCreated, 0, nil),
		mk("old", engine.StateRunning, 0, nil),
	}
	names := func(cs []engine.Container) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		q    psQuery
		want string
	}{
		{"running", psQuery{}, "web,old"},
		{"all", psQuery{all: true}, "new,web,web2,fresh,old"},
		{"limit implies all", psQuery{limit: 1}, "new"},
		{"limit 2", psQuery{limit: 2}, "new,web"},
		{"name substring", psQuery{all: true, f: filterArgs{"name": {"web"}}}, "web,web2"},
		{"name anchored", psQuery{all: true, f: filterArgs{"name": {"^web$"}}}, "web"},
		{"name without all", psQuery{f: filterArgs{"name": {"web"}}}, "web"},
		{"id prefix", psQuery{all: true, f: filterArgs{"id": {"old0"}}}, "old"},
		{"label", psQuery{all: true, f: filterArgs{"label": {"app=web"}}}, "web,web2"},
		{"status exited", psQuery{all: true, f: filterArgs{"status": {"exited"}}}, "new,web2"},
		{"status created", psQuery{all: true, f: filterArgs{"status": {"created"}}}, "fresh"},
		{"exited 0", psQuery{all: true, exited: []int{0}}, "web2"},
		{"exited 3", psQuery{all: true, exited: []int{3}}, "new"},
		{"health none", psQuery{all: true, f: filterArgs{"health": {"none"}}}, "new,web,web2,fresh,old"},
		{"health healthy", psQuery{all: true, f: filterArgs{"health": {"healthy"}}}, ""},
		{"is-task", psQuery{all: true, f: filterArgs{"is-task": {"true"}}}, ""},
		{"not a task", psQuery{all: true, f: filterArgs{"is-task": {"false"}}}, "new,web,web2,fresh,old"},
		{"before", psQuery{all: true, before: ctrs[2].ID}, "fresh,old"},
		{"since", psQuery{all: true, since: ctrs[2].ID}, "new,web"},
		{"ancestor unknown", psQuery{all: true, images: map[string]bool{}}, ""},
		{"limit after filter", psQuery{limit: 1, f: filterArgs{"status": {"running"}}}, "web"},
	}
	a := &API{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.q.f == nil {
				tt.q.f = filterArgs{}
			}
			if got := names(a.list(&tt.q, ctrs)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnsupportedOptions(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		// What docker create sends with no options, and with options
		// hostd implements: nothing to refuse.
		{"create-default.json", nil},
		{"create-supported.json", nil},
		// --cap-drop, --dns, --add-host, --stop-signal, --init are
		// implemented.
		{"create-options.json", nil},
		// --privileged, --security-opt, --shm-size, --sysctl, --device,
		// --ulimit (hostopts.go), --mount, --tmpfs, --log-opt and
		// anonymous volumes (storage.go) are implemented.
		{"create-refused.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := unsupportedOptions(b)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	err := unsupportedError([]string{"HostConfig.CapDrop"})
	if !errors.Is(err, errBadRequest) || !strings.Contains(err.Error(), "HostConfig.CapDrop (--cap-drop)") {
		t.Errorf("got %v, want a bad request naming HostConfig.CapDrop (--cap-drop)", err)
	}
}

func TestParseTimestamp(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m": now.Add(-10 * time.Minute), "1700000000": time.Unix(1700000000, 0),
		"2025-01-02T03:04:05Z": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "2025-01-02": time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseTimestamp(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: got %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := parseTimestamp("yesterday", now); err == nil {
		t.Error("yesterday: got no error")
	}
}
