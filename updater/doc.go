// Package updater runs an A/B update on a Bulkhead host: check a repository,
// download resumably (as a delta when the repository has chunk indexes:
// only the chunks the booted slot lacks, found through the booted version's
// indexes kept in IndexDir or published with it, see package delta; else
// the full payload), verify the signed manifest and every digest, write the
// inactive slot and verify it against its dm-verity root hash, install its
// kernel, initrd and entry on the ESP, install the version's boot chain when
// it changed (package bootchain), and put it on trial in the GRUB
// environment; and roll back by hand. hostctl and hostd call it under a root.
package updater
