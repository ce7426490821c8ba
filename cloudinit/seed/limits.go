package seed

import (
	"errors"
	"fmt"
	"io"
)

// Size limits of the files a NoCloud seed holds, wherever they are read
// from (a seed device, a directory, ds=nocloud;s=http://...). cloud-init
// sets none for NoCloud; EC2 caps user-data at 16 KiB. We allow 16 MiB of
// user-data and vendor-data (a gzipped multipart with scripts fits many
// times over) and 1 MiB of meta-data and network-config (a few lines of
// YAML), so a hostile seed cannot exhaust a small VM's memory. A file over
// its limit is an error, never a truncation.
const (
	MaxUserData      = 16 << 20
	MaxVendorData    = 16 << 20
	MaxMetaData      = 1 << 20
	MaxNetworkConfig = 1 << 20
)

// ErrTooLarge is a file or body over its size limit.
var ErrTooLarge = errors.New("over the size limit")

// MaxSize is the size limit of the seed file name (meta-data, user-data,
// vendor-data, network-config); other names get the user-data limit.
func MaxSize(name string) int64 {
	switch name {
	case "meta-data":
		return MaxMetaData
	case "network-config":
		return MaxNetworkConfig
	case "vendor-data":
		return MaxVendorData
	}
	return MaxUserData
}

// ReadLimited reads r to its end, or fails with ErrTooLarge as soon as more
// than limit bytes arrive (only limit+1 bytes are ever buffered).
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
	}
	return data, nil
}
