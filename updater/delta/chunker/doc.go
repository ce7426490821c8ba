// Package chunker is the publishing side of delta updates: it cuts a file
// into content-defined chunks with github.com/folbricht/desync, renders the
// casync index (.caibx) and adds the chunks, zstd-compressed, to a local
// chunk store. Only the builder (`builder publish`) and tests import it:
// desync links its S3, GCS and SFTP stores, which hostd and hostctl must
// not carry (cmd/hostd's deps test checks). Hosts read indexes and stores
// with packages casync and delta.
package chunker
