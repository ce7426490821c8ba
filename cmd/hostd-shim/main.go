// Command hostd-shim is the per-container process hostd starts: it stays
// for the container's whole life (logs, stdin, exit status), so it links
// no container runtime, only hostd/engine/shim (see its doc). hostd runs
// it from beside its own binary.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

func main() {
	if err := shim.Main(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hostd-shim:", err)
		os.Exit(1)
	}
}
