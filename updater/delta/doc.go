// Package delta makes and applies content-defined chunk deltas of update
// images in casync's format (an index, .caibx, listing the image's chunks
// by SHA-512/256; a store of zstd-compressed chunks, <4 hex>/<id>.cacnk),
// through github.com/folbricht/desync. Publish chunks each image into the
// repository's shared store and writes its index; a host plans an image from
// its index and seeds (the booted slot's verity device, its boot files),
// fetches only the chunks no seed or earlier download holds, each checked
// against its id, and assembles the image straight into its destination,
// checking every chunk again as it is written.
package delta
