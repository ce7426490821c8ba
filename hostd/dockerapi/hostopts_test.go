package dockerapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// The create body's host options land in the container spec, and inspect
// gives them back as the body had them.
func TestHostOptionsBody(t *testing.T) {
	body := `{"Image":"busybox","HostConfig":{"Privileged":true,"SecurityOpt":["no-new-privileges","seccomp=unconfined"],
		"Devices":[{"PathOnHost":"/dev/null","PathInContainer":"/dev/mynull","CgroupPermissions":"rw"}],
		"Ulimits":[{"Name":"nofile","Soft":100,"Hard":200}],"Sysctls":{"kernel.shmmax":"1000000"},"ShmSize":1048576,"Init":true,
		"Memory":67108864,"MemorySwap":-1,"MemoryReservation":33554432,"CpuShares":512,"CpuQuota":50000,"CpuPeriod":200000,
		"CpusetCpus":"0","CpusetMems":"0"}}`
	if un, err := unsupportedOptions([]byte(body)); err != nil || len(un) > 0 {
		t.Fatalf("refused: %v, %v", un, err)
	}
	var b createBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	s, err := b.toSpec("x")
	if err != nil {
		t.Fatal(err)
	}
	want := engine.HostOptions{
		Privileged: true, SecurityOpt: []string{"no-new-privileges", "seccomp=unconfined"}, AllowNewPrivileges: true,
		Devices: []engine.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "rw"}},
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 100, Hard: 200}}, Sysctls: map[string]string{"kernel.shmmax": "1000000"},
		ShmSize: "1048576", Init: true,
	}
	if !reflect.DeepEqual(s.HostOptions, want) {
		t.Errorf("host options: got %+v, want %+v", s.HostOptions, want)
	}
	wantLimits := engine.Limits{Memory: "67108864", MemorySwap: "-1", MemoryReservation: "33554432", CPUShares: 512, CPUQuota: 50000,
		CPUPeriod: 200000, CpusetCpus: "0", CpusetMems: "0"}
	if s.Limits != wantLimits {
		t.Errorf("limits: got %+v, want %+v", s.Limits, wantLimits)
	}
	hc := inspectJSON(engine.Container{ID: strings.Repeat("a", 64), Spec: s}, func(string) string { return "" })["HostConfig"]
	got, _ := json.Marshal(hc)
	var back struct{ HostConfig hostOptionsBody }
	if err := json.Unmarshal([]byte(`{"HostConfig":`+string(got)+`}`), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.HostConfig, b.HostConfig.hostOptionsBody) {
		t.Errorf("inspect: got %+v, want %+v", back.HostConfig, b.HostConfig.hostOptionsBody)
	}
	// No option: Docker's defaults (no no_new_privs, 64 MiB /dev/shm, no
	// init) reported as dockerd does.
	var plain createBody
	if s, err = plain.toSpec("y"); err == nil {
		t.Fatal("a body without an image passed")
	}
	plain.Image = "busybox"
	if s, err = plain.toSpec("y"); err != nil || !s.AllowNewPrivileges {
		t.Fatalf("defaults: %+v, %v; want AllowNewPrivileges", s.HostOptions, err)
	}
	hcm := inspectJSON(engine.Container{ID: strings.Repeat("b", 64), Spec: s}, func(string) string { return "" })["HostConfig"].(map[string]any)
	if hcm["ShmSize"] != int64(engine.DefaultShmSize) || hcm["Init"] != nil || hcm["Privileged"] != false {
		t.Errorf("defaults in inspect: ShmSize %v, Init %v, Privileged %v", hcm["ShmSize"], hcm["Init"], hcm["Privileged"])
	}
}

// A bad option is a bad request naming it.
func TestHostOptionsBodyRefused(t *testing.T) {
	for body, want := range map[string]string{
		`{"HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}`:                            `"apparmor=unconfined"`,
		`{"HostConfig":{"SecurityOpt":["label=disable"]}}`:                                  `"label=disable"`,
		`{"HostConfig":{"SecurityOpt":["seccomp={nope"]}}`:                                  "seccomp profile",
		`{"HostConfig":{"Sysctls":{"kernel.hostname":"x"}}}`:                                `"kernel.hostname"`,
		`{"HostConfig":{"NetworkMode":"host","Sysctls":{"net.a.b":"1"}}}`:                   `"net.a.b" is not allowed in the host's network namespace`,
		`{"HostConfig":{"Ulimits":[{"Name":"bogus","Soft":1,"Hard":1}]}}`:                   `"bogus"`,
		`{"HostConfig":{"Memory":67108864,"MemorySwap":33554432}}`:                          "memorySwap",
		`{"HostConfig":{"NanoCpus":1000000000,"CpuPeriod":100000}}`:                         "not with cpus",
		`{"HostConfig":{"Devices":[{"PathOnHost":"relative/dev"}]}}`:                        `"relative/dev"`,
		`{"HostConfig":{"MemoryReservation":1000}}`:                                         "memoryReservation",
		`{"HostConfig":{"CpusetCpus":"a-b"}}`:                                               "cpusetCpus",
		`{"HostConfig":{"Devices":[{"PathOnHost":"/dev/null","CgroupPermissions":"rwx"}]}}`: `"rwx"`,
	} {
		var b createBody
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		b.Image = "busybox"
		if _, err := b.toSpec("x"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %s", body, err, want)
		}
	}
	// What stays refused is named with its flag.
	for body, want := range map[string]string{
		`{"HostConfig":{"PidMode":"host"}}`:                  "HostConfig.PidMode (--pid)",
		`{"HostConfig":{"DeviceRequests":[{"Count":-1}]}}`:   "HostConfig.DeviceRequests (--gpus)",
		`{"HostConfig":{"DeviceCgroupRules":["c 1:3 rwm"]}}`: "HostConfig.DeviceCgroupRules",
		`{"HostConfig":{"IpcMode":"host"}}`:                  "HostConfig.IpcMode (--ipc)",
	} {
		un, err := unsupportedOptions([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := unsupportedError(un); !errors.Is(err, errBadRequest) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want a bad request naming %s", body, err, want)
		}
	}
}
