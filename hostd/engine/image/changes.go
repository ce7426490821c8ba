package image

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrBadChange marks a docker commit -c instruction refused: one that is
// not a config change (RUN, COPY...), or malformed.
var ErrBadChange = fmt.Errorf("invalid change")

// ApplyChanges applies docker commit's -c instructions (Dockerfile
// syntax) to cfg: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
// ONBUILD, USER, VOLUME and WORKDIR, the instructions dockerd 20.10
// applies. Any other instruction (STOPSIGNAL too, as dockerd) is refused
// by name.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, ch := range changes {
		for _, line := range strings.Split(ch, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := applyChange(cfg, line); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, line string) error {
	instr, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrBadChange, line, why) }
	switch strings.ToUpper(instr) {
	case "CMD":
		cfg.Cmd = commandForm(rest)
	case "ENTRYPOINT":
		cfg.Entrypoint = commandForm(rest)
	case "ENV":
		kvs, err := keyValues(rest, true)
		if err != nil {
			return bad(err.Error())
		}
		for _, kv := range kvs {
			k, _, _ := strings.Cut(kv, "=")
			replaced := false
			for i, e := range cfg.Env {
				if ek, _, _ := strings.Cut(e, "="); ek == k {
					cfg.Env[i], replaced = kv, true
				}
			}
			if !replaced {
				cfg.Env = append(cfg.Env, kv)
			}
		}
	case "LABEL":
		kvs, err := keyValues(rest, false)
		if err != nil {
			return bad(err.Error())
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			cfg.Labels[k] = v
		}
	case "EXPOSE":
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[strings.ToLower(p)] = struct{}{}
		}
	case "USER":
		cfg.User = rest
	case "WORKDIR":
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + strings.TrimPrefix(cfg.WorkingDir+"/"+rest, "/")
		}
		cfg.WorkingDir = rest
	case "ONBUILD":
		sub, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(sub) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return bad(sub + " is not allowed as an ONBUILD trigger")
		}
		cfg.OnBuild = append(cfg.OnBuild, rest)
	case "HEALTHCHECK":
		hc, err := parseHealthcheck(rest)
		if err != nil {
			return bad(err.Error())
		}
		cfg.Healthcheck = hc
	case "VOLUME":
		var vols []string
		if err := json.Unmarshal([]byte(rest), &vols); err != nil {
			vols = strings.Fields(rest)
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	default:
		return fmt.Errorf("%w: %s is not a valid change command", ErrBadChange, strings.ToUpper(instr))
	}
	if rest == "" {
		return bad("no arguments")
	}
	return nil
}

// commandForm is a CMD or ENTRYPOINT argument: the exec form (a JSON
// array) or the shell form, run by /bin/sh -c.
func commandForm(s string) []string {
	var args []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &args) == nil {
		return args
	}
	return []string{"/bin/sh", "-c", s}
}

// keyValues splits ENV and LABEL arguments: k=v pairs (values may be
// double-quoted), or, for ENV, the legacy "key value" form.
func keyValues(s string, legacy bool) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("no arguments")
	}
	first, _, _ := strings.Cut(s, " ")
	if legacy && !strings.Contains(first, "=") {
		k, v, _ := strings.Cut(s, " ")
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	for s != "" {
		s = strings.TrimLeft(s, " \t")
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%q is not key=value", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			v, rest = rest[1:end+1], rest[end+2:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		out = append(out, k+"="+v)
		s = strings.TrimSpace(rest)
	}
	return out, nil
}

// parseHealthcheck parses HEALTHCHECK's arguments: NONE, or options
// (--interval, --timeout, --start-period, --retries) then CMD and the
// command, in exec or shell form.
func parseHealthcheck(s string) (*v1.HealthConfig, error) {
	if strings.EqualFold(strings.TrimSpace(s), "NONE") {
		return &v1.HealthConfig{Test: []string{"NONE"}}, nil
	}
	hc := &v1.HealthConfig{}
	for strings.HasPrefix(s, "--") {
		opt, rest, _ := strings.Cut(s, " ")
		s = strings.TrimSpace(rest)
		k, v, ok := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		if !ok {
			return nil, fmt.Errorf("option %s needs a value", opt)
		}
		if k == "retries" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--retries %q: not a count", v)
			}
			hc.Retries = n
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", k, err)
		}
		switch k {
		case "interval":
			hc.Interval = d
		case "timeout":
			hc.Timeout = d
		case "start-period":
			hc.StartPeriod = d
		default:
			return nil, fmt.Errorf("unknown option --%s", k)
		}
	}
	kw, cmd, _ := strings.Cut(s, " ")
	cmd = strings.TrimSpace(cmd)
	if !strings.EqualFold(kw, "CMD") || cmd == "" {
		return nil, fmt.Errorf("wants NONE or CMD and a command")
	}
	var args []string
	if strings.HasPrefix(cmd, "[") && json.Unmarshal([]byte(cmd), &args) == nil {
		hc.Test = append([]string{"CMD"}, args...)
	} else {
		hc.Test = []string{"CMD-SHELL", cmd}
	}
	return hc, nil
}
