package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// timeline prints the scenario's events, one line each, prefixed with the
// time since the start and the node concerned:
//
//	3.412s  node2  BACKUP → MASTER (master timed out)
//
// Events come from several goroutines (every group delivers its transitions
// on its own), so printing is serialised. A progress bar stays at the bottom
// of a terminal, redrawn in place, with events printed above it (see
// progressBar).
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	tty   bool

	bar string // the progress line being redrawn at the bottom (terminal only), "" if none
}

func newTimeline(w io.Writer) *timeline {
	return &timeline{w: w, start: time.Now(), tty: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// since returns how long after the start t is.
func (tl *timeline) since(t time.Time) time.Duration { return t.Sub(tl.start) }

// printAt prints one event of node who that happened at t, which may be
// slightly in the past (transitions are delivered after the protocol loop
// made them).
func (tl *timeline) printAt(t time.Time, who, format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.above(fmt.Sprintf("%8s  %-6s %s", seconds(tl.since(t)), who, fmt.Sprintf(format, args...)))
}

// note prints a line without a time, for the header and the summary.
func (tl *timeline) note(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.above(fmt.Sprintf(format, args...))
}

// above prints line, above the progress bar being redrawn if there is one.
func (tl *timeline) above(line string) {
	if tl.bar == "" {
		fmt.Fprintln(tl.w, line)
		return
	}
	fmt.Fprintf(tl.w, "\r\x1b[K%s\n%s", line, tl.bar)
}

// progressBar is one progress bar on the timeline, for one node's bulk
// sync. On a terminal it is redrawn in place at every percent; otherwise it
// is printed when it crosses a quarter, so that logs and tests read cleanly.
type progressBar struct {
	tl        *timeline
	who, what string
	total     int
	last      int // last percentage shown, -1 before the first
}

func (tl *timeline) newBar(who, what string, total int) *progressBar {
	return &progressBar{tl: tl, who: who, what: what, total: max(total, 1), last: -1}
}

// set shows that done of total are done. Progress never goes backwards.
func (b *progressBar) set(done int) {
	pct := min(done*100/b.total, 100)
	tl := b.tl
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if pct <= b.last || !tl.tty && b.last >= 0 && pct/25 == b.last/25 {
		return
	}
	b.last = pct
	line := fmt.Sprintf("%8s  %-6s %s %s %3d%% %d/%d", seconds(tl.since(time.Now())), b.who, b.what, bar(pct, 30), pct, done, b.total)
	if !tl.tty {
		fmt.Fprintln(tl.w, line)
		return
	}
	fmt.Fprintf(tl.w, "\r\x1b[K%s", line)
	tl.bar = line
	if pct == 100 {
		fmt.Fprintln(tl.w)
		tl.bar = ""
	}
}

func bar(pct, width int) string {
	n := pct * width / 100
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "]"
}

// seconds formats d as seconds with millisecond precision, "3.391s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3fs", d.Seconds())
}
