// Command hostd-shim is the per-container process hostd starts: it stays
// for the container's whole life (logs, stdin, exit status), so it links
// no container runtime, only hostd/engine/shim (see its doc). hostd runs
// it from beside its own binary. Called docker-init (mounted at
// /sbin/docker-init in a container run with --init), it is that
// container's init instead (hostd/engine/dinit): it is static, so it runs
// in any image. Run as `docker` (the image's /usr/bin/docker links to
// it), it is `docker system dial-stdio` for remote clients with
// DOCKER_HOST=ssh:// (hostd/dialstdio).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/hostd/dialstdio"
	"github.com/bulkhead-os/bulkhead/hostd/engine/dinit"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "docker":
		os.Exit(dialstdio.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case dinit.Name:
		os.Exit(dinit.Main(os.Args[1:]))
	}
	if err := shim.Main(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hostd-shim:", err)
		os.Exit(1)
	}
}
