// Package logs writes and reads container logs in Docker's json-file format
// (one {"log","stream","time"} object a line) with size-based rotation:
// <dir>/container.log, container.log.1 (older), ... The shim writes them; the
// engine reads and follows them for `hostctl logs` and the Docker API.
package logs
