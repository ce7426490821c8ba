// Command hostctl inspects and manages a Bulkhead host.
package main

import (
	"os"

	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
)

func main() { os.Exit(hostctl.Main()) }
