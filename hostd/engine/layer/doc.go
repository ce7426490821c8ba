// Package layer unpacks OCI/Docker image layer tarballs into a directory
// that overlayfs can use as a lower layer: whiteouts become 0/0 character
// devices and opaque directories get trusted.overlay.opaque. Called by the
// image store; it writes only inside the directory it is given.
package layer
