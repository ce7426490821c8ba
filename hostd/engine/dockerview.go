package engine

import "github.com/bulkhead-os/bulkhead/hostd/engine/image"

// NetworkOf is the network c is (or will be) attached to: its spec's, or
// the default (bridge when the host has one, else none). The Docker API's
// `network` filter and NetworkSettings read it.
func (e *Engine) NetworkOf(c Container) string { return c.network(e.hasBridge()) }

// SizeRw is the bytes c has written to its writable layer (docker ps -s);
// 0 before its first start.
func (e *Engine) SizeRw(c Container) int64 { return image.DirSize(e.snaps.Upper(c.ID)) }
