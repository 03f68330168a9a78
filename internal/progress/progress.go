// Package progress draws one live status line on a terminal, for the long
// work of wisp's commands (import, export, sync, mirror, backup) and of its
// load tool: the rate always, and how far and how long to go (Of) where
// the total is known. It prints nothing unless it writes to a terminal.
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
	kick chan struct{} // draw now: the first Update, not a tick later
}

// New returns a line drawn on w when w is a terminal, else a line that
// draws nothing (logs and pipes stay clean).
func New(w io.Writer) *Line {
	l := &Line{start: time.Now()}
	if !IsTerminal(w) {
		return l
	}
	l.w, l.quit, l.done, l.kick = w, make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
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
	draw := func() {
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
	for {
		select {
		case <-l.quit:
			select {
			case <-l.kick: // the first Update is drawn, however soon Stop came
				draw()
			default:
			}
			if drawn {
				fmt.Fprint(l.w, "\r\x1b[K")
			}
			return
		case <-t.C:
		case <-l.kick:
		}
		draw()
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
		if l.last.IsZero() {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
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

// Drawn reports whether the line is drawn at all (on a terminal), so
// that work done only for it can be skipped otherwise.
func (l *Line) Drawn() bool { return l.w != nil }

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

// Of says how far work of a known size has come and how long it has to
// go, from the share done in elapsed: "37%, ETA 1m20s". It is "" while
// the total is unknown (0 or less); the ETA is left out until something
// is done.
func Of(done, total int64, elapsed time.Duration) string {
	if total <= 0 {
		return ""
	}
	done = max(0, min(done, total))
	pct := fmt.Sprintf("%d%%", done*100/total)
	if done == 0 || elapsed <= 0 {
		return pct
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	return pct + ", ETA " + roundETA(left).String()
}

// roundETA keeps an estimate as precise as it is: seconds under an hour,
// minutes above.
func roundETA(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// Rate is n per second of d.
func Rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
