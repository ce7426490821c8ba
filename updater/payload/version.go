package payload

import (
	"errors"
	"strconv"
	"strings"
)

// CheckVersion accepts versions made of dot-separated fields of letters,
// digits, '-', '+' and '~' (1.2.0, 2026.11.23, 1.3.0-rc1): they become
// directory names in the repository, so no '/' and no leading dot.
func CheckVersion(v string) error {
	if v == "" {
		return errors.New("empty version")
	}
	if v[0] == '.' || len(v) > 64 {
		return errors.New("version must not start with '.' and is at most 64 bytes")
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune(".-+~_", c)) {
			return errors.New("version may hold only letters, digits and . - + ~ _")
		}
	}
	return nil
}

// CompareVersions orders versions: the part before the first '-' is split on
// '.', numeric fields compare as numbers, others as strings, a missing field
// is lower; a version with a pre-release suffix (-rc1) comes before the same
// version without one (semver's rule). Build metadata after '+' is ignored.
func CompareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	ac, apre, _ := strings.Cut(a, "-")
	bc, bpre, _ := strings.Cut(b, "-")
	if c := compareFields(strings.Split(ac, "."), strings.Split(bc, ".")); c != 0 {
		return c
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	return compareFields(strings.Split(apre, "."), strings.Split(bpre, "."))
}

func compareFields(a, b []string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		if i >= len(a) {
			return -1
		}
		if i >= len(b) {
			return 1
		}
		an, aerr := strconv.ParseUint(a[i], 10, 64)
		bn, berr := strconv.ParseUint(b[i], 10, 64)
		switch {
		case aerr == nil && berr == nil:
			if an != bn {
				if an < bn {
					return -1
				}
				return 1
			}
		case aerr == nil: // numbers before words, as in semver
			return -1
		case berr == nil:
			return 1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return 0
}
