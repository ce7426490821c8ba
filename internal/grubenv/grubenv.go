package grubenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Header starts every environment block (grub-core/lib/envblk.h).
const Header = "# GRUB Environment Block\n"

// Size is the size of the block grub-editenv creates and GRUB expects.
const Size = 1024

// ErrMalformed means the bytes are not a GRUB environment block.
var ErrMalformed = errors.New("malformed GRUB environment block")

// Env is the set of variables in a block. Encode writes them sorted by name,
// so the same variables always give the same bytes.
type Env map[string]string

// Parse decodes a block. It accepts any size, as GRUB does, but requires the
// header; escaped backslashes and newlines are unescaped.
func Parse(b []byte) (Env, error) {
	if !bytes.HasPrefix(b, []byte(Header)) {
		return nil, fmt.Errorf("%w: missing header", ErrMalformed)
	}
	env := Env{}
	rest := b[len(Header):]
	for len(rest) > 0 {
		if rest[0] == '#' { // padding, or a comment line GRUB skips
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			continue
		}
		// Read up to an unescaped newline.
		var line []byte
		i := 0
		for ; i < len(rest); i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				line = append(line, rest[i+1])
				i++
				continue
			}
			if rest[i] == '\n' {
				break
			}
			line = append(line, rest[i])
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("%w: unterminated line %q", ErrMalformed, line)
		}
		rest = rest[i+1:]
		name, value, ok := strings.Cut(string(line), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: line %q has no name=value", ErrMalformed, line)
		}
		env[name] = value
	}
	return env, nil
}

// Encode renders env as a block of exactly size bytes.
func Encode(env Env, size int) ([]byte, error) {
	body, err := encodeBody(env)
	if err != nil {
		return nil, err
	}
	return pad(body, size)
}

// pad fills an encoded body with '#' up to size bytes.
func pad(body []byte, size int) ([]byte, error) {
	if len(body) > size {
		return nil, fmt.Errorf("encoding GRUB environment: %d bytes do not fit in %d", len(body), size)
	}
	return append(body, bytes.Repeat([]byte{'#'}, size-len(body))...), nil
}

// encodeBody renders the header and the variables, without padding.
func encodeBody(env Env) ([]byte, error) {
	names := make([]string, 0, len(env))
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\n\\#") {
			return nil, fmt.Errorf("encoding GRUB environment: bad variable name %q", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(Header)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		for _, c := range []byte(env[k]) {
			if c == '\\' || c == '\n' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Read parses the block in the file at path.
func Read(path string) (Env, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading GRUB environment %s: %w", path, err)
	}
	env, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("reading GRUB environment %s: %w", path, err)
	}
	return env, nil
}

// WriteInPlace overwrites the existing block at path without truncating or
// reallocating it, then syncs. GRUB's save_env writes through the file's block
// list, so the file must keep its blocks; and the variables are kept in the
// first 512-byte sector so that a power cut cannot tear them across sectors.
func WriteInPlace(path string, env Env) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	if st.Size() < 512 {
		return fmt.Errorf("writing GRUB environment %s: file is %d bytes, want %d", path, st.Size(), Size)
	}
	body, err := encodeBody(env)
	if err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	if len(body) > 512 {
		return fmt.Errorf("writing GRUB environment %s: variables take %d bytes, more than one sector", path, len(body))
	}
	b, err := pad(body, int(st.Size()))
	if err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", path, err)
	}
	return nil
}

// Create writes a new block of Size bytes (used when building an image).
func Create(path string, env Env) error {
	b, err := Encode(env, Size)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("creating GRUB environment %s: %w", path, err)
	}
	return nil
}
