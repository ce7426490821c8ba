// Package accounts creates users and groups with the shadow tools
// (useradd, usermod, groupadd, gpasswd, chpasswd) through a run.Runner and
// writes their SSH authorized_keys under a Root. Both cloud-config's users
// module and Ignition's passwd section use it.
package accounts
