// Package cli is the `builder` command line: one cobra verb per file (build,
// seed, keygen, publish). cmd/builder/main.go only runs NewRootCmd. The verbs
// write under the output and repository directories they are given.
package cli
