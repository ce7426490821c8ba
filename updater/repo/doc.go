// Package repo is the update repository: plain files any HTTP server, object
// store or directory can serve. `builder publish` writes it (Publish,
// SetChannel, RefreshTimestamp, ChangeKey); `hostctl upgrade` and hostd's
// periodic check read it (Client.Resolve) and download parts resumably with
// HTTP Range into /var/lib/bulkhead/updater/download/<version>/.
//
// Layout (every path relative to the repository base URL or directory):
//
//	tuf/root.json, tuf/<N>.root.json     TUF root metadata, every version kept
//	tuf/timestamp.json                   TUF timestamp (short-lived, re-signed by --refresh-timestamp)
//	tuf/<N>.snapshot.json                TUF snapshot (consistent snapshots)
//	tuf/<N>.targets.json                 TUF targets: every file below, and the channels
//	channels/<channel>.json              {"format":1,"channel":"stable","image":"default","version":"1.2.0","rollout":{...}}
//	versions/<version>/manifest.json     the update manifest (payload.Manifest)
//	versions/<version>/manifest.json.sig its pre-TUF signature: "bulkhead-ed25519-sig <key id> <base64>" lines
//	versions/<version>/usr.erofs         the /usr slot image        (part "usr")
//	versions/<version>/usr.verity        its veritysetup hash device (part "verity")
//	versions/<version>/vmlinuz           kernel                      (part "kernel")
//	versions/<version>/initrd.img        initrd                      (part "initrd")
//	versions/<version>/<part file>.caibx its casync chunk index      (part "<part>.caibx", optional)
//	chunks/<4 hex>/<id>.cacnk            zstd chunks every version's indexes share
//
// Publish makes the chunk indexes and the store only through the Chunker it
// is given (package updater/delta/chunker, which links desync): this
// package is linked into every host and must not link the chunker.
//
// # TUF
//
// The metadata follows The Update Framework (specification 1.0,
// https://theupdateframework.github.io/specification/latest/) through
// github.com/theupdateframework/go-tuf/v2: root, targets, snapshot and
// timestamp roles, each with an expiry, each signed by a threshold of the
// keys root lists for it. Every file under versions/ is a target with its
// length and sha256, so the manifest a host parses and every part it writes
// are vouched for by the targets role.
//
// A channel is the target channels/<channel>.json whose custom field
// ({"bulkhead": Channel}) carries the version, the rollout with its pause
// flag, and the image name, signed by the targets role. Custom fields in
// the one targets role, not a delegated role per channel, because every
// channel of a repository is published by the same people with the same
// keys: a delegation per channel would add a metadata file, a key set and
// a snapshot entry per channel and protect against nothing more, while one
// targets file listed in one snapshot makes mixing channels a mismatch the
// snapshot already catches. A host checks that the channel it reads is
// signed as the channel it asked for and as its own image (ErrWrongImage),
// and that the manifest names the same image and version.
//
// The host keeps the last metadata it trusted in TrustedDir (one directory
// per repository URL, TrustedPath) and refuses, by
// name: expired metadata (ErrFreeze), a timestamp, snapshot or targets older
// than the one it trusted (ErrRollback), a snapshot or targets file that is
// not the one the signed timestamp or snapshot lists (ErrMixAndMatch), and
// metadata not signed by a threshold of trusted keys, a revoked key's
// included (ErrUntrustedMetadata). Key rotation is root metadata version
// N+1 signed by a threshold of version N's root keys and of its own; hosts
// walk the root versions one by one.
//
// # Migration from the format before TUF
//
// Before TUF the channel file was unsigned and the manifest was signed with
// an ed25519 key whose public half the image carries in
// /usr/lib/bulkhead/keys. Publish still writes both (the channel file holds
// the same bytes as the channel target, the signature uses the first key),
// so a host running old code keeps updating from a TUF repository and, once
// on new code, reads it through TUF. The image's keys stay the root of
// trust: a host without trusted metadata trusts tuf/1.root.json only when a
// threshold of its root signatures are by keys in /usr/lib/bulkhead/keys
// (the first publish makes root version 1 with the publisher's keys for
// every role, so the key already in the image is that signer). A repository
// without tuf/ is read the old way (channel file, signed manifest), unless
// this host trusted TUF metadata before (ErrTUFGone): stripping the metadata
// does not downgrade a host to the weaker format.
package repo
