package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what the commands write to the
// terminal end can be read from the other.
func openPTY(t *testing.T) (master, term *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	term, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, term
}

// onTerminal runs wisp with its standard error on a terminal and returns
// what it drew there.
func onTerminal(t *testing.T, environ []string, args ...string) string {
	t.Helper()
	master, term := openPTY(t)
	defer master.Close()
	var drawn bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&drawn, master) }) // until the terminal end is closed
	var out bytes.Buffer
	err := run(t.Context(), args, environ, nil, &out, term, nil)
	term.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("wisp %v: %v\n%s", args, err, drawn.String())
	}
	return drawn.String()
}

// On a terminal, work whose size is known shows how far it is and how
// long it has to go, besides its rate; the line is cleared at the end.
func TestProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	env := []string{"WISP_DATA_DIR=" + dir}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	var lines bytes.Buffer
	for _, ev := range signedEvents(t, 200) {
		b, _ := json.Marshal(ev)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	if err := os.WriteFile(file, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"import", file}, []string{"%, ETA ", "lines: ", "lines/s"}},
		{[]string{"export", "--out", filepath.Join(t.TempDir(), "out.jsonl")}, []string{"%, ETA ", "exported ", "/s"}},
		{[]string{"backup", filepath.Join(t.TempDir(), "copy.db")}, []string{"copied ", "%, ETA ", "/s)"}},
	} {
		drawn := onTerminal(t, env, tc.args...)
		for _, want := range tc.want {
			if !strings.Contains(drawn, want) {
				t.Errorf("wisp %s drew %q on the terminal, without %q", tc.args[0], drawn, want)
			}
		}
		if !strings.Contains(drawn, "\r\x1b[K") {
			t.Errorf("wisp %s: the line is not drawn in place: %q", tc.args[0], drawn)
		}
	}
}
