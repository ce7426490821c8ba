// Package cloudinit is Bulkhead's first-boot provisioning: it finds the
// datasource (package datasource), parses user-data (cloudconfig, ignition)
// and applies the modules to a Root, per instance or per boot, recording
// what ran and how long it took under /var/lib/bulkhead/provision.
// `hostctl provision` runs it from bulkhead-provision.service.
package cloudinit
