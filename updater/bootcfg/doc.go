// Package bootcfg is the A/B slot state kept in the GRUB environment block on
// the ESP: which slot boots by default, which slot is on trial and how many
// tries it has left. Every change (SetNext, Bless, Rollback) is a pure
// function over State, golden-tested; grub.cfg (builder) counts the tries down.
package bootcfg
