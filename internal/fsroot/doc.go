// Package fsroot joins paths inside a filesystem root given as a parameter
// ("/" in production, t.TempDir() or a --root tree in tests and the builder)
// and writes files atomically (temp file, fsync, rename). Symlinks in the
// tree are resolved inside the root (github.com/cyphar/filepath-securejoin),
// and Root.WriteFile, MkdirAll, Chmod, Chown and Dir work through directory
// handles, so no symlink in the tree can redirect a write outside it.
// Every component that touches the host uses it.
package fsroot
