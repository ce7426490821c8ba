// Package seed writes and reads cloud-init NoCloud seed images: ISO9660 with
// Rock Ridge and Joliet (volume label "cidata") or vfat (label "CIDATA"),
// holding user-data, meta-data and optionally network-config and vendor-data.
// `builder seed` writes them on the host; the NoCloud datasource reads them in
// the guest in pure Go, so no kernel iso9660 module is needed. A seed is
// hostile input: ISO9660 is read by a small bounded reader of our own (root
// directory only), vfat is checked before go-diskfs reads it, and every file
// is held to the limits in limits.go. ReadRootFile reads one named file from
// a UDF or ISO9660 root directory the same bounded way (Azure's
// provisioning DVD).
package seed
