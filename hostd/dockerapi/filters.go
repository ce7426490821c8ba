package dockerapi

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// requestError is a 400 whose message is exactly what Docker answers
// (`invalid filter 'x'`), without a "bad request:" prefix.
type requestError struct{ msg string }

func (e requestError) Error() string        { return e.msg }
func (e requestError) Is(target error) bool { return target == errBadRequest }

func badRequest(format string, a ...any) error { return requestError{fmt.Sprintf(format, a...)} }

// filterArgs is a parsed `filters` query parameter: key -> values, in the
// Engine API's encoding (a JSON object of key -> {value: true}, or
// key -> [value] from API < 1.22 clients).
type filterArgs map[string][]string

// parseFilters decodes the `filters` parameter; empty is no filter.
func parseFilters(s string) (filterArgs, error) {
	out := filterArgs{}
	if s == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, badRequest("invalid filters %q: %v", s, err)
	}
	for k, v := range raw {
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err == nil {
			for val, on := range set {
				if on {
					out[k] = append(out[k], val)
				}
			}
			sort.Strings(out[k])
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, badRequest("invalid filters: value of %q is neither {value: true} nor [value]", k)
		}
		out[k] = append(out[k], list...)
	}
	return out, nil
}

// validate refuses a key not in accepted, as dockerd does: a filter that
// is ignored would widen the answer (docker stop $(docker ps -q -f ...)).
func (f filterArgs) validate(accepted ...string) error {
	for _, k := range sortedKeys(f) {
		ok := false
		for _, a := range accepted {
			ok = ok || a == k
		}
		if !ok {
			return badRequest("invalid filter '%s'", k)
		}
	}
	return nil
}

func (f filterArgs) has(key string) bool { return len(f[key]) > 0 }

// match is Docker's filters.Match: an exact value or an unanchored
// regular expression (name=web matches /web and /web2; name=^/web$ only
// /web). No value for key matches everything.
func (f filterArgs) match(key string, sources ...string) bool {
	vals := f[key]
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		re, err := regexp.Compile(v)
		for _, s := range sources {
			if v == s || (err == nil && re.MatchString(s)) {
				return true
			}
		}
	}
	return false
}

// exact reports whether one of key's values is s (true without values).
func (f filterArgs) exact(key, s string) bool {
	vals := f[key]
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if v == s {
			return true
		}
	}
	return false
}

// matchLabels is Docker's MatchKVList: every `key` or `key=value` given
// must be on the object.
func (f filterArgs) matchLabels(key string, labels map[string]string) bool {
	for _, v := range f[key] {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}

// boolValue reads a true/false filter (dangling, is-task) as dockerd's
// GetBoolOrDefault: 1/true or 0/false, both at once being an error too.
func (f filterArgs) boolValue(key string) (value, set bool, err error) {
	vals := f[key]
	if len(vals) == 0 {
		return false, false, nil
	}
	isTrue, isFalse := f.exact(key, "true") || f.exact(key, "1"), f.exact(key, "false") || f.exact(key, "0")
	for _, v := range vals {
		if isTrue == isFalse || (v != "true" && v != "1" && v != "false" && v != "0") {
			return false, false, badRequest("invalid filter '%s=%s'", key, vals)
		}
	}
	return isTrue, true, nil
}

// portFilter parses a publish/expose value: 80, 80/udp, 8000-8080/tcp.
func portFilter(key, v string) (map[string]bool, error) {
	spec, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, badRequest("error while looking up for %s %s: %v", key, v, err)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, badRequest("error while looking up for %s %s: invalid port range", key, v)
		}
	}
	out := map[string]bool{}
	for p := a; p <= b; p++ {
		out[fmt.Sprintf("%d/%s", p, proto)] = true
	}
	return out, nil
}

// familiarMatch is Docker's reference.FamiliarMatch: a path.Match glob
// against the short reference (busybox:latest) or its name alone.
func familiarMatch(pattern, ref string) bool {
	if ok, _ := path.Match(pattern, ref); ok {
		return true
	}
	name := ref
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		name = ref[:i]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	ok, _ := path.Match(pattern, name)
	return ok
}
