package storagesetup

import (
	"errors"
	"fmt"
)

// ParseCloudConfig checks cloud-config's bulkhead.storage map (the YAML that
// provisioning writes to CloudConfigFile) with the same strict parser and
// checks Load applies to that file later, so a typo is reported when the
// user-data is applied, naming the option, not at the first storage-setup
// run.
func ParseCloudConfig(data []byte) (Config, error) {
	set, err := parseYAMLOptions(data)
	if err != nil {
		return Config{}, fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(splitErrors(err)...))
	}
	raw := map[string]setting{}
	for k, v := range optionDefaults {
		raw[k] = setting{value: v, source: "default"}
	}
	for k, v := range set {
		raw[k] = setting{value: v, source: CloudConfigFile}
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%w:\n%w", ErrInvalidConfig, err)
	}
	return cfg, nil
}
