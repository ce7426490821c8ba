// Package units writes systemd units and drop-ins under a Root's
// /etc/systemd/system and enables, masks and starts them with systemctl
// through a run.Runner. coreos.units and Ignition's systemd section use it.
package units
