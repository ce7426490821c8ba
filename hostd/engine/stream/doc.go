// Package stream is Docker's stdout/stderr multiplexing: each frame is an
// 8-byte header (stream byte, three zero bytes, big-endian uint32 length)
// and the payload. Used by hostd's exec/logs routes, the Docker API and
// hostctl to carry both streams over one HTTP body.
package stream
