package storagesetup

import (
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Exports for the external test of the `hostctl storage-setup` verb.

func NewFakeHost(t *testing.T) *fakeHost { return newFakeHost(t) }

func (h *fakeHost) AddDisk(dev string, size uint64) { h.addDisk(dev, size, "disk") }
func (h *fakeHost) Runner() run.Runner              { return h.rec }
func (h *fakeHost) RootDir() fsroot.Root            { return h.root }
func (h *fakeHost) WriteFile(p, data string)        { h.writeFile(p, data) }
func (h *fakeHost) Exists(p string) bool            { return h.exists(p) }
func (h *fakeHost) Transcript() string              { return h.transcript() }
func (h *fakeHost) Mounted(target string) string    { return h.mnt[target] }
