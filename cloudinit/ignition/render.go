package ignition

import (
	"context"
	"errors"
	"fmt"

	v35 "github.com/coreos/ignition/v2/config/v3_5"
)

// maxReferenceDepth bounds nested pointer configs: a config that merges
// itself (or two that merge each other) would otherwise fetch forever.
const maxReferenceDepth = 8

var errTooDeep = fmt.Errorf("ignition.config: more than %d nested referenced configs (does a config reference itself?)", maxReferenceDepth)

// fetcherFor builds the fetcher a config's own settings describe: its
// timeouts and proxy, and its certificate authorities, fetched with prev
// (the settings in force before this config was read), as Ignition's
// Fetcher.UpdateHttpTimeoutsAndCAs does.
func (a Applier) fetcherFor(ctx context.Context, prev *fetcher, cfg Config) (*fetcher, error) {
	opts := OptionsFrom(cfg.Ignition)
	opts.MaxSize = a.MaxSize
	if prev == nil {
		var err error
		if prev, err = newFetcher(opts); err != nil {
			return nil, err
		}
	}
	for i, ca := range cfg.Ignition.Security.TLS.CertificateAuthorities {
		pem, err := prev.fetch(ctx, ca)
		if err != nil {
			return nil, fmt.Errorf("ignition.security.tls.certificateAuthorities[%d]: %w", i, err)
		}
		opts.CAs = append(opts.CAs, pem)
	}
	return newFetcher(opts)
}

// render returns cfg with its pointer configs resolved, as Ignition's
// ConfigFetcher.RenderConfig: `ignition.config.replace` is fetched and
// rendered in cfg's place; otherwise each `ignition.config.merge` entry
// is fetched, rendered and merged in order by the spec's merge rules
// (ignition/v2 config/merge: lists of files, directories and links merged
// by path, units by name, users and groups by name; child scalars win).
// Each referenced config's settings (timeouts, proxy, CAs) apply to the
// fetches that follow it. Warnings of referenced configs are appended to
// warnings with their source.
func (a Applier) render(ctx context.Context, f *fetcher, cfg Config, depth int, warnings *[]string) (Config, error) {
	if depth > maxReferenceDepth {
		return Config{}, errTooDeep
	}
	if ref := cfg.Ignition.Config.Replace; ref.Source != nil {
		child, err := a.reference(ctx, f, ref, warnings)
		if err != nil {
			return Config{}, fmt.Errorf("ignition.config.replace: %w", err)
		}
		cf, err := a.fetcherFor(ctx, f, child)
		if err != nil {
			return Config{}, fmt.Errorf("ignition.config.replace: %w", err)
		}
		return a.render(ctx, cf, child, depth+1, warnings)
	}
	merged := cfg
	for i, ref := range cfg.Ignition.Config.Merge {
		child, err := a.reference(ctx, f, ref, warnings)
		if err != nil {
			return Config{}, fmt.Errorf("ignition.config.merge[%d]: %w", i, err)
		}
		// The child's settings are merged over the parent's before its own
		// references are fetched, as Ignition does.
		cf, err := a.fetcherFor(ctx, f, v35.Merge(merged, child))
		if err != nil {
			return Config{}, fmt.Errorf("ignition.config.merge[%d]: %w", i, err)
		}
		if child, err = a.render(ctx, cf, child, depth+1, warnings); errors.Is(err, errTooDeep) {
			return Config{}, err // one message, not one prefix per level
		} else if err != nil {
			return Config{}, fmt.Errorf("ignition.config.merge[%d]: %w", i, err)
		}
		merged = v35.Merge(merged, child)
		f = cf
	}
	return merged, nil
}

// reference fetches and parses one referenced config.
func (a Applier) reference(ctx context.Context, f *fetcher, ref Resource, warnings *[]string) (Config, error) {
	raw, err := f.fetch(ctx, ref)
	if err != nil {
		return Config{}, err
	}
	child, ws, err := Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", redact(deref(ref.Source)), err)
	}
	for _, w := range ws {
		*warnings = append(*warnings, redact(deref(ref.Source))+": "+w)
	}
	return child, nil
}
