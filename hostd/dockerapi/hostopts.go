package dockerapi

import (
	"strconv"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// hostOptionsBody are the create body's HostConfig fields of
// engine.HostOptions and of the CPU and memory limits beyond --memory and
// --cpus.
type hostOptionsBody struct {
	Privileged        bool
	SecurityOpt       []string
	Devices           []engine.DeviceMapping
	Ulimits           []engine.Ulimit
	Sysctls           map[string]string
	ShmSize           int64
	Init              *bool
	CPUShares         int64 `json:"CpuShares"`
	CPUQuota          int64 `json:"CpuQuota"`
	CPUPeriod         int64 `json:"CpuPeriod"`
	CpusetCpus        string
	CpusetMems        string
	MemoryReservation int64
	MemorySwap        int64
}

// apply maps the fields onto s. The Docker API has dockerd's default of
// no no_new_privs unless --security-opt no-new-privileges asks for it.
func (h hostOptionsBody) apply(s *engine.ContainerSpec) {
	s.HostOptions = engine.HostOptions{
		Privileged: h.Privileged, SecurityOpt: h.SecurityOpt, AllowNewPrivileges: true,
		Devices: h.Devices, Ulimits: h.Ulimits, Sysctls: h.Sysctls, Init: h.Init != nil && *h.Init,
	}
	if h.ShmSize != 0 {
		s.ShmSize = strconv.FormatInt(h.ShmSize, 10)
	}
	l := &s.Limits
	l.CPUShares, l.CPUQuota, l.CPUPeriod, l.CpusetCpus, l.CpusetMems = h.CPUShares, h.CPUQuota, h.CPUPeriod, h.CpusetCpus, h.CpusetMems
	if h.MemoryReservation != 0 {
		l.MemoryReservation = strconv.FormatInt(h.MemoryReservation, 10)
	}
	if h.MemorySwap != 0 {
		l.MemorySwap = strconv.FormatInt(h.MemorySwap, 10)
	}
}

// hostOptionsJSON adds the options' inspect fields to hc, as dockerd
// reports them.
func hostOptionsJSON(s engine.ContainerSpec, hc map[string]any) {
	o, l := s.HostOptions, s.Limits
	devices := make([]map[string]string, 0, len(o.Devices))
	for _, d := range o.Devices {
		dst, perms := d.PathInContainer, d.CgroupPermissions
		if dst == "" {
			dst = d.PathOnHost
		}
		if perms == "" {
			perms = "rwm"
		}
		devices = append(devices, map[string]string{"PathOnHost": d.PathOnHost, "PathInContainer": dst, "CgroupPermissions": perms})
	}
	ulimits := make([]map[string]any, 0, len(o.Ulimits))
	for _, u := range o.Ulimits {
		ulimits = append(ulimits, map[string]any{"Name": u.Name, "Soft": u.Soft, "Hard": u.Hard})
	}
	var init any // dockerd: null unless --init was given
	if o.Init {
		init = true
	}
	mem := func(v string) int64 {
		if v == "-1" {
			return -1
		}
		n, _ := runtime.ParseMemory(v)
		return n
	}
	hc["Privileged"], hc["SecurityOpt"], hc["Devices"], hc["Ulimits"] = o.Privileged, o.SecurityOpt, devices, ulimits
	hc["Sysctls"], hc["ShmSize"], hc["Init"] = o.Sysctls, o.ShmBytes(), init
	var pids any // dockerd: null unless --pids-limit was given
	if l.Pids > 0 {
		pids = l.Pids
	}
	hc["Memory"], hc["NanoCpus"], hc["PidsLimit"] = mem(l.Memory), int64(l.CPUs*1e9), pids
	hc["MemorySwap"], hc["MemoryReservation"] = mem(l.MemorySwap), mem(l.MemoryReservation)
	hc["CpuShares"], hc["CpuQuota"], hc["CpuPeriod"], hc["CpusetCpus"], hc["CpusetMems"] = l.CPUShares, l.CPUQuota, l.CPUPeriod, l.CpusetCpus, l.CpusetMems
}
