// Package images holds Bulkhead image definitions (YAML, apiVersion
// bulkhead/v1) and their typed, validated loader. default.yaml and the
// overlay/ tree (files copied into every image) are embedded, so `builder
// build` works with no argument. It reads only the files it is given.
package images
