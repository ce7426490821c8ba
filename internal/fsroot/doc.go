// Package fsroot joins paths inside a filesystem root given as a parameter
// ("/" in production, t.TempDir() in tests) and writes files atomically
// (temp file, fsync, rename). Every component that touches the host uses it.
package fsroot
