// Package casync reads casync's chunk index format (.caibx: a header with
// the chunk sizes, then a table of chunk end offsets and SHA-512/256 ids)
// and names chunks in a casync chunk store (<4 hex>/<id>.cacnk). It is the
// contract between the builder side that writes indexes and stores
// (updater/delta/chunker, through desync) and the host side that reads
// them (updater/delta); it has no dependencies and touches no files.
package casync
