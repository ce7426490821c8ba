// Command hostd-launch is the shim's launcher (`hostd-launch launch ARGS`,
// run by hostd-shim: it starts the container and exits) and, re-executed
// by libcontainer, the container's init. It links the runtime and little
// else, so the two programs run at every container start begin in a few
// milliseconds, where hostd's whole binary takes tens.
package main

import (
	"context"
	"fmt"
	"os"

	// libcontainer's C constructor: re-executed as a container's init,
	// this binary joins the namespaces before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim/launch"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libct.Init() // a container's init: never returns
	}
	if len(os.Args) < 2 || os.Args[1] != "launch" {
		fmt.Fprintln(os.Stderr, "usage: hostd-launch launch SHIM-ARGS (run by hostd-shim)")
		os.Exit(2)
	}
	if err := launch.Main(context.Background(), os.Args[2:], libct.New); err != nil {
		fmt.Fprintln(os.Stderr, "hostd-launch:", err)
		os.Exit(1)
	}
}
