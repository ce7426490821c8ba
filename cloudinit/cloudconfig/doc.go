// Package cloudconfig parses cloud-init user-data (#cloud-config, #! scripts,
// cloud-boothooks, MIME multipart, gzip), meta-data and network-config into
// typed values, reporting every problem with its key path. It touches nothing
// on disk; package cloudinit applies the result to a root.
package cloudconfig
