package cloudconfig

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// StringList takes a sequence of strings or one comma-separated string
// ("wheel, docker"), the two shapes cloud-init accepts for lists of names.
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = nil
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*l = append(*l, s)
			}
		}
		return nil
	case yaml.SequenceNode:
		out, err := scalars(n)
		*l = out
		return err
	}
	return fmt.Errorf("want a string or a list of strings")
}

// scalars reads a sequence of scalars as strings.
func scalars(n *yaml.Node) ([]string, error) {
	var out []string
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("[%d]: want a string", i)
		}
		out = append(out, c.Value)
	}
	return out, nil
}

// Lines takes a multi-line string (one item per line, blank lines
// skipped) or a list of strings: cloud-init's shapes for chpasswd.list,
// which splits a string with splitlines(), never on commas.
type Lines []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *Lines) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = nil
		if n.ShortTag() == "!!null" {
			return nil
		}
		for _, s := range strings.FieldsFunc(n.Value, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if s = strings.TrimSpace(s); s != "" {
				*l = append(*l, s)
			}
		}
		return nil
	case yaml.SequenceNode:
		out, err := scalars(n)
		*l = out
		return err
	}
	return fmt.Errorf("want a multi-line string or a list of strings")
}

// Scalar is a value cloud-init accepts as a string, number or boolean
// (uid: 1000 or "1000"; delay: "+5" or 5; ssh_pwauth: true or "unchanged").
type Scalar struct {
	Value string
	Tag   string // !!str, !!int, !!bool, ...
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a string, number or boolean")
	}
	*s = Scalar{Value: n.Value, Tag: n.ShortTag()}
	return nil
}

// Bool reads the scalar as a boolean the way YAML 1.1 (and so cloud-init)
// does: true/yes/on, false/no/off.
func (s *Scalar) Bool() (val, ok bool) {
	if s == nil {
		return false, false
	}
	switch strings.ToLower(s.Value) {
	case "true", "yes", "on", "y":
		return true, true
	case "false", "no", "off", "n":
		return false, true
	}
	return false, false
}

// String returns the scalar's text; "" for a nil scalar.
func (s *Scalar) String() string {
	if s == nil {
		return ""
	}
	return s.Value
}

// Command is a command of bootcmd/runcmd: a string run by /bin/sh, or a
// list run as argv without a shell.
type Command struct {
	Shell string
	Argv  []string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = Command{Shell: n.Value}
		return nil
	case yaml.SequenceNode:
		var argv []string
		for i, a := range n.Content {
			if a.Kind != yaml.ScalarNode {
				return fmt.Errorf("[%d]: want a string", i)
			}
			argv = append(argv, a.Value)
		}
		if len(argv) == 0 {
			return fmt.Errorf("empty command")
		}
		*c = Command{Argv: argv}
		return nil
	}
	return fmt.Errorf("want a string or a list of strings")
}

// Sudo is a user's sudo rules: a string, a list, or false/null for none.
type Sudo []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Sudo) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!bool" || n.ShortTag() == "!!null") {
		if n.ShortTag() == "!!bool" && strings.EqualFold(n.Value, "true") {
			return fmt.Errorf("want a sudoers rule such as \"ALL=(ALL) NOPASSWD:ALL\", not true")
		}
		*s = nil
		if n.ShortTag() == "!!bool" {
			*s = Sudo{} // false: no rules, and say so (it replaces the default user's)
		}
		return nil
	}
	var l StringList
	if n.Kind == yaml.ScalarNode {
		// One rule may contain commas ("ALL=(ALL) NOPASSWD:/bin/a,/bin/b").
		*s = Sudo{n.Value}
		return nil
	}
	if err := l.UnmarshalYAML(n); err != nil {
		return err
	}
	*s = Sudo(l)
	return nil
}

// Group is one entry of the top-level groups key.
type Group struct {
	Name    string
	Members []string
}

// Groups takes cloud-init's shapes: "a, b", [a, b] or [a, {b: [u1, u2]}].
type Groups []Group

// UnmarshalYAML implements yaml.Unmarshaler.
func (g *Groups) UnmarshalYAML(n *yaml.Node) error {
	var out Groups
	add := func(i int, c *yaml.Node) error {
		switch c.Kind {
		case yaml.ScalarNode:
			out = append(out, Group{Name: c.Value})
		case yaml.MappingNode:
			for j := 0; j+1 < len(c.Content); j += 2 {
				var members StringList
				if err := members.UnmarshalYAML(c.Content[j+1]); err != nil {
					return fmt.Errorf("[%d].%s: %w", i, c.Content[j].Value, err)
				}
				out = append(out, Group{Name: c.Content[j].Value, Members: members})
			}
		default:
			return fmt.Errorf("[%d]: want a name or {name: [members]}", i)
		}
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var l StringList
		_ = l.UnmarshalYAML(n)
		for _, name := range l {
			out = append(out, Group{Name: name})
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := add(i, c); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		if err := add(0, n); err != nil {
			return err
		}
	}
	*g = out
	return nil
}

// Perm is a file mode written as an octal string ("0644", "0o644") or a
// number (YAML 1.1 reads 0644 as octal, 420 as decimal).
type Perm uint32

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Perm) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want an octal mode such as \"0644\"")
	}
	v := strings.TrimSpace(n.Value)
	base := 10
	switch {
	case strings.HasPrefix(v, "0o") || strings.HasPrefix(v, "0O"):
		v, base = v[2:], 8
	case strings.HasPrefix(v, "0") && len(v) > 1:
		base = 8
	case n.ShortTag() == "!!str":
		base = 8
	}
	m, err := strconv.ParseUint(v, base, 32)
	if err != nil || m > 0o7777 {
		return fmt.Errorf("%q is not a file mode: want an octal mode such as \"0644\"", n.Value)
	}
	*p = Perm(m)
	return nil
}

// MountEntry is one line of mounts: fs_spec, fs_file, fs_vfstype,
// fs_mntops, fs_freq, fs_passno; missing or null fields take defaults.
type MountEntry []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *MountEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("want a list such as [/dev/vdb, /data, ext4, defaults]")
	}
	var out MountEntry
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return fmt.Errorf("[%d]: want a string", i)
		}
		if c.ShortTag() == "!!null" {
			out = append(out, "")
			continue
		}
		out = append(out, c.Value)
	}
	if len(out) > 6 {
		return fmt.Errorf("%d fields, want at most 6", len(out))
	}
	*m = out
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler: "default" or a bare name is a
// string, anything else a mapping.
func (u *User) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "default" {
			*u = User{Name: "default", Default: true}
			return nil
		}
		*u = User{Name: n.Value}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want \"default\", a name or a mapping")
	}
	type plain User
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*u = User(p)
	if u.Name == "" {
		return fmt.Errorf("name is required")
	}
	return nil
}
