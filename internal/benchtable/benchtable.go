package benchtable

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Table holds samples by row (what was measured) in the order rows were
// first added.
type Table struct {
	Unit    string // of every sample, e.g. "ms"
	order   []string
	samples map[string][]float64
}

// New returns an empty table whose samples are in unit.
func New(unit string) *Table {
	return &Table{Unit: unit, samples: map[string][]float64{}}
}

// Add records one sample of row.
func (t *Table) Add(row string, v float64) {
	if _, ok := t.samples[row]; !ok {
		t.order = append(t.order, row)
	}
	t.samples[row] = append(t.samples[row], v)
}

// Stats are one row's summary.
type Stats struct {
	N                int
	Median, Min, Max float64
}

// Stats summarises row; the zero Stats when it has no samples.
func (t *Table) Stats(row string) Stats {
	s := slices.Clone(t.samples[row])
	if len(s) == 0 {
		return Stats{}
	}
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{N: len(s), Median: med, Min: s[0], Max: s[len(s)-1]}
}

// Ratio is the ratio of two rows' medians (a/b), 0 when b has none.
func (t *Table) Ratio(a, b string) float64 {
	sb := t.Stats(b)
	if sb.Median == 0 {
		return 0
	}
	return t.Stats(a).Median / sb.Median
}

// Write prints the table: a row per measurement with its run count,
// median, min and max.
func (t *Table) Write(w io.Writer) {
	width := len("measurement")
	for _, r := range t.order {
		width = max(width, len(r))
	}
	head := fmt.Sprintf("%-*s %4s %10s %10s %10s", width, "measurement", "runs", "median", "min", "max")
	fmt.Fprintf(w, "%s\n%s\n", head, strings.Repeat("-", len(head)))
	for _, r := range t.order {
		s := t.Stats(r)
		fmt.Fprintf(w, "%-*s %4d %10.1f %10.1f %10.1f  %s\n", width, r, s.N, s.Median, s.Min, s.Max, t.Unit)
	}
}
