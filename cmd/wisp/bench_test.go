package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wisp-relay/wisp/bench"
)

// `wisp bench` against a wisp started by run(), with a tiny workload: every
// phase runs, nothing is refused, every answer is right and every live
// event reaches every subscriber. No timing is asserted.
func TestBenchAgainstWisp(t *testing.T) {
	addr, _, logs := startWisp(t, "WISP_MAX_CONNS_PER_IP=0") // every connection comes from 127.0.0.1

	var out, errb bytes.Buffer
	err := run(t.Context(), []string{
		"bench", "--json",
		"--events", "300", "--keys", "20",
		"--duplicates", "100", "--queries", "200",
		"--fanout-subs", "20", "--fanout-events", "50", "--fanout-rate", "1000",
		"--idle-conns", "50",
		"--corpus-dir", t.TempDir(),
		"ws://" + addr,
		"--pid", strconv.Itoa(os.Getpid()), // flags may follow the URL
	}, nil, nil, &out, &errb, nil)
	if err != nil {
		t.Fatalf("wisp bench: %v\nstderr: %s\nrelay log:\n%s", err, errb.String(), logs)
	}
	if errb.Len() != 0 {
		t.Errorf("progress or noise on stderr, which is not a terminal: %q", errb.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if !strings.Contains(rep.Relay.Version, verifier) {
		t.Errorf("relay version %q does not name the verifier %s", rep.Relay.Version, verifier)
	}

	in := rep.Ingest
	switch {
	case in == nil:
		t.Fatal("no ingest report")
	case in.Sent != 300 || in.Accepted != 300 || in.OKTrue != 300 || in.OKFalse != nil || in.Timeouts != 0 || in.Unsent != 0:
		t.Errorf("ingest: want all 300 events OK true, got %+v", in.SendReport)
	case in.Duplicates == nil || in.Duplicates.Duplicate != 100 || in.Duplicates.OKFalse != nil:
		t.Errorf("duplicates: want 100 answered duplicate, got %+v", in.Duplicates)
	case in.Relay == nil:
		t.Error("no relay usage with --pid")
	}
	if q := rep.Query; q == nil || q.Completed != 200 || q.Mismatches != 0 || q.Failed != nil {
		t.Errorf("query: want 200 answered and no mismatch, got %+v", q)
	} else {
		// wisp lists NIP-50, so its mix has search; and the client shapes.
		var types []string
		for _, bt := range q.ByType {
			types = append(types, bt.Type)
		}
		for _, want := range []string{"search", "home", "notify", "thread", "profiles"} {
			if !slices.Contains(types, want) {
				t.Errorf("query mix %v lacks %s", types, want)
			}
		}
	}
	if f := rep.Fanout; f == nil || f.Subscribed != 20 || f.Accepted != 50 || f.Expected != 1000 ||
		f.Delivered != f.Expected || f.Repeated != 0 || f.Unexpected != 0 {
		t.Errorf("fanout: want 50 events delivered to 20 subscribers each, got %+v", f)
	}
	if i := rep.Idle; i == nil || i.Open != 50 || i.StillOpen != 50 || i.Failed != nil {
		t.Errorf("idle: want 50 subscribed connections, got %+v", i)
	}
	if t.Failed() {
		t.Logf("report:\n%s\nrelay log:\n%s", out.String(), logs)
	}
	// startWisp's cleanup stops the relay and checks that it stopped cleanly.
}

// The hostile phase runs its three attacks against wisp, which refuses
// what is over its budgets.
func TestBenchHostileAgainstWisp(t *testing.T) {
	addr, _, logs := startWisp(t)
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{
		"bench", "--json", "--phases", "ingest,hostile",
		"--events", "300", "--keys", "20", "--duplicates", "0",
		// 10 subscriptions of 330 KB pass the 2 MiB budget and stay light
		// enough for the race detector.
		"--hostile-conns", "3", "--hostile-subs", "10", "--hostile-hold", "300ms", "--hostile-release", "100ms",
		"--corpus-dir", t.TempDir(), "--pid", strconv.Itoa(os.Getpid()),
		"ws://" + addr,
	}, nil, nil, &out, &errb, nil)
	if err != nil {
		t.Fatalf("wisp bench: %v\nstderr: %s\nrelay log:\n%s", err, errb.String(), logs)
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	h := rep.Hostile
	if h == nil || len(h.Attacks) != 3 {
		t.Fatalf("hostile report: %+v", h)
	}
	want := map[string]string{"req": "EVENT", "subs": "CLOSED blocked", "neg": "NEG-MSG"}
	for _, a := range h.Attacks {
		if a.Opened != 3 || a.Failed != nil || a.Replies[want[a.Name]] == 0 || a.RSSPeakKiB == 0 || a.RSSAfterKiB == 0 {
			t.Errorf("attack %s: want 3 connections answered %s and memory figures, got %+v", a.Name, want[a.Name], a)
		}
	}
}

// Two URLs of one wisp are two nodes to the tool: connections are spread
// over both, and every live event reaches the subscribers "on the other
// node" once, none missing, none doubled.
func TestBenchNodesAgainstWisp(t *testing.T) {
	addr, _, logs := startWisp(t, "WISP_MAX_CONNS_PER_IP=0")
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{
		"bench", "--json", "--phases", "ingest,query,fanout",
		"--events", "300", "--keys", "20", "--duplicates", "0", "--queries", "100",
		"--fanout-subs", "10", "--fanout-events", "40", "--fanout-rate", "1000",
		"--corpus-dir", t.TempDir(),
		"ws://" + addr, "ws://" + addr + "/",
	}, nil, nil, &out, &errb, nil)
	if err != nil {
		t.Fatalf("wisp bench: %v\nstderr: %s\nrelay log:\n%s", err, errb.String(), logs)
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if !slices.Equal(rep.Nodes, []string{"ws://" + addr + "/"}) {
		t.Errorf("nodes %q", rep.Nodes)
	}
	if in := rep.Ingest; in == nil || in.Accepted != 300 {
		t.Errorf("ingest %+v", in)
	}
	if q := rep.Query; q == nil || q.Completed != 100 || q.Mismatches != 0 {
		t.Errorf("query %+v", q)
	}
	f := rep.Fanout
	if f == nil || f.Nodes != 2 || f.CrossNode == nil {
		t.Fatalf("fanout %+v", f)
	}
	// 5 subscribers on each node, 20 of the 40 events published on each.
	if x := f.CrossNode; f.Delivered != 400 || f.Missing != 0 || f.Repeated != 0 ||
		x.Expected != 200 || x.Delivered != 200 || x.Missing != 0 || x.Doubled != 0 || x.Latency.Count != 200 {
		t.Errorf("fanout: %d delivered, %d missing, %d repeated; cross-node %+v", f.Delivered, f.Missing, f.Repeated, x)
	}
}

func TestBenchUsage(t *testing.T) {
	out, errOut, code := runArgs(t, "bench", "--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: wisp bench") || !strings.Contains(out, "-phases") {
		t.Errorf("bench --help: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "bench takes a relay URL"},
		{[]string{"bench", "ws://a", "--compare", "x=ws://b,y=ws://c"}, "either a relay URL or --compare"},
		{[]string{"bench", "--bogus", "ws://a"}, "bench: flag provided but not defined: -bogus"},
	} {
		_, errOut, code := runArgs(t, tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
	// Bad values are refused before anything is dialled or signed.
	_, errOut, code = runArgs(t, "bench", "--phases", "ingest,nope", "ws://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, `unknown phase "nope"`) {
		t.Errorf("bad phase: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runArgs(t, "bench", "ws://127.0.0.1:1", "http://127.0.0.1:2")
	if code != 1 || !strings.Contains(errOut, `relay url "http://127.0.0.1:2" must start with ws://`) {
		t.Errorf("bad second node: exit %d, stderr %q", code, errOut)
	}
	if help, _, _ := runArgs(t, "--help"); !strings.Contains(help, "wisp bench <url>") {
		t.Errorf("wisp --help does not mention bench:\n%s", help)
	}
}
