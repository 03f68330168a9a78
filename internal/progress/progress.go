// Package progress draws one live status line on a terminal, for the long
// work of wisp's commands (import, export, sync, mirror) and of its load
// tool. It prints nothing unless it writes to a terminal.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// every is how often the line is redrawn, and how often Update formats.
const every = 250 * time.Millisecond

// Line is one status line, redrawn in place until Stop.
type Line struct {
	w     io.Writer // nil: not a terminal, draw nothing
	start time.Time

	mu   sync.Mutex
	text string        // the latest Update
	fn   func() string // or what Show asked to call
	last time.Time     // of the latest Update that formatted
	quit chan struct{}
	done chan struct{}
}

// New returns a line drawn on w when w is a terminal, else a line that
// draws nothing (logs and pipes stay clean).
func New(w io.Writer) *Line {
	l := &Line{start: time.Now()}
	if !IsTerminal(w) {
		return l
	}
	l.w, l.quit, l.done = w, make(chan struct{}), make(chan struct{})
	go l.redraw()
	return l
}

// IsTerminal reports whether w is a terminal (a character device such as
// /dev/null is not).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (l *Line) redraw() {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	drawn := false
	for {
		select {
		case <-l.quit:
			if drawn {
				fmt.Fprint(l.w, "\r\x1b[K")
			}
			return
		case <-t.C:
			l.mu.Lock()
			text, fn := l.text, l.fn
			l.mu.Unlock()
			if fn != nil {
				text = fn()
			}
			if text != "" {
				fmt.Fprint(l.w, "\r\x1b[K"+text)
				drawn = true
			}
		}
	}
}

// Update sets the line's text; it formats at most four times a second, so
// it may be called for every item of a long run.
func (l *Line) Update(format string, args ...any) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= every {
		l.last = now
		l.text, l.fn = fmt.Sprintf(format, args...), nil
	}
}

// Show has the line draw what fn returns, called on every redraw.
func (l *Line) Show(fn func() string) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	l.fn = fn
	l.mu.Unlock()
}

// Elapsed is the time since New.
func (l *Line) Elapsed() time.Duration { return time.Since(l.start) }

// Stop clears the line and stops drawing it.
func (l *Line) Stop() {
	if l.w == nil {
		return
	}
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
}

// Rate is n per second of d.
func Rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
