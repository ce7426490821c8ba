package storagesetup

import (
	"fmt"
	"math/bits"
	"regexp"
	"strconv"
	"strings"
)

// Size rules of the original (libcss.sh check_numeric_size_syntax and
// container-storage-setup.sh convert_size_in_bytes): digits alone are MiB;
// digits followed by one of bBsSkKmMgGtTpPeE, optionally followed by b/B or
// by i and b/B ("2G", "2GB", "2GiB"). Upper and lower case mean the same
// binary unit; s is a 512-byte sector, b a byte.
var numericSize = regexp.MustCompile(`^([0-9]+)(?:([bB])|([sSkKmMgGtTpPeE])(?:[bB]|i[bB])?)?$`)

// percentSize is the "lvcreate -l" subset the original accepts
// (check_data_size_syntax): N%FREE or N%VG.
var percentSize = regexp.MustCompile(`^([0-9]+)%(FREE|VG)$`)

var unitShift = map[byte]uint{'s': 9, 'k': 10, 'm': 20, 'g': 30, 't': 40, 'p': 50, 'e': 60}

// parseBytes converts a size with the original's suffix rules to bytes.
func parseBytes(s string) (uint64, error) {
	m := numericSize.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (digits with an optional unit b, s, k, m, g, t, p or e; no unit means MiB)", s)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large to handle", s)
	}
	shift := uint(20) // no suffix: MiB, as the original says
	switch {
	case m[2] != "":
		shift = 0
	case m[3] != "":
		shift = unitShift[strings.ToLower(m[3])[0]]
	}
	// The original overflowed silently in bash arithmetic and then checked for
	// a negative number ("... is too large to handle"); refuse before that.
	if n != 0 && bits.LeadingZeros64(n) < int(shift)+1 {
		return 0, fmt.Errorf("%q is too large to handle", s)
	}
	return n << shift, nil
}

// dataSize is a DATA_SIZE-style value: an absolute size or N%FREE / N%VG.
type dataSize struct {
	raw     string
	percent int    // 0 when absolute
	of      string // "FREE" or "VG" when percent
	bytes   uint64 // when absolute
}

func parseDataSize(s string) (dataSize, error) {
	if m := percentSize.FindStringSubmatch(s); m != nil {
		p, err := strconv.Atoi(m[1])
		if err != nil || p < 1 || p > 100 {
			return dataSize{}, fmt.Errorf("%q: the percentage must be between 1 and 100", s)
		}
		return dataSize{raw: s, percent: p, of: m[2]}, nil
	}
	if strings.Contains(s, "%") {
		return dataSize{}, fmt.Errorf("%q: only N%%FREE and N%%VG are accepted as percentages", s)
	}
	b, err := parseBytes(s)
	if err != nil {
		return dataSize{}, err
	}
	return dataSize{raw: s, bytes: b}, nil
}

// resolve returns the size in bytes given the VG's size and free space,
// as data_size_in_bytes in the original does.
func (d dataSize) resolve(vgSize, vgFree uint64) uint64 {
	if d.percent == 0 {
		return d.bytes
	}
	base := vgFree
	if d.of == "VG" {
		base = vgSize
	}
	hi, lo := bits.Mul64(base, uint64(d.percent))
	q, _ := bits.Div64(hi, lo, 100)
	return q
}

// lvmArgs renders the size for lvcreate: -l for percentages (passed through
// as the original does), -L otherwise with a unit LVM reads the same way.
func (d dataSize) lvmArgs() []string {
	if d.percent != 0 {
		return []string{"-l", d.raw}
	}
	return []string{"-L", lvmSize(d.bytes)}
}

// lvmSize renders bytes with the largest binary unit that divides them, so
// LVM (whose own suffix parsing differs from the original's, e.g. for "GiB")
// sees an exact value: 2147483648 -> "2g".
func lvmSize(b uint64) string {
	units := []struct {
		suffix string
		shift  uint
	}{{"e", 60}, {"p", 50}, {"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}, {"s", 9}}
	for _, u := range units {
		if b != 0 && b%(1<<u.shift) == 0 {
			return strconv.FormatUint(b>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(b, 10) + "b"
}
