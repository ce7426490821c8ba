// Package etcmerge merges /etc three ways at boot: base is the factory tree of
// the last merged version (/var/lib/bulkhead/updater/factory-etc), new is the
// booted version's /usr/share/factory/etc, local is /etc. Untouched files
// follow the new defaults, changed files are kept, conflicts are recorded in
// /var/lib/bulkhead/updater/etc-conflicts.json. bulkhead-etc-merge.service runs it.
package etcmerge
