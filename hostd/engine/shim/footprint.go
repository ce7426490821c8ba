package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// shedStartup gives back what starting the container took, before the
// shim idles for the container's whole life (one shim per container, so
// its footprint counts): the heap the runtime used, and this process's
// mappings of the program's read-only pages. Starting a container runs
// much of the runtime's code once; those pages stay in the page cache,
// shared by every shim, but each shim would count them in its RSS until
// it exits. Unmapping them loses nothing (a read-only page of a file is
// mapped again from the page cache on its next use) and leaves mapped
// what the idle shim touches again: its wait, its log copies.
func shedStartup() {
	debug.FreeOSMemory()
	_ = dropProgramPages()
}

// dropProgramPages unmaps (MADV_DONTNEED) this program's read-only
// mappings, text and read-only data, from this process. Writable
// mappings are left alone: a private page written to would be lost.
func dropProgramPages() error {
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return fmt.Errorf("stat of /proc/self/exe: %w", err)
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		start, end, ok := programMapping(sc.Text(), exe.Ino)
		if !ok {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %x-%x: %w", start, end, errno)
		}
	}
	return sc.Err()
}

// programMapping reads one /proc/self/maps line and reports the range of
// a read-only mapping of the file with inode ino.
func programMapping(line string, ino uint64) (start, end uintptr, ok bool) {
	f := strings.Fields(line) // range perms offset dev inode [path]
	if len(f) < 6 || strings.Contains(f[1], "w") {
		return 0, 0, false
	}
	if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
		return 0, 0, false
	}
	lo, hi, found := strings.Cut(f[0], "-")
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if !found || err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
