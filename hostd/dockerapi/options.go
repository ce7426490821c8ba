package dockerapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// fieldSet names the JSON fields of a create body hostd implements; a
// non-nil value lists an object's own implemented fields. Keys are lower
// case: Docker (and Go's decoder) match field names without case.
type fieldSet map[string]fieldSet

// createFields are the POST /containers/create fields toSpec maps onto
// the engine. Any other field with a value that is not its zero (or the
// CLI's default) is refused by name: dropping --cap-drop or --mount
// silently would run a container less confined, or with its data in the
// throwaway rootfs, than its user asked for.
var createFields = fieldSet{
	"hostname": nil, "user": nil, "env": nil, "cmd": nil, "entrypoint": nil, "image": nil, "workingdir": nil,
	"tty": nil, "openstdin": nil, "stdinonce": nil, "exposedports": nil, "labels": nil, "volumes": nil,
	"stopsignal": nil, "stoptimeout": nil,
	// Which streams a client attaches to is the attach request's business.
	"attachstdin": nil, "attachstdout": nil, "attachstderr": nil,
	// One network at create, with its aliases (--network-alias); the
	// rest of an endpoint (--ip, --link) is refused by name.
	"networkingconfig": {"endpointsconfig": nil},
	"healthcheck":      {"test": nil, "interval": nil, "timeout": nil, "startperiod": nil, "retries": nil},
	"hostconfig": {
		"binds": nil, "portbindings": nil, "autoremove": nil, "publishallports": nil, "networkmode": nil,
		"memory": nil, "nanocpus": nil, "pidslimit": nil, "readonlyrootfs": nil,
		"capadd": nil, "capdrop": nil, "dns": nil, "dnssearch": nil, "dnsoptions": nil, "extrahosts": nil,
		// Checked field by field, refusing by name what is not
		// implemented, in toSpec (storage.go).
		"mounts": nil, "tmpfs": nil, "logconfig": nil,
		// engine.HostOptions and the CPU and memory limits (hostopts.go).
		"privileged": nil, "securityopt": nil, "devices": nil, "ulimits": nil, "sysctls": nil, "shmsize": nil, "init": nil,
		"cpushares": nil, "cpuquota": nil, "cpuperiod": nil, "cpusetcpus": nil, "cpusetmems": nil, "memoryreservation": nil, "memoryswap": nil,
		"restartpolicy": {"name": nil, "maximumretrycount": nil},
		// The terminal size comes again in the resize the CLI sends; the
		// ID file is written by the client.
		"consolesize": nil, "containeridfile": nil,
	},
}

// createDefaults are values clients send for options left alone that are
// not their type's zero; they ask for what hostd does anyway.
var createDefaults = map[string]any{
	"hostconfig.memoryswappiness": float64(-1), // the kernel's default
	"hostconfig.logconfig.type":   "json-file", // hostd's log format
}

// keyedObjects are objects whose keys are the content ({"/data": {}} is
// an anonymous volume, {"/run": ""} a tmpfs), not a struct's fields.
var keyedObjects = map[string]bool{
	"volumes": true, "hostconfig.tmpfs": true, "hostconfig.sysctls": true, "hostconfig.storageopt": true,
	"hostconfig.annotations": true, "hostconfig.logconfig.config": true,
}

// optionFlags are the docker run flags behind fields, for the error.
var optionFlags = map[string]string{
	"hostconfig.capadd": "--cap-add", "hostconfig.capdrop": "--cap-drop", "hostconfig.privileged": "--privileged",
	"hostconfig.securityopt": "--security-opt", "hostconfig.mounts": "--mount", "hostconfig.tmpfs": "--tmpfs",
	"hostconfig.devices": "--device", "hostconfig.ulimits": "--ulimit", "hostconfig.dns": "--dns",
	"hostconfig.dnssearch": "--dns-search", "hostconfig.dnsoptions": "--dns-option", "hostconfig.extrahosts": "--add-host",
	"hostconfig.init": "--init", "stopsignal": "--stop-signal", "stoptimeout": "--stop-timeout",
	"hostconfig.logconfig": "--log-driver/--log-opt", "hostconfig.shmsize": "--shm-size", "hostconfig.sysctls": "--sysctl",
	"hostconfig.cpushares": "--cpu-shares", "hostconfig.cpusetcpus": "--cpuset-cpus", "hostconfig.memoryreservation": "--memory-reservation",
	"hostconfig.memoryswap": "--memory-swap", "hostconfig.volumesfrom": "--volumes-from", "hostconfig.links": "--link",
	"hostconfig.pidmode": "--pid", "hostconfig.ipcmode": "--ipc", "hostconfig.utsmode": "--uts", "hostconfig.usernsmode": "--userns",
	"hostconfig.groupadd": "--group-add", "hostconfig.oomscoreadj": "--oom-score-adj", "hostconfig.oomkilldisable": "--oom-kill-disable",
	"hostconfig.cgroupparent": "--cgroup-parent", "hostconfig.runtime": "--runtime", "hostconfig.devicerequests": "--gpus",
	"volumes": "-v (anonymous volume)", "domainname": "--domainname", "macaddress": "--mac-address",
	"networkingconfig": "--ip/--link", "hostconfig.cpuquota": "--cpu-quota", "hostconfig.cpuperiod": "--cpu-period",
	"hostconfig.kernelmemory": "--kernel-memory", "hostconfig.blkioweight": "--blkio-weight", "hostconfig.cpusetmems": "--cpuset-mems",
	"hostconfig.cpurealtimeperiod": "--cpu-rt-period", "hostconfig.cpurealtimeruntime": "--cpu-rt-runtime",
	"hostconfig.pidslimit": "--pids-limit", "hostconfig.memory": "--memory", "hostconfig.nanocpus": "--cpus",
}

// unsupportedOptions lists, sorted, the paths (HostConfig.CapDrop) of the
// fields in body that hostd does not implement and that carry a value.
func unsupportedOptions(body []byte) ([]string, error) {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	var out []string
	walkUnsupported("", raw, createFields, &out)
	// Each network's endpoint: its aliases, nothing else (--ip, --link).
	nc, _ := field(raw, "NetworkingConfig").(map[string]any)
	eps, _ := field(nc, "EndpointsConfig").(map[string]any)
	for name, ep := range eps {
		if m, ok := ep.(map[string]any); ok {
			walkUnsupported("NetworkingConfig.EndpointsConfig."+name+".", m, endpointFields, &out)
		}
	}
	sort.Strings(out)
	return out, nil
}

// endpointFields are the fields of a network endpoint hostd implements.
var endpointFields = fieldSet{"aliases": nil, "networkid": nil, "endpointid": nil}

// field is obj's value for key, its name matched without case as Go's
// decoder does.
func field(obj map[string]any, key string) any {
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func walkUnsupported(prefix string, obj map[string]any, known fieldSet, out *[]string) {
	for k, v := range obj {
		path := prefix + k
		sub, ok := known[strings.ToLower(k)]
		switch {
		case ok && sub == nil:
		case ok:
			if m, isObj := v.(map[string]any); isObj {
				walkUnsupported(path+".", m, sub, out)
			}
		case !isDefault(strings.ToLower(path), v):
			*out = append(*out, path)
		}
	}
}

// isDefault reports whether v asks for nothing: null, false, 0, "", an
// empty list or object, a list or object of such values, or the value a
// client sends by default (createDefaults).
func isDefault(path string, v any) bool {
	if d, ok := createDefaults[path]; ok && v == d {
		return true
	}
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		for _, e := range x {
			if !isDefault(path+"[]", e) {
				return false
			}
		}
		return true
	case map[string]any:
		if keyedObjects[path] && len(x) > 0 {
			return false
		}
		for k, e := range x {
			if !isDefault(path+"."+strings.ToLower(k), e) {
				return false
			}
		}
		return true
	}
	return false
}

// unsupportedError names the options and their docker run flags.
func unsupportedError(paths []string) error {
	return badRequest("unsupported container option: %s: hostd does not implement it; remove it to create the container", flagNames(paths, ""))
}

// flagNames lists paths with their docker run flags: prefix+path (in
// lower case) is looked up in optionFlags, as "hostconfig." for an update
// body's resources.
func flagNames(paths []string, prefix string) string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = p
		lp := prefix + strings.ToLower(p)
		for k, flag := range optionFlags {
			if lp == k || strings.HasPrefix(lp, k+".") {
				names[i] = fmt.Sprintf("%s (%s)", p, flag)
				break
			}
		}
	}
	return strings.Join(names, ", ")
}
