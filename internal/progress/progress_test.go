package progress

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// Logs and pipes get no status lines; /dev/null, a character device, is
// not a terminal either.
func TestQuietOffTerminals(t *testing.T) {
	var b bytes.Buffer
	l := New(&b)
	l.Update("%d done", 5)
	l.Show(func() string { return "busy" })
	time.Sleep(2 * every)
	l.Stop()
	if b.Len() != 0 {
		t.Fatalf("wrote %q to a buffer", b.String())
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if IsTerminal(null) {
		t.Fatal("/dev/null taken for a terminal")
	}
}

func TestRate(t *testing.T) {
	if got := Rate(500, 2*time.Second); got != 250 {
		t.Fatalf("Rate = %v", got)
	}
	if got := Rate(5, 0); got != 0 {
		t.Fatalf("Rate over no time = %v", got)
	}
}

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 0, time.Second, ""},     // total unknown
		{5, -1, time.Second, ""},    // total unknown
		{0, 100, time.Second, "0%"}, // nothing done: no estimate yet
		{25, 100, 10 * time.Second, "25%, ETA 30s"},
		{1, 3, time.Second, "33%, ETA 2s"},
		{100, 100, time.Minute, "100%, ETA 0s"},
		{150, 100, time.Minute, "100%, ETA 0s"}, // more than announced
		{1, 1000, time.Minute, "0%, ETA 16h39m0s"},
		{999, 1000, 999 * time.Second, "99%, ETA 1s"},
	} {
		if got := Of(tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("Of(%d, %d, %s) = %q, want %q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
}
