package testtree

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dump lists every entry under root except those whose root-relative path
// starts with one of skip (setup fixtures). Regular file contents follow
// their line, indented; binary files show their size, OpenSSH private keys
// only what they are.
func Dump(root string, skip ...string) string {
	var b strings.Builder
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel := "/" + strings.TrimPrefix(path, root+"/")
		for _, s := range skip {
			if strings.HasPrefix(rel, s) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		// Owners are left out: they depend on whether the test runs as root.
		owner := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			fmt.Fprintf(&b, "%s -> %s\n", rel, target)
		case info.IsDir():
			fmt.Fprintf(&b, "%s/ %04o%s\n", rel, info.Mode().Perm(), owner)
		default:
			fmt.Fprintf(&b, "%s %04o%s\n", rel, info.Mode().Perm(), owner)
			data, _ := os.ReadFile(path)
			if strings.HasPrefix(string(data), "-----BEGIN OPENSSH PRIVATE KEY-----") {
				// Its check bytes are random even for a fixed key.
				fmt.Fprintf(&b, "    (an OpenSSH private key)\n")
				break
			}
			if strings.ContainsRune(string(data), 0) {
				fmt.Fprintf(&b, "    (%d bytes of binary)\n", len(data))
				break
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				fmt.Fprintf(&b, "    | %s\n", l)
			}
		}
		return nil
	})
	return b.String()
}

// FakeShadow answers useradd and groupadd the way the real tools change
// /etc/passwd and /etc/group under root, so code that looks users up after
// creating them can be tested without root. Other commands answer nothing.
func FakeShadow(root string, cmdName string, args []string) {
	name := ""
	if len(args) > 0 {
		name = args[len(args)-1]
	}
	appendLine := func(file, line string) {
		p := filepath.Join(root, file)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
	count := func(file string) int {
		data, _ := os.ReadFile(filepath.Join(root, file))
		return strings.Count(string(data), "\n")
	}
	switch cmdName {
	case "useradd":
		id := 1000 + count("/etc/passwd")
		home := "/home/" + name
		for i, a := range args {
			if a == "--home-dir" && i+1 < len(args) {
				home = args[i+1]
			}
		}
		appendLine("/etc/passwd", fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh", name, id, id, home))
		appendLine("/etc/group", fmt.Sprintf("%s:x:%d:", name, id))
		if !strings.Contains(strings.Join(args, " "), "--no-create-home") {
			_ = os.MkdirAll(filepath.Join(root, home), 0o755)
		}
	case "groupadd":
		appendLine("/etc/group", fmt.Sprintf("%s:x:%d:", name, 2000+count("/etc/group")))
	}
}

// WriteFile writes a fixture file, creating its directories.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
