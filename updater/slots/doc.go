// Package slots is the host's view of its two /usr slots: which one booted
// (bulkhead.slot= on the kernel command line), what version each holds (the
// release file in its ESP directory), the GRUB boot selection, and Bless.
// It reads and writes under a root: the ESP (/efi) and /var/lib/bulkhead/updater.
package slots
