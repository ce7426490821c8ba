package ami

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// bar is a progress bar on its own line, redrawn at most once a second
// (with \r, so a terminal shows one line) and once at the end.
type bar struct {
	w                  io.Writer
	mu                 sync.Mutex
	done, total, bytes int64
	start, last        time.Time
}

func newBar(w io.Writer, total int64) *bar {
	return &bar{w: w, total: total, start: time.Now()}
}

func (b *bar) grow(n int64) {
	b.mu.Lock()
	b.total += n
	b.mu.Unlock()
}

func (b *bar) add(n, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.bytes += bytes
	if time.Since(b.last) >= time.Second {
		b.last = time.Now()
		b.draw()
	}
}

func (b *bar) draw() {
	if b.w == nil {
		return
	}
	const width = 30
	filled := 0
	if b.total > 0 {
		filled = int(b.done * width / b.total)
	}
	secs := max(time.Since(b.start).Seconds(), 0.001)
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d blocks, %d MiB, %.1f MiB/s", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		b.done, b.total, b.bytes>>20, float64(b.bytes)/(1<<20)/secs)
}

func (b *bar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w != nil && b.total > 0 {
		b.draw()
		fmt.Fprintln(b.w)
	}
}
