// Package growpart grows a partition to the end of the free space after it,
// in place and while it is in use, with util-linux alone: what cloud-utils'
// growpart does for cloud-init's growpart module and for storage-setup's
// GROWPART, without the python3 that cloud-guest-utils pulls into an image.
package growpart
