package storagesetup

import (
	"errors"
	"fmt"
	"strings"
)

// assignment is one KEY=value line of a sysconfig file.
type assignment struct {
	Key   string
	Value string
	Line  int
}

// parseSysconfig reads a shell-style KEY=value file such as
// /etc/sysconfig/docker-storage-setup. The original sourced that file with
// bash; Bulkhead runs no shell, so this accepts the subset such files use:
// comments, blank lines, an optional "export", single quotes (literal),
// double quotes (backslash escapes \" \\ \$ \` and line continuation),
// backslash escapes outside quotes, quoted values that span lines and
// concatenated parts (a"b"'c'). Variable expansion, command substitution and
// anything that would run a command is refused with its line number, never
// guessed at. All problems are reported, not just the first.
func parseSysconfig(data string) ([]assignment, error) {
	p := &scanner{src: data, line: 1}
	var out []assignment
	var errs []error
	for !p.eof() {
		start := p.line
		a, err := p.statement()
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", start, err))
			p.skipLine()
			continue
		}
		if a != nil {
			a.Line = start
			out = append(out, *a)
		}
	}
	return out, errors.Join(errs...)
}

type scanner struct {
	src  string
	pos  int
	line int
}

func (p *scanner) eof() bool { return p.pos >= len(p.src) }

func (p *scanner) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

func (p *scanner) next() byte {
	c := p.src[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

// skipLine moves past the rest of the current physical line after an error.
func (p *scanner) skipLine() {
	for !p.eof() {
		if p.next() == '\n' {
			return
		}
	}
}

func (p *scanner) skipBlanks() {
	for c := p.peek(); c == ' ' || c == '\t' || c == '\r'; c = p.peek() {
		p.pos++
	}
}

// endOfStatement accepts blanks, an optional comment and the newline.
func (p *scanner) endOfStatement() error {
	p.skipBlanks()
	if p.eof() {
		return nil
	}
	switch c := p.peek(); {
	case c == '\n':
		p.next()
		return nil
	case c == '#':
		p.skipLine()
		return nil
	case c == ';' || c == '&' || c == '|':
		return fmt.Errorf("%q: only KEY=value lines are read, commands are not run", c)
	default:
		return errors.New("only one KEY=value per line is read, commands are not run")
	}
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

// statement parses one line; it returns nil for blank and comment lines.
func (p *scanner) statement() (*assignment, error) {
	p.skipBlanks()
	if c := p.peek(); p.eof() || c == '\n' || c == '#' {
		return nil, p.endOfStatement()
	}
	name := p.word()
	if name == "export" && (p.peek() == ' ' || p.peek() == '\t') {
		p.skipBlanks()
		name = p.word()
	}
	if name == "" || !isNameStart(name[0]) {
		return nil, errors.New("not a KEY=value assignment")
	}
	if p.peek() != '=' {
		return nil, fmt.Errorf("%s: not a KEY=value assignment (no spaces around '=')", name)
	}
	p.next()
	val, err := p.value()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := p.endOfStatement(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &assignment{Key: name, Value: val}, nil
}

func (p *scanner) word() string {
	start := p.pos
	for isNameChar(p.peek()) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// value reads the shell word after '=' up to unquoted whitespace.
func (p *scanner) value() (string, error) {
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return b.String(), nil
		case c == '\'':
			p.next()
			if err := p.singleQuoted(&b); err != nil {
				return "", err
			}
		case c == '"':
			p.next()
			if err := p.doubleQuoted(&b); err != nil {
				return "", err
			}
		case c == '\\':
			p.next()
			if p.eof() {
				return b.String(), nil
			}
			if e := p.next(); e != '\n' { // backslash-newline continues the line
				b.WriteByte(e)
			}
		case c == '$' || c == '`':
			return "", errors.New("variable expansion and command substitution are not supported; write the value out")
		case strings.IndexByte(";&|<>()", c) >= 0:
			return "", fmt.Errorf("%q: only KEY=value lines are read, commands are not run", c)
		default:
			b.WriteByte(p.next())
		}
	}
	return b.String(), nil
}

func (p *scanner) singleQuoted(b *strings.Builder) error {
	for !p.eof() {
		c := p.next()
		if c == '\'' {
			return nil
		}
		b.WriteByte(c)
	}
	return errors.New("unterminated single quote")
}

func (p *scanner) doubleQuoted(b *strings.Builder) error {
	for !p.eof() {
		c := p.next()
		switch c {
		case '"':
			return nil
		case '$', '`':
			return errors.New("variable expansion and command substitution are not supported; write the value out")
		case '\\':
			if p.eof() {
				return errors.New("unterminated double quote")
			}
			e := p.next()
			switch e {
			case '\n':
			case '"', '\\', '$', '`':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return errors.New("unterminated double quote")
}
