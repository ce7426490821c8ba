package benchtable

import (
	"strings"
	"testing"
)

func TestStatsAndWrite(t *testing.T) {
	tb := New("ms")
	for _, v := range []float64{30, 10, 20} {
		tb.Add("ours", v)
	}
	for _, v := range []float64{100, 80, 90, 120} {
		tb.Add("theirs", v)
	}
	if got, want := tb.Stats("ours"), (Stats{N: 3, Median: 20, Min: 10, Max: 30}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, want := tb.Stats("theirs"), (Stats{N: 4, Median: 95, Min: 80, Max: 120}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := tb.Ratio("theirs", "ours"); got != 4.75 {
		t.Errorf("ratio %v, want 4.75", got)
	}
	var b strings.Builder
	tb.Write(&b)
	want := "measurement runs     median        min        max\n" +
		"-------------------------------------------------\n" +
		"ours           3       20.0       10.0       30.0  ms\n" +
		"theirs         4       95.0       80.0      120.0  ms\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
