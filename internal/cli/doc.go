// Package cli holds what the three mains share about cobra: marking usage
// errors so that main exits 2 for them (1 for failures), and carrying a
// child's exit code. It touches nothing on disk.
package cli
