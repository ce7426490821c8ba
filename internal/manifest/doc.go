// Package manifest is the build manifest (out/<name>/manifest.json: every
// output's size and sha256, the verity root hash, the partition table) and
// the file hashing it is made with. The builder writes it; `builder publish`
// and the updater's tests read it. It is a leaf package so that nothing on
// the host has to import the image builder to read a build.
package manifest
