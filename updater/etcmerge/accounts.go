package etcmerge

import (
	"bytes"
	"fmt"
	"strings"
)

// Accounts are the account databases merged entry by entry, not as whole
// files: provisioning adds users and groups to them on every host, and a
// new version adds system accounts (passwd(5), group(5), shadow(5),
// gshadow(5): one entry per line, the name first, colon-separated).
var Accounts = map[string]bool{"passwd": true, "group": true, "shadow": true, "gshadow": true}

// idField is the index of the numeric id a new entry must not share with a
// local one (passwd's UID, group's GID); -1 for none.
func idField(file string) int {
	switch file {
	case "passwd", "group":
		return 2
	}
	return -1
}

// dbEntry is one line of an account database.
type dbEntry struct {
	name, line string
}

func parseDB(data []byte) []dbEntry {
	var out []dbEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		name, _, _ := strings.Cut(line, ":")
		out = append(out, dbEntry{name: name, line: line})
	}
	return out
}

func byName(es []dbEntry) map[string]string {
	m := map[string]string{}
	for _, e := range es {
		if e.name != "" && !strings.HasPrefix(e.name, "#") {
			m[e.name] = e.line
		}
	}
	return m
}

func field(line string, i int) string {
	f := strings.Split(line, ":")
	if i < len(f) {
		return f[i]
	}
	return ""
}

// mergeAccounts merges one account database by entry: an entry new in the
// defaults is added unless the local file has it or its id is taken by a
// local entry (a clash, reported: the local accounts own their ids); an
// entry the defaults changed follows them unless changed locally; one they
// dropped goes unless changed locally; local entries stay, in their order.
// ok is false when the local file needs no change and nothing clashes.
func mergeAccounts(path string, b, n, l entry) (op, bool) {
	base, local := byName(parseDB(b.data)), parseDB(l.data)
	localBy := byName(local)
	idx := idField(path)
	ids := map[string]string{}
	if idx >= 0 {
		for _, e := range local {
			if id := field(e.line, idx); id != "" && localBy[e.name] == e.line {
				ids[id] = e.name
			}
		}
	}
	out := append([]dbEntry(nil), local...)
	pos := map[string]int{}
	for i, e := range out {
		pos[e.name] = i
	}
	var clashes []string
	newBy := byName(parseDB(n.data))
	for _, e := range parseDB(n.data) {
		if e.name == "" || strings.HasPrefix(e.name, "#") {
			continue
		}
		be, inBase := base[e.name]
		le, inLocal := localBy[e.name]
		switch {
		case !inBase && inLocal:
			// Provisioning or the operator made it first: theirs stays.
		case !inBase:
			if idx >= 0 && ids[field(e.line, idx)] != "" {
				id := field(e.line, idx)
				clashes = append(clashes, fmt.Sprintf("id %s of new %s entry %s is taken by local %s", id, path, e.name, ids[id]))
				continue
			}
			out = append(out, e)
			pos[e.name] = len(out) - 1
		case e.line != be && inLocal && le == be:
			out[pos[e.name]] = e
		}
	}
	for name, be := range base {
		if _, kept := newBy[name]; !kept && localBy[name] == be {
			out[pos[name]].line, out[pos[name]].name = "", "\x00" // dropped
		}
	}
	var buf bytes.Buffer
	for _, e := range out {
		if e.name == "\x00" {
			continue
		}
		buf.WriteString(e.line)
		buf.WriteByte('\n')
	}
	o := op{path: path, action: Updated, data: buf.Bytes()}
	if len(clashes) > 0 {
		o.action, o.e = Conflict, n
		o.reason = strings.Join(clashes, "; ") + ": merged the rest, the new defaults are beside it"
		return o, true
	}
	return o, !bytes.Equal(o.data, l.data)
}
