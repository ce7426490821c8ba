// Command hostd-shim is the per-container process hostd starts: it starts
// the container through the runtime (runc's libcontainer) in its own
// process and stays for the container's whole life (logs, stdin, exit
// status; see hostd/engine/shim). Re-executed by libcontainer as `init`,
// it is the container's init until that execs the container's process.
// hostd runs it from beside its own binary. It is static (cgo, for
// libcontainer's nsenter and libseccomp, linked in), so it runs in any
// image too: called docker-init (mounted at /sbin/docker-init in a
// container run with --init), it is that container's init instead
// (hostd/engine/dinit). Run as `docker` (the image's /usr/bin/docker links
// to it), it is `docker system dial-stdio` for remote clients with
// DOCKER_HOST=ssh:// (hostd/dialstdio).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	// libcontainer's C constructor: re-executed as a container's init,
	// this binary joins the namespaces before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/bulkhead-os/bulkhead/hostd/dialstdio"
	"github.com/bulkhead-os/bulkhead/hostd/engine/dinit"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim/launch"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "docker":
		os.Exit(dialstdio.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case dinit.Name:
		os.Exit(dinit.Main(os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libct.Init() // a container's init: never returns
	}
	if err := shim.Main(context.Background(), os.Args[1:], launch.Starter(libct.New)); err != nil {
		fmt.Fprintln(os.Stderr, "hostd-shim:", err)
		os.Exit(1)
	}
}
