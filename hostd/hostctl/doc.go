// Package hostctl is the `hostctl` command line on a Bulkhead host: one cobra
// verb per file. Most verbs talk to hostd over /run/hostd.sock; the rescue
// verbs (status, rollback) also work on the files directly when hostd is down.
package hostctl
