// Package hostd is the host daemon: a JSON API on a root-only unix socket
// (/run/hostd.sock), the boot health gate, and the home of the embedded
// container engine (hostd/engine). It runs as a Type=notify systemd service;
// cmd/hostd runs NewRootCmd. It reads the slot state under its root.
package hostd
