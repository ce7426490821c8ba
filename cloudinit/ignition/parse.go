package ignition

import (
	"errors"
	"fmt"
	"strings"

	ignerrors "github.com/coreos/ignition/v2/config/shared/errors"
	v35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// Config is a parsed config, translated to spec 3.5.
type Config = types.Config

// Parts of a config, as ignition/v2 declares them for spec 3.5.
type (
	Resource = types.Resource
	Node     = types.Node
	Link     = types.Link
	// NoProxyItem is an entry of ignition.proxy.noProxy.
	NoProxyItem = types.NoProxyItem
	// Verification is a resource's expected hash.
	Verification = types.Verification
)

// Parse parses a config of any spec from 3.0 to 3.5 (Butane's output
// included) and translates it to 3.5. The error carries Ignition's
// validation report, each entry with its JSON path; warnings (unknown
// keys, deprecated fields) come back without stopping the config.
func Parse(raw []byte) (Config, []string, error) {
	cfg, rpt, err := v35.ParseCompatibleVersion(raw)
	if err != nil {
		if msg := strings.TrimSpace(rpt.String()); msg != "" && errors.Is(err, ignerrors.ErrInvalid) {
			return Config{}, nil, fmt.Errorf("ignition config: %s", oneLine(msg))
		}
		return Config{}, nil, fmt.Errorf("ignition config: %w", err)
	}
	var warnings []string
	for _, e := range rpt.Entries {
		warnings = append(warnings, oneLine(e.String()))
	}
	return cfg, warnings, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
