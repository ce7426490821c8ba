// Package repo is the update repository: plain files any HTTP server, object
// store or directory can serve. `builder publish` writes it (Publish);
// `hostctl upgrade` reads it (Client) and downloads parts resumably with HTTP
// Range into /var/lib/bulkhead/updater/download/<version>/.
//
// Layout (every path relative to the repository base URL or directory):
//
//	channels/<channel>.json             {"format":1,"channel":"stable","version":"1.2.0","rollout":{...}}
//	versions/<version>/manifest.json     the update manifest (payload.Manifest), signed as exact bytes
//	versions/<version>/manifest.json.sig one "bulkhead-ed25519-sig <key id> <base64>" line per key
//	versions/<version>/usr.erofs         the /usr slot image        (part "usr")
//	versions/<version>/usr.verity        its veritysetup hash device (part "verity")
//	versions/<version>/vmlinuz           kernel                      (part "kernel")
//	versions/<version>/initrd.img        initrd                      (part "initrd")
//
// Channel files are not signed: they only point at a version, and what that
// version contains is checked against the signed manifest. A channel pointed
// at an older signed version is refused by the host's downgrade check.
// Rollout (optional, rollout.Rollout: start, duration, paused) spreads a
// release over time: a host takes the version once now >= start +
// wariness*duration, its wariness hashed from /etc/machine-id.
package repo
