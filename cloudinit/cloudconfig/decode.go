package cloudconfig

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse decodes one #cloud-config document. Every problem is returned with
// its key path; keys that decode are kept even when others do not.
func Parse(data []byte) (Config, Problems) {
	return ParseDocs([][]byte{data})
}

// ParseDocs decodes several #cloud-config documents (MIME parts) into one
// Config. A top-level key in a later document replaces the earlier one,
// cloud-init's default merge for parts.
func ParseDocs(docs [][]byte) (Config, Problems) {
	var probs Problems
	var order []string
	keys := map[string]*yaml.Node{}
	for i, data := range docs {
		prefix := ""
		if len(docs) > 1 {
			prefix = fmt.Sprintf("part %d: ", i+1)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			probs.add("", "%smalformed YAML: %s", prefix, yamlMsg(err))
			continue
		}
		if len(doc.Content) == 0 {
			continue // empty document: nothing to do
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			probs.add("", "%swant a mapping of keys at the top level", prefix)
			continue
		}
		for j := 0; j+1 < len(root.Content); j += 2 {
			k := root.Content[j].Value
			if _, seen := keys[k]; !seen {
				order = append(order, k)
			}
			keys[k] = root.Content[j+1]
		}
	}
	var cfg Config
	fields := fieldsByTag(reflect.TypeOf(cfg))
	v := reflect.ValueOf(&cfg).Elem()
	for _, k := range order {
		if msg, ok := refused[k]; ok {
			probs.add(k, "%s", msg)
			continue
		}
		idx, ok := fields[k]
		if !ok {
			probs.add(k, "unknown key")
			continue
		}
		field := v.Field(idx)
		checkKnown(keys[k], field.Type(), k, &probs)
		if !decodeAt(keys[k], field, k, &probs) {
			field.Set(reflect.Zero(field.Type()))
		}
	}
	return cfg, probs
}

// decodeAt decodes n into v, reporting errors at the deepest path it can
// (users[2].uid rather than users). A list item that fails is dropped and
// the other items kept: one bad user must not stop the others.
func decodeAt(n *yaml.Node, v reflect.Value, path string, probs *Problems) bool {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !implementsUnmarshaler(t):
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return true
		}
		if n.Kind != yaml.SequenceNode {
			probs.add(path, "want a list")
			return false
		}
		out := reflect.MakeSlice(t, 0, len(n.Content))
		for i, c := range n.Content {
			e := reflect.New(t.Elem()).Elem()
			if decodeAt(c, e, fmt.Sprintf("%s[%d]", path, i), probs) {
				if it, ok := e.Addr().Interface().(interface{ setIndex(int) }); ok {
					it.setIndex(i)
				}
				out = reflect.Append(out, e)
			}
		}
		v.Set(out)
		return true
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !implementsUnmarshaler(t) && n.Kind == yaml.MappingNode:
		p := reflect.New(t.Elem())
		if !decodeAt(n, p.Elem(), path, probs) {
			return false
		}
		v.Set(p)
		return true
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && (!implementsUnmarshaler(t) || t == userType):
		fields := fieldsByTag(t)
		ok := true
		for j := 0; j+1 < len(n.Content); j += 2 {
			idx, known := fields[n.Content[j].Value]
			if !known {
				continue // reported by checkKnown
			}
			if !decodeAt(n.Content[j+1], v.Field(idx), path+"."+n.Content[j].Value, probs) {
				ok = false
			}
		}
		if u, isUser := v.Addr().Interface().(*User); isUser && u.Name == "" {
			probs.add(path+".name", "required")
			ok = false
		}
		return ok
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		probs.add(path, "%s", yamlMsg(err))
		return false
	}
	return true
}

var userType = reflect.TypeOf(User{})

func implementsUnmarshaler(t reflect.Type) bool {
	u := reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	return t.Implements(u) || reflect.PointerTo(t).Implements(u)
}

// fieldsByTag maps yaml tag names to field indexes of a struct type.
func fieldsByTag(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			out[tag] = i
		}
	}
	return out
}

// checkKnown walks n along type t and reports mapping keys that t has no
// field for, with their path. Decoding itself ignores them, so a typo is a
// warning that names the key, not a silent no-op.
func checkKnown(n *yaml.Node, t reflect.Type, path string, probs *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if implementsUnmarshaler(t) && t != userType {
		return // its UnmarshalYAML checks its own shape
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && (!implementsUnmarshaler(t) || t == userType):
		fields := fieldsByTag(t)
		for j := 0; j+1 < len(n.Content); j += 2 {
			k := n.Content[j].Value
			idx, ok := fields[k]
			if !ok {
				probs.add(path+"."+k, "unknown key")
				continue
			}
			checkKnown(n.Content[j+1], t.Field(idx).Type, path+"."+k, probs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), probs)
		}
	}
}

// yamlMsg turns a yaml error into one line without the "yaml: " prefix.
func yamlMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
