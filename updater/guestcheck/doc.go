// Package guestcheck is the in-guest half of the QEMU update tests: upgrade,
// rollback, failed trial, tampered payload and power-cut checks written
// against a small Guest interface (run a shell command, wait for the next
// boot) that the QEMU harness in qemu-tests/ implements over the serial
// console. It runs hostctl in the guest and touches nothing on the host.
package guestcheck
