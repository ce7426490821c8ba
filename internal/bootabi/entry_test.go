package bootabi

import (
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestEntryGolden(t *testing.T) {
	e := Entry{
		Slot: SlotB, Version: "1.2.0",
		RootPartUUID:   "11111111-1111-1111-1111-111111111111",
		UsrPartUUID:    "22222222-2222-2222-2222-222222222222",
		VerityPartUUID: "33333333-3333-3333-3333-333333333333",
		RootHash:       "abcdef",
		Args:           []string{"console=ttyS0,115200", "panic=10"},
		VerityOptions:  VerityOptions,
		RootPart:       7, UsrPart: 5, VerityPart: 6,
	}
	golden.Assert(t, "entry-b.cfg", []byte(e.GrubConfig()))
	if c := e.Cmdline(); !strings.Contains(c, "root=PARTUUID=11111111-1111-1111-1111-111111111111 ") ||
		!strings.Contains(c, "systemd.verity_usr_hash=PARTUUID=33333333-3333-3333-3333-333333333333 ") {
		t.Errorf("the recorded command line %q does not name the recorded partitions", c)
	}
	noProbe := e
	noProbe.RootPart = 0
	if c := noProbe.GrubConfig(); strings.Contains(c, "probe") || !strings.Contains(c, "set bulkhead_root_partuuid=11111111-1111-1111-1111-111111111111") {
		t.Errorf("an entry without partition numbers probes, or lost the recorded UUIDs:\n%s", c)
	}
	e.VerityOptions = ""
	if c := e.Cmdline(); strings.Contains(c, "verity_usr_options") {
		t.Errorf("no options given, command line %q names some", c)
	}
	rel := ParseRelease([]byte(e.Release("default")))
	if rel["VERSION"] != "1.2.0" || rel["ROOTHASH"] != "abcdef" {
		t.Errorf("got %v", rel)
	}
}
