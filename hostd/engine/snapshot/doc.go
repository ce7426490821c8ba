// Package snapshot gives each container its own writable root filesystem:
// an overlayfs mount of the image's unpacked layers (read-only lowers) with
// an upper and work directory per container under <root>/<id>/.
package snapshot
