// Package datasource finds where a host's provisioning data comes from, in
// order: NoCloud (a cidata seed device, or ds=nocloud on the kernel command
// line or SMBIOS serial), EC2 (IMDSv2, probed only on EC2 hardware), and
// Ignition (ignition.config.url= on the kernel command line, then QEMU
// fw_cfg). It reads devices and /sys under a Root and never mounts
// anything; network bodies and seed files are held to seed's size limits.
package datasource
