// Package delta applies content-defined chunk deltas of update images in
// casync's format (package casync): a host plans an image from its index
// and seeds (the booted slot's verity device, its boot files), each located
// through the seed's own index, the one the repository published with the
// booted version; it fetches only the chunks no seed or earlier download
// holds, each checked against its id, and assembles the image straight
// into its destination, checking every chunk again as it is written. It
// links no chunker: indexes and stores are made by package delta/chunker
// at publish time.
package delta
