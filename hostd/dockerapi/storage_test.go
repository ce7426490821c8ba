package dockerapi

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// TestCreateStorage maps the mounts, tmpfs mounts, anonymous volumes and
// log options of create bodies (as the docker CLI sends them) onto the
// spec, and refuses by name what hostd does not implement.
func TestCreateStorage(t *testing.T) {
	tests := []struct {
		name, body string
		want       func(s engine.ContainerSpec) bool
		refuse     string // text the error must have; "" for none
	}{
		{name: "mount volume", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"volume","Source":"mv","Target":"/m","ReadOnly":true,"VolumeOptions":{"NoCopy":true,"DriverConfig":{"Name":"local"}}}]}}`,
			want: func(s engine.ContainerSpec) bool {
				return reflect.DeepEqual(s.Mounts, []engine.MountSpec{{Type: "volume", Source: "mv", Target: "/m", ReadOnly: true, NoCopy: true}})
			}},
		{name: "mount tmpfs", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":2097152,"Mode":1016}}]}}`,
			want: func(s engine.ContainerSpec) bool {
				return reflect.DeepEqual(s.Mounts, []engine.MountSpec{{Type: "tmpfs", Target: "/t", TmpfsSize: 2 << 20, TmpfsMode: 0o1770}})
			}},
		{name: "tmpfs and anonymous volumes", body: `{"Image":"i","Volumes":{"/b":{},"/a":{}},"HostConfig":{"Tmpfs":{"/run":"size=1m,mode=1777"}}}`,
			want: func(s engine.ContainerSpec) bool {
				return s.Tmpfs["/run"] == "size=1m,mode=1777" && reflect.DeepEqual(s.AnonymousVolumes, []string{"/a", "/b"})
			}},
		{name: "log opts", body: `{"Image":"i","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-size":"10m","max-file":"3"}}}}`,
			want: func(s engine.ContainerSpec) bool {
				return s.Log == engine.LogSpec{Driver: "json-file", MaxSize: "10m", MaxFile: 3}
			}},
		{name: "bind propagation", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"bind","Source":"/","Target":"/m","BindOptions":{"Propagation":"rshared"}}]}}`,
			refuse: "HostConfig.Mounts[0].BindOptions.Propagation (--mount bind-propagation)"},
		{name: "volume opt", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/m","VolumeOptions":{"DriverConfig":{"Options":{"type":"nfs"}}}}]}}`,
			refuse: "VolumeOptions.DriverConfig.Options (--mount volume-opt)"},
		{name: "volume driver", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/m","VolumeOptions":{"DriverConfig":{"Name":"nfs"}}}]}}`,
			refuse: "(--mount volume-driver)"},
		{name: "npipe", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"npipe","Source":"v","Target":"/m"}]}}`, refuse: `Type "npipe"`},
		{name: "log driver", body: `{"Image":"i","HostConfig":{"LogConfig":{"Type":"syslog"}}}`, refuse: `HostConfig.LogConfig.Type "syslog" (--log-driver`},
		{name: "log opt", body: `{"Image":"i","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"compress":"true","labels":"a"}}}}`,
			refuse: "HostConfig.LogConfig.Config.compress (--log-opt compress), HostConfig.LogConfig.Config.labels (--log-opt labels)"},
		{name: "bad max-size", body: `{"Image":"i","HostConfig":{"LogConfig":{"Config":{"max-size":"lots"}}}}`, refuse: "max-size=lots"},
		{name: "bad max-file", body: `{"Image":"i","HostConfig":{"LogConfig":{"Config":{"max-file":"0"}}}}`, refuse: "max-file=0"},
		{name: "bad tmpfs option", body: `{"Image":"i","HostConfig":{"Tmpfs":{"/t":"size=1m,huge=always"}}}`, refuse: `tmpfs option "huge=always"`},
		{name: "relative target", body: `{"Image":"i","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"t"}]}}`, refuse: `target "t"`},
		{name: "duplicate target", body: `{"Image":"i","HostConfig":{"Binds":["v:/m"],"Tmpfs":{"/m":""}}}`, refuse: "duplicate mount point: /m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b createBody
			if err := json.Unmarshal([]byte(tt.body), &b); err != nil {
				t.Fatal(err)
			}
			s, err := b.toSpec("c")
			if tt.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refuse) {
					t.Fatalf("got %v, want an error with %q", err, tt.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(s) {
				t.Errorf("got mounts %+v tmpfs %v anonymous %v log %+v", s.Mounts, s.Tmpfs, s.AnonymousVolumes, s.Log)
			}
		})
	}
}

// TestCreateStorageFromCLI: the body the docker CLI sends for -v /data,
// --tmpfs, --mount and --log-opt (testdata/create-refused.json) is no
// longer refused for them, and maps onto the spec.
func TestCreateStorageFromCLI(t *testing.T) {
	body, err := os.ReadFile("testdata/create-refused.json")
	if err != nil {
		t.Fatal(err)
	}
	var b createBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	s, err := b.toSpec("c")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.AnonymousVolumes, []string{"/data"}) || s.Tmpfs["/run"] != "" || len(s.Tmpfs) != 1 ||
		!reflect.DeepEqual(s.Mounts, []engine.MountSpec{{Type: "volume", Source: "v", Target: "/v"}}) || s.Log.MaxSize != "1m" {
		t.Errorf("got mounts %+v tmpfs %v anonymous %v log %+v", s.Mounts, s.Tmpfs, s.AnonymousVolumes, s.Log)
	}
}

// TestMountsJSON: inspect's Mounts lists volumes, binds and --mount
// tmpfs mounts, not --tmpfs ones (dockerd shows those in HostConfig.Tmpfs).
func TestMountsJSON(t *testing.T) {
	c := engine.Container{Spec: engine.ContainerSpec{
		Volumes: []string{"/h:/b:ro", "nv:/n"},
		Mounts:  []engine.MountSpec{{Type: "volume", Target: "/a"}, {Type: "tmpfs", Target: "/u"}},
		Tmpfs:   map[string]string{"/t": "size=1m"},
	}, AnonymousVolumes: []engine.MountSpec{{Type: "volume", Source: "0123", Target: "/a"}}}
	got, _ := json.Marshal(mountsJSON(c, func(n string) string { return "/v/" + n + "/_data" }))
	for _, want := range []string{`"Destination":"/b","Mode":"","Propagation":"rprivate","RW":false,"Source":"/h","Type":"bind"`,
		`"Destination":"/n","Driver":"local","Mode":"z","Name":"nv","Propagation":"","RW":true,"Source":"/v/nv/_data","Type":"volume"`,
		`"Destination":"/a","Driver":"local","Mode":"z","Name":"0123","Propagation":"","RW":true,"Source":"/v/0123/_data"`, `"Destination":"/u","Mode":"","Propagation":"","RW":true,"Source":"","Type":"tmpfs"`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("got %s, want %s in it", got, want)
		}
	}
	if strings.Contains(string(got), `"/t"`) {
		t.Errorf("got %s: the --tmpfs mount /t is listed", got)
	}
	hm, _ := json.Marshal(hostMountsJSON(c.Spec.Mounts))
	if string(hm) != `[{"Target":"/a","Type":"volume"},{"Target":"/u","Type":"tmpfs"}]` {
		t.Errorf("HostConfig.Mounts: got %s", hm)
	}
}
