// Package qemutests boots built Bulkhead images under QEMU (SeaBIOS, OVMF,
// OVMF with Secure Boot; KVM when it works, else TCG) on a throwaway qcow2
// overlay, reads the serial console and runs commands in the guest through
// the QEMU guest agent. TestVagrantUp instead drives Debian's vagrant and
// vagrant-libvirt against a libvirtd the test starts in network and mount
// namespaces of its own. It writes only in test temp directories.
package qemutests
