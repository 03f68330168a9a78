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
