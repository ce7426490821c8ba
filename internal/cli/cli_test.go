package cli

import (
	"errors"
	"io"
	"testing"

	"github.com/spf13/cobra"
)

type codeErr int

func (c codeErr) Error() string { return "exit" }
func (c codeErr) ExitCode() int { return int(c) }

func TestExitCodes(t *testing.T) {
	root := &cobra.Command{Use: "x", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(&cobra.Command{Use: "one", Args: cobra.ExactArgs(1), RunE: func(*cobra.Command, []string) error { return nil }})
	root.AddCommand(&cobra.Command{Use: "fail", RunE: func(*cobra.Command, []string) error { return errors.New("boom") }})
	root.AddCommand(&cobra.Command{Use: "code", RunE: func(*cobra.Command, []string) error { return codeErr(7) }})
	MarkUsageErrors(root)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"one", "a"}, 0},
		{[]string{"one"}, 2},
		{[]string{"one", "--bogus"}, 2},
		{[]string{"nope"}, 2},
		{[]string{"fail"}, 1},
		{[]string{"code"}, 7},
	}
	for _, c := range cases {
		root.SetArgs(c.args)
		if got := ExitCode(root.Execute()); got != c.want {
			t.Errorf("%v: got exit %d, want %d", c.args, got, c.want)
		}
	}
}
