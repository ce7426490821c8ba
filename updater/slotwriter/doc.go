// Package slotwriter streams a downloaded /usr image and its verity hash
// device into the inactive slot's partitions (usr-<slot>, usr-<slot>-verity),
// syncs, drops the written range from the page cache and reads it back to
// verify it against the manifest's dm-verity root hash and sha256 digests.
// The updater calls it; it opens only the two device paths it is given.
package slotwriter
