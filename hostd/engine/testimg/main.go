package testimg

import (
	"context"
	"fmt"
	"os"
	"testing"

	// libcontainer's C constructor, for a test binary re-executed as a
	// container's init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// Main is TestMain for packages whose tests run containers: the test
// binary is then also what the hostd binary is, a container's init
// (libcontainer re-executes /proc/self/exe init) and a shim.
func Main(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "init":
			libct.Init()
		case "shim":
			if err := shim.Main(context.Background(), os.Args[2:], libct.New); err != nil {
				fmt.Fprintln(os.Stderr, "shim:", err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}
