package storagesetup

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSysconfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []assignment
	}{
		{"plain", "VG=docker-vg\n", []assignment{{"VG", "docker-vg", 1}}},
		{"comments and blanks", "# c\n\n  # indented\nVG=a # trailing\n", []assignment{{"VG", "a", 4}}},
		{"hash inside a word", "X=a#b\n", []assignment{{"X", "a#b", 1}}},
		{"double quotes", `DEVS="/dev/vdb /dev/vdc"`, []assignment{{"DEVS", "/dev/vdb /dev/vdc", 1}}},
		{"single quotes literal", `X='a "b" \n'`, []assignment{{"X", `a "b" \n`, 1}}},
		{"escapes in double quotes", `X="a\"b\\c\$d\e"`, []assignment{{"X", `a"b\c$d\e`, 1}}},
		{"unquoted escapes", `X=a\ b`, []assignment{{"X", "a b", 1}}},
		{"concatenation", `X=a"b c"'d'`, []assignment{{"X", "ab cd", 1}}},
		{"multi-line quote", "DEVS=\"/dev/vdb\n/dev/vdc\"\nVG=v\n", []assignment{{"DEVS", "/dev/vdb\n/dev/vdc", 1}, {"VG", "v", 3}}},
		{"continuation", "X=\"a\\\nb\"\n", []assignment{{"X", "ab", 1}}},
		{"export", "export  VG=v\n", []assignment{{"VG", "v", 1}}},
		{"empty value", "VG=\nX=''\n", []assignment{{"VG", "", 1}, {"X", "", 2}}},
		{"crlf", "VG=v\r\nX=y\r\n", []assignment{{"VG", "v", 1}, {"X", "y", 2}}},
		{"no final newline", "VG=v", []assignment{{"VG", "v", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSysconfig(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %+v, want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseSysconfigRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"command substitution", "DEVS=$(ls /dev)\n", "line 1: DEVS: variable expansion and command substitution"},
		{"backticks", "DEVS=\"`ls`\"\n", "line 1: DEVS: variable expansion"},
		{"variable", "VG=$HOST\n", "line 1: VG: variable expansion"},
		{"command after", "VG=a; rm -rf /\n", `line 1: VG: ';': only KEY=value lines are read`},
		{"two words", "VG=a b\n", "line 1: VG: only one KEY=value per line"},
		{"spaces around =", "VG = a\n", "line 1: VG: not a KEY=value assignment"},
		{"bare command", "docker-storage-setup\n", "line 1: docker: not a KEY=value assignment"},
		{"unterminated", "X=\"abc\n", "line 1: X: unterminated double quote"},
		{"unterminated single", "X='abc\n", "line 1: X: unterminated single quote"},
		{"source", ". /etc/other\n", "line 1: not a KEY=value assignment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSysconfig(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Every bad line is reported, and the good ones are still read.
	got, err := parseSysconfig("A=$x\nB=ok\nC=`y`\n")
	if err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("got %v, want lines 1 and 3 reported", err)
	}
	if len(got) != 1 || got[0].Key != "B" {
		t.Errorf("got %+v, want B kept", got)
	}
}

// FuzzParseSysconfig: any input gives assignments or errors, never a panic;
// keys are shell names and line numbers stay within the input.
func FuzzParseSysconfig(f *testing.F) {
	for _, s := range []string{
		"VG=docker-vg\n", "DEVS=\"/dev/vdb\n/dev/vdc\"\n", "X='a'\"b\"c\\ d # c\n", "export A=1\n",
		"A=$(x)\n", "A=\"\\\n\"", "# only a comment", "=\n", "A='", "A=\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		as, _ := parseSysconfig(in)
		lines := strings.Count(in, "\n") + 1
		for _, a := range as {
			if a.Key == "" || !isNameStart(a.Key[0]) {
				t.Errorf("bad key %q", a.Key)
			}
			if a.Line < 1 || a.Line > lines {
				t.Errorf("line %d outside 1..%d", a.Line, lines)
			}
			if utf8.ValidString(in) && !utf8.ValidString(a.Value) {
				t.Errorf("value %q is not valid UTF-8 from valid input", a.Value)
			}
		}
	})
}
