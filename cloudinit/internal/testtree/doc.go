// Package testtree renders a directory tree (paths, modes, owners, symlink
// targets and contents) as text for golden files in cloudinit's tests.
// Tests only; it reads the tree it is given and writes nothing.
package testtree
