package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

func signedEvents(t *testing.T, n int) []*nostr.Event {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	base := nostr.Now() - 1000
	out := make([]*nostr.Event, n)
	for i := range out {
		ev := &nostr.Event{CreatedAt: base + nostr.Timestamp(i), Kind: []int{1, 7}[i%2], Tags: nostr.Tags{}, Content: fmt.Sprintf("note %d", i)}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

func storedIDs(t *testing.T, dataDir string, f nostr.Filter) []string {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "wisp.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ids []string
	err = store.Scan(context.Background(), []nostr.Filter{f}, func(raw []byte) error {
		var ev struct{ ID string }
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		ids = append(ids, ev.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func runOK(t *testing.T, environ []string, args ...string) (stdout, stderr string) {
	t.Helper()
	return runOKFrom(t, nil, environ, args...)
}

// runOKFrom is runOK with stdin as the standard input.
func runOKFrom(t *testing.T, stdin io.Reader, environ []string, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, environ, stdin, &out, &errOut, nil); err != nil {
		t.Fatalf("wisp %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

// Import of a file with malformed and invalid lines reports them and stores
// the rest; export then import into another database gives the same set.
func TestImportExportRoundTrip(t *testing.T) {
	evs := signedEvents(t, 300)
	var file bytes.Buffer
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		file.Write(b)
		file.WriteByte('\n')
	}
	forged := *evs[0]
	forged.Content = "changed" // id no longer matches
	b, _ := json.Marshal(&forged)
	badSig := *signedEvents(t, 1)[0] // not stored yet: its signature is checked
	badSig.Sig = strings.Repeat("0", 128)
	b2, _ := json.Marshal(&badSig)
	b3, _ := json.Marshal(evs[2]) // duplicate
	fmt.Fprintf(&file, "not json\n\n{\"id\":1}\n%s\n%s\n%s\n[1,2]\n", b, b2, b3)
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	dirA, dirB := t.TempDir(), t.TempDir()
	envA, envB := []string{"WISP_DATA_DIR=" + dirA}, []string{"WISP_DATA_DIR=" + dirB}
	out, errOut := runOK(t, envA, "import", in)
	want := "300 stored, 1 duplicate, 2 rejected, 3 malformed"
	if !strings.Contains(out, want) {
		t.Errorf("import said %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "bad signature") || !strings.Contains(errOut, "in.jsonl:305:") {
		t.Errorf("import did not describe the bad lines: %q", errOut)
	}
	all := storedIDs(t, dirA, nostr.Filter{})
	if len(all) != 300 {
		t.Fatalf("stored %d events, want 300", len(all))
	}

	exported := filepath.Join(t.TempDir(), "out.jsonl")
	_, errOut = runOK(t, envA, "export", "--out", exported)
	if !strings.Contains(errOut, "exported 300 events") {
		t.Errorf("export said %q", errOut)
	}
	out, _ = runOK(t, envB, "import", exported)
	if !strings.Contains(out, "300 stored, 0 duplicate, 0 rejected, 0 malformed") {
		t.Errorf("second import said %q", out)
	}
	if got := storedIDs(t, dirB, nostr.Filter{}); !slices.Equal(got, all) {
		t.Errorf("after export and import: %d events, want the same %d", len(got), len(all))
	}

	// A filtered export, to standard output.
	since := fmt.Sprint(int64(evs[100].CreatedAt))
	out, _ = runOK(t, envA, "export", "--filter", `{"kinds":[1]}`, "--since", since)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 100 {
		t.Errorf("filtered export wrote %d lines, want 100", len(lines))
	}

	// Importing the same file again: all duplicates; from standard input.
	f, err := os.Open(exported)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ = runOKFrom(t, f, envB, "import")
	if !strings.Contains(out, "0 stored, 300 duplicate") {
		t.Errorf("re-import said %q", out)
	}
}

// wisp sync against a relay served by wisp serve, with usage errors.
func TestSyncCommandUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{
		{"sync"},
		{"sync", "http://example.com"},
		{"sync", "ws://example.com", "--dir", "sideways"},
		{"sync", "ws://example.com", "--filter", "{"},
		{"mirror"},
	} {
		err := run(context.Background(), args, nil, nil, &out, &errOut, nil)
		var ue *usageError
		if err == nil || !errorsAs(err, &ue) {
			t.Errorf("wisp %v: %v, want a usage error", args, err)
		}
	}
}

func errorsAs(err error, target **usageError) bool {
	for err != nil {
		if ue, ok := err.(*usageError); ok {
			*target = ue
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// wisp sync's summary agrees with what moved, by negentropy and by the REQ
// fallback alike (which used to say "only there 0" after downloading).
func TestSyncSummaryAgreesWithWhatMoved(t *testing.T) {
	evs := signedEvents(t, 120)
	for _, neg := range []string{"true", "false"} {
		t.Run("negentropy="+neg, func(t *testing.T) {
			addr, _, _ := startWisp(t, "WISP_NEGENTROPY="+neg)
			c := dialWisp(t, addr)
			for _, ev := range evs[20:] {
				if !c.publish(ev) {
					t.Fatal("event refused")
				}
			}
			local := []string{"WISP_DATA_DIR=" + t.TempDir()}
			var file bytes.Buffer
			for _, ev := range evs[:40] { // 20 only here, 20 on both
				b, _ := json.Marshal(ev)
				file.Write(b)
				file.WriteByte('\n')
			}
			runOKFrom(t, &file, local, "import")
			out, _ := runOK(t, local, "sync", "ws://"+addr, "--dir", "both")
			method := "negentropy"
			if neg == "false" {
				method = "req"
			}
			for _, want := range []string{
				" by " + method,
				": 40 events here matched; only here 20, only there 80\n",
				"  down: 80 received: 80 stored, 0 duplicate, 0 rejected\n",
				"  up: 20 accepted, 0 refused by the remote relay\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("summary\n%s\nlacks %q", out, want)
				}
			}
		})
	}
}

// Events that wisp import stores in the database of a running relay reach
// that relay's live subscribers, each once, and the relay's own events are
// not sent twice.
func TestImportReachesLiveSubscribers(t *testing.T) {
	addr, dir, _ := startWisp(t)
	env := []string{"WISP_DATA_DIR=" + dir}
	sub := dialWisp(t, addr)
	sub.send("REQ", "live", nostr.Filter{Kinds: []int{1, 7}})
	if m := sub.next(); string(m[0]) != `"EOSE"` {
		t.Fatalf("want EOSE, got %s", m)
	}
	pub := dialWisp(t, addr)
	evs := signedEvents(t, 62)
	var own []*nostr.Event // published to the relay, between imports
	importLines := func(evs []*nostr.Event) {
		var file bytes.Buffer
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			file.Write(b)
			file.WriteByte('\n')
		}
		runOKFrom(t, &file, env, "import")
	}
	importLines(evs[:30])
	for _, ev := range evs[30:35] {
		if !pub.publish(ev) {
			t.Fatal("event refused")
		}
		own = append(own, ev)
	}
	importLines(evs[35:61])
	// The last import comes after everything else in the database, so once
	// it arrived the follower has passed every other event.
	importLines(evs[61:])
	seen := map[string]int{}
	for seen[evs[61].ID] == 0 {
		m := sub.next()
		if string(m[0]) != `"EVENT"` {
			t.Fatalf("want EVENT, got %s", m)
		}
		var ev nostr.Event
		if err := json.Unmarshal(m[2], &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.ID]++
	}
	for i, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %d (imported: %v) arrived %d times, want once", i, !slices.Contains(own, ev), seen[ev.ID])
		}
	}
}
