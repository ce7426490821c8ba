// Package ignition parses Ignition configs (spec 3.0 to 3.5, through
// ignition/v2's config packages) and applies them to a booted host, all
// or nothing: pointer configs (merge, replace) are resolved, anything
// Bulkhead does not implement (disks, raid, filesystems, luks,
// kernelArguments, s3/gs/tftp sources) refuses the whole config by JSON
// path, and every resource is fetched (Fetch: Ignition's timeouts,
// retries, proxy and CAs) before the first write. Files, directories,
// links, units and passwd entries are written under a Root; useradd,
// systemctl, hostname and the reloads that make the writes take effect
// on this boot run through a run.Runner. cloudinit's provisioner calls it.
package ignition
