// Package golden compares test output with files under testdata/ and
// rewrites them when tests run with -update. Only tests import it.
package golden
