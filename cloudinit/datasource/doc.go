// Package datasource finds where a host's provisioning data comes from, in
// order: NoCloud (cidata seed, ds=nocloud), then each on its own hardware EC2
// (IMDSv2), GCE (the metadata server) and Azure (ovf-env.xml from the DVD,
// IMDS; Data.ReportReady tells the wireserver), then Ignition
// (ignition.config.url=, QEMU fw_cfg). It reads devices and /sys under a
// Root, never mounts, holds bodies to seed's limits, and keeps Azure's
// ovf-env.xml (password redacted) in /var/lib/waagent under the Root.
package datasource
