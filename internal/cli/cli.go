package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// UsageError is a command line that does not parse: main exits 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// CodeError carries an exit code to main (a container's or a command's).
type CodeError interface {
	error
	ExitCode() int
}

// MarkUsageErrors wraps flag and argument errors of every command in the
// tree in UsageError.
func MarkUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if a := c.Args; a != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := a(cmd, args); err != nil {
					return UsageError{err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// ExitCode is the process exit code for err: 0, 2 for usage errors
// (including cobra's unknown commands), a CodeError's own code, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue UsageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	var ce CodeError
	if errors.As(err, &ce) {
		return ce.ExitCode()
	}
	return 1
}
