// Package image pulls OCI and Docker images with go-containerregistry into a
// content-addressed store under the engine root: manifests, configs and the
// compressed layer blobs in blobs/sha256/, each layer unpacked once into
// layers/sha256/<diffID> (shared by every image that has it), the image list
// in images.json. The blobs make push and save byte-exact: docker push sends
// the pulled manifest and blobs, docker save writes docker-archives as
// dockerd 20.10 does. docker load takes docker-archives and OCI image
// layouts, spooling every entry under a name of its own (never the entry's)
// and refusing unsafe entries, links out of the archive and digests that do
// not match, by entry name. Commit, history, login and credential helpers
// (credHelpers, credsStore in the auth file) live here too.
package image
