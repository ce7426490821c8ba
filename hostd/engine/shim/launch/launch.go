package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// Starter is the shim's shim.Starter on the runtime newRuntime makes: it
// reads the container's spec from its directory and launches it there.
func Starter(newRuntime runtime.Factory) shim.Starter {
	return func(ctx context.Context, c shim.Config, files runtime.Files) (int, error) {
		b, err := os.ReadFile(filepath.Join(c.Dir, shim.SpecFile))
		if err != nil {
			return 0, fmt.Errorf("launching %s: %w", c.ID, err)
		}
		var spec specs.Spec
		if err := json.Unmarshal(b, &spec); err != nil {
			return 0, fmt.Errorf("launching %s: parsing %s: %w", c.ID, shim.SpecFile, err)
		}
		if spec.Process == nil {
			return 0, fmt.Errorf("launching %s: %s has no process", c.ID, shim.SpecFile)
		}
		return newRuntime(c.StateRoot).Launch(ctx, c.ID, &spec, files)
	}
}
