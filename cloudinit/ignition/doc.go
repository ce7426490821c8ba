// Package ignition parses Ignition configs (spec 3.0 to 3.5, through
// ignition/v2's config packages) and applies the parts a running host can
// take: storage files, directories and links, systemd units and drop-ins,
// passwd users and groups. Files are written under a Root, users are made
// with useradd/groupadd through a run.Runner.
package ignition
