// Package benchtable collects the samples of benchmarks that compare
// Bulkhead with a peer (cloud-init, dockerd) over several runs and prints
// them as one table of median, min and max per metric. Benchmarks in
// qemu-tests and hostd use it; it touches nothing on disk.
package benchtable
