// Package verity computes and checks dm-verity hash trees in pure Go, byte for
// byte what `veritysetup format --data-block-size=4096 --hash-block-size=4096`
// writes (format version 1, sha256, superblock at offset 0 of the hash device).
// The updater uses it to verify a written slot against the manifest's root hash;
// it works on any io.Reader/io.ReaderAt and touches nothing by itself.
package verity
