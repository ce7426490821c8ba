package image

// DirSize is the bytes of the regular files under dir (an unpacked layer,
// a container's writable layer), for `docker ps -s` and `system df`.
func DirSize(dir string) int64 { return dirSize(dir) }
