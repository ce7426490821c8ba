// Package image pulls OCI and Docker images with go-containerregistry into a
// content-addressed store under the engine root: manifests and configs in
// blobs/sha256/, each layer unpacked once into layers/sha256/<diffID> (shared
// by every image that has it), the image list in images.json.
package image
