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
	}
	golden.Assert(t, "entry-b.cfg", []byte(e.GrubConfig()))
	e.VerityOptions = ""
	if c := e.Cmdline(); strings.Contains(c, "verity_usr_options") {
		t.Errorf("no options given, command line %q names some", c)
	}
	rel := ParseRelease([]byte(e.Release("default")))
	if rel["VERSION"] != "1.2.0" || rel["ROOTHASH"] != "abcdef" {
		t.Errorf("got %v", rel)
	}
}
