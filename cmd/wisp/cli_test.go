package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// reqIDs asks the relay for filters (a JSON array) with REQ and returns the
// ids of the stored events, in the order sent, up to EOSE.
func (c *wsClient) reqIDs(sub string, filters []json.RawMessage) []string {
	c.t.Helper()
	args := []any{"REQ", sub}
	for _, f := range filters {
		args = append(args, f)
	}
	c.send(args...)
	var ids []string
	for {
		m := c.next()
		switch string(m[0]) {
		case `"EOSE"`:
			c.send("CLOSE", sub)
			return ids
		case `"EVENT"`:
			var ev nostr.Event
			if err := json.Unmarshal(m[2], &ev); err != nil {
				c.t.Fatal(err)
			}
			ids = append(ids, ev.ID)
		default:
			c.t.Fatalf("REQ %s: got %s", sub, m)
		}
	}
}

// lineIDs reads the ids of JSON lines.
func lineIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev nostr.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// The CLI answers every filter as the relay's REQ does, on the same
// database while the relay runs: scan and export print the same events in
// the same order, scan --count and delete's dry run count them. Search
// included, which scan used to answer with nothing.
func TestCLIAnswersAsREQ(t *testing.T) {
	// A default limit above the corpus, so that a REQ without limit
	// returns every match, as the CLI does.
	addr, dir, _ := startWisp(t, "WISP_DEFAULT_LIMIT=5000")
	c := dialWisp(t, addr)
	alice, bob := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	alicePK, _ := nostr.GetPublicKey(alice)
	bobPK, _ := nostr.GetPublicKey(bob)
	base := time.Now().Unix() - 10000
	var all []*nostr.Event
	publish := func(ev *nostr.Event) *nostr.Event {
		t.Helper()
		if !c.publish(ev) {
			t.Fatalf("event %s refused", ev.ID)
		}
		all = append(all, ev)
		return ev
	}
	words := []string{"nostr relay", "the relay of nostr", "pizza tonight", "Relay RELAY relay"} // 4 against 5 kinds: every word in every kind
	var root *nostr.Event
	for i := range 40 {
		sk := alice
		if i%3 == 0 {
			sk = bob
		}
		kind := []int{1, 1, 7, 1, 30023}[i%5]
		tags := []nostr.Tag{{"t", []string{"go", "nostr", "food"}[i%3]}}
		if root != nil && i%4 == 0 {
			tags = append(tags, nostr.Tag{"e", root.ID}, nostr.Tag{"p", root.PubKey})
		}
		if kind == 30023 {
			tags = append(tags, nostr.Tag{"d", fmt.Sprint("article-", i)})
		}
		// Several events share a second, so that ties are ordered by id.
		ev := publish(signed(t, sk, kind, base+int64(i/2), words[i%len(words)], tags...))
		if root == nil {
			root = ev
		}
	}
	// A replaced profile and a deleted note are not served, by either.
	publish(signed(t, alice, 0, base, `{"name":"old"}`))
	publish(signed(t, alice, 0, base+5, `{"name":"new"}`))
	gone := publish(signed(t, bob, 1, base+50, "soon deleted relay"))
	publish(signed(t, bob, 5, base+51, "", nostr.Tag{"e", gone.ID}))

	some := []string{all[3].ID, all[10].ID, all[41].ID, all[42].ID /* replaced */, gone.ID, strings.Repeat("0", 64)}
	quote := func(v []string) string { b, _ := json.Marshal(v); return string(b) }
	filters := []string{
		`{}`,
		`{"ids":` + quote(some) + `}`,
		`{"authors":["` + bobPK + `"]}`,
		`{"authors":["` + alicePK + `","` + bobPK + `"],"kinds":[1]}`,
		`{"kinds":[7]}`,
		`{"kinds":[0]}`,
		`{"kinds":[30023],"#d":["article-4","article-9"]}`,
		`{"#e":["` + root.ID + `"]}`,
		`{"#p":["` + root.PubKey + `"],"kinds":[1,7]}`,
		`{"#t":["go","food"]}`,
		`{"#t":["nostr"],"#e":["` + root.ID + `"]}`,
		`{"since":` + strconv.FormatInt(base+10, 10) + `}`,
		`{"until":` + strconv.FormatInt(base+10, 10) + `}`,
		`{"since":` + strconv.FormatInt(base+5, 10) + `,"until":` + strconv.FormatInt(base+12, 10) + `,"kinds":[1]}`,
		`{"limit":7}`,
		`{"kinds":[1],"limit":3}`,
		`{"limit":0}`,
		`{"authors":[]}`,
		`{"search":"relay"}`,
		`{"search":"nostr relay","kinds":[1]}`,
		`{"search":"relay","authors":["` + alicePK + `"],"limit":2}`,
		`{"search":"pizza","#t":["go","nostr","food"]}`,
		`{"search":"absent"}`,
		`[{"kinds":[7]},{"authors":["` + bobPK + `"],"limit":4}]`,
		`[{"search":"relay"},{"kinds":[0]}]`,
		`[{"#t":["go"]},{"#t":["go"],"kinds":[1]}]`,
	}
	env := []string{"WISP_DATA_DIR=" + dir}
	for i, text := range filters {
		var arr []json.RawMessage
		if strings.HasPrefix(text, "[") {
			if err := json.Unmarshal([]byte(text), &arr); err != nil {
				t.Fatal(err)
			}
		} else {
			arr = []json.RawMessage{json.RawMessage(text)}
		}
		want := c.reqIDs(fmt.Sprint("q", i), arr)
		if want == nil {
			want = []string{}
		}
		out, _ := runOK(t, env, "scan", text)
		if got := lineIDs(t, out); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("scan %s:\n got %v\nwant %v (REQ)", text, got, want)
		}
		out, _ = runOK(t, env, "export", "--filter", text)
		if got := lineIDs(t, out); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("export --filter %s:\n got %v\nwant %v (REQ)", text, got, want)
		}
		if out, _ := runOK(t, env, "scan", "--count", text); out != fmt.Sprintln(len(want)) {
			t.Errorf("scan --count %s: %q, want %d", text, out, len(want))
		}
		if text != "{}" && !strings.Contains(text, "limit") {
			out, _ := runOK(t, env, "delete", "--filter", text)
			if want := fmt.Sprintf("%d events match; nothing deleted", len(want)); !strings.HasPrefix(out, want) {
				t.Errorf("delete --filter %s: %q, want %q", text, out, want)
			}
		}
	}

	// Deleting by a search deletes what the REQ finds, and only that.
	search := []json.RawMessage{json.RawMessage(`{"search":"pizza"}`)}
	pizza := c.reqIDs("pizza", search)
	out, _ := runOK(t, env, "delete", "--filter", string(search[0]), "--yes")
	if want := fmt.Sprintf("%d events matched; deleted %d.\n", len(pizza), len(pizza)); len(pizza) == 0 || out != want {
		t.Fatalf("delete by search: %q, want %q", out, want)
	}
	if left := c.reqIDs("pizza2", search); len(left) != 0 {
		t.Fatalf("after deleting by search, REQ still finds %v", left)
	}
	if got := c.reqIDs("all", []json.RawMessage{json.RawMessage(`{}`)}); len(got) != len(all)-len(pizza)-2 { // less the replaced profile and the deleted note
		t.Fatalf("%d events left of %d; %d deleted by search", len(got), len(all), len(pizza))
	}
}

// What operators coming from strfry type: accepted with strfry's meaning,
// or refused with the wisp way.
func TestStrfryFlags(t *testing.T) {
	dir := t.TempDir()
	env := []string{"WISP_DATA_DIR=" + dir}
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	var file strings.Builder
	var young []string
	for i := range 20 {
		age := int64(5000)
		if i%2 == 0 {
			age = 10
		}
		ev := signed(t, sk, 1, now-age-int64(i), fmt.Sprint("note ", i))
		if age == 10 {
			young = append(young, ev.ID)
		}
		b, _ := json.Marshal(ev)
		file.Write(b)
		file.WriteByte('\n')
	}
	for i := range 12 {
		fmt.Fprintf(&file, "not an event %d\n", i)
	}

	// import --show-rejected describes every bad line, not the first 10.
	_, errOut := runOKFrom(t, strings.NewReader(file.String()), env, "import", "--show-rejected", "-")
	if n := strings.Count(errOut, "standard input:"); n != 12 || strings.Contains(errOut, "more bad lines") {
		t.Errorf("import --show-rejected described %d bad lines of 12:\n%s", n, errOut)
	}
	_, errOut = runOKFrom(t, strings.NewReader(file.String()), env, "import")
	if n := strings.Count(errOut, "standard input:"); n != 10 || !strings.Contains(errOut, "... and 2 more bad lines (--show-rejected shows them all)") {
		t.Errorf("import described %d bad lines:\n%s", n, errOut)
	}

	// scan --count, before or after the filter.
	for _, args := range [][]string{{"scan", "--count", "{}"}, {"scan", "{}", "--count"}} {
		if out, _ := runOK(t, env, args...); out != "20\n" {
			t.Errorf("%v: %q, want 20", args, out)
		}
	}

	// delete --dry-run counts and deletes nothing; with --yes it contradicts.
	if out, _ := runOK(t, env, "delete", "--filter", `{"kinds":[1]}`, "--dry-run"); !strings.HasPrefix(out, "20 events match; nothing deleted (dry run)") {
		t.Errorf("delete --dry-run: %q", out)
	}
	if _, errOut, code := runEnvArgs(t, env, "delete", "--filter", `{"kinds":[1]}`, "--dry-run", "--yes"); code != 2 || !strings.Contains(errOut, "contradict") {
		t.Errorf("delete --dry-run --yes: exit %d %q", code, errOut)
	}

	// delete --age N (seconds, as strfry) deletes what is older, with or
	// without a filter; younger events stay.
	if out, _ := runOK(t, env, "delete", "--age", "1000"); !strings.HasPrefix(out, "10 events match; nothing deleted") {
		t.Errorf("delete --age 1000 (dry run): %q", out)
	}
	if out, _ := runOK(t, env, "delete", "--age", "1000", "--filter", `{"kinds":[7]}`); !strings.HasPrefix(out, "0 events match") {
		t.Errorf("delete --age with a filter of nothing: %q", out)
	}
	if out, _ := runOK(t, env, "delete", "--age", "1h", "--yes"); out != "10 events matched; deleted 10.\n" {
		t.Errorf("delete --age 1h --yes: %q", out)
	}
	out, _ := runOK(t, env, "scan", "{}")
	got := lineIDs(t, out)
	slices.Sort(got)
	slices.Sort(young)
	if !slices.Equal(got, young) {
		t.Errorf("after delete --age: %d events left, want the %d younger ones", len(got), len(young))
	}
	if _, errOut, code := runEnvArgs(t, env, "delete", "--age", "soon"); code != 2 || !strings.Contains(errOut, `--age "soon"`) {
		t.Errorf("delete --age soon: exit %d %q", code, errOut)
	}

	// export --reverse says what wisp does instead of guessing.
	if _, errOut, code := runEnvArgs(t, env, "export", "--reverse"); code != 2 || !strings.Contains(errOut, "newest first") {
		t.Errorf("export --reverse: exit %d %q", code, errOut)
	}
}

// runEnvArgs runs wisp with environ and returns what a shell would see.
func runEnvArgs(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	code = report(run(t.Context(), args, environ, nil, &out, &errb, nil), &errb)
	return out.String(), errb.String(), code
}
