// Command hostd-shim is the per-container process hostd starts: it stays
// for the container's whole life (logs, stdin, exit status), so it links
// no container runtime, only hostd/engine/shim (see its doc). hostd runs
// it from beside its own binary. Run as `docker` (the image's
// /usr/bin/docker links to it), it is `docker system dial-stdio` for
// remote clients with DOCKER_HOST=ssh:// (hostd/dialstdio).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/hostd/dialstdio"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

func main() {
	if filepath.Base(os.Args[0]) == "docker" {
		os.Exit(dialstdio.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if err := shim.Main(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hostd-shim:", err)
		os.Exit(1)
	}
}
