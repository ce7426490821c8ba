// Package diskfmt converts a build's disk.raw into the formats clouds and
// hypervisors import: a stream-optimized VMDK and an OVA (vSphere,
// VirtualBox), a fixed VHD (Azure), a GCE image tarball and a Vagrant box
// for libvirt. `builder convert` calls it; it writes the new files beside
// disk.raw in out/<name>/ and records them in manifest.json.
package diskfmt
