// Package payload is the signed update manifest (version, minimum version to
// update from, every part's size and sha256, verity root hash, kernel
// arguments), the ed25519 key files and signatures, and version ordering.
// `builder publish` signs with it; `hostctl upgrade` verifies with the keys in
// /usr/lib/bulkhead/keys before anything touches a partition.
package payload
