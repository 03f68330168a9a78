package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
)

// Target is one relay of a comparison.
type Target struct {
	Name string // as the table heads its column
	URL  string
	// Nodes are the relay's other URLs (Config.Nodes): one relay of
	// several nodes, which the comparison loads as a whole.
	Nodes []string
	// PID is the relay's process for its CPU, disk and memory figures; 0:
	// found from the process listening on the URL's port on this machine,
	// when there is one (see listenerPID).
	PID int
}

// Comparison is a run of the same workload against several relays, one
// after the other, in the order given.
type Comparison struct {
	Relays []ComparedRelay `json:"relays"`
}

// ComparedRelay is one relay's report in a comparison.
type ComparedRelay struct {
	Name   string  `json:"name"`
	Report *Report `json:"report"`
}

// ParseTarget reads NAME=URL, or a bare URL named by its host and port.
// URL may be several joined by "+" (NAME=ws://a+ws://b): the nodes of one
// relay, named by the first.
func ParseTarget(s string) (Target, error) {
	name, u, ok := strings.Cut(s, "=")
	if !ok || strings.Contains(name, "://") {
		name, u = "", s
	}
	var urls []string
	for part := range strings.SplitSeq(u, "+") {
		pu, err := url.Parse(part)
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
			return Target{}, fmt.Errorf("relay %q: want NAME=ws://host:port, NAME=ws://host:port+ws://host:port... or a ws:// URL", s)
		}
		if name == "" {
			name = pu.Host
		}
		urls = append(urls, part)
	}
	t := Target{Name: name, URL: urls[0]}
	if len(urls) > 1 {
		t.Nodes = urls[1:]
	}
	return t, nil
}

// RunCompare runs cfg (its URL and PID are ignored) against each target in
// turn, each relay with the whole workload before the next begins: the
// relays must be fresh and empty when the comparison starts, and running
// (each with its own database; the tool warns about one that already holds
// events). They run one at a time, so each has the machine to itself but
// for the others idling. Search is in the query mix only when every relay
// lists NIP-50, so that all answer the same REQs; otherwise the relays that
// list it answer the search REQs apart, after the mix (Report.Search).
func RunCompare(ctx context.Context, cfg Config, targets []Target) (*Comparison, error) {
	if len(targets) < 2 {
		return nil, fmt.Errorf("a comparison needs at least two relays, got %d", len(targets))
	}
	seen := map[string]bool{}
	for i, t := range targets {
		if seen[t.Name] {
			return nil, fmt.Errorf("relay name %q given twice", t.Name)
		}
		seen[t.Name] = true
		if t.PID == 0 {
			if pid, err := listenerPID(t.URL); err == nil {
				targets[i].PID = pid
			}
		}
	}
	for _, t := range targets {
		info, err := fetchInfo(ctx, t.URL)
		if err != nil || !info.supports(50) {
			cfg.SearchApart = true
		}
	}
	cmp := &Comparison{}
	for _, t := range targets {
		c := cfg
		c.URL, c.Nodes, c.PID = t.URL, t.Nodes, t.PID
		rep, err := Run(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if t.PID == 0 {
			rep.Warnings = append(rep.Warnings, "no relay process found listening on "+t.URL+": no CPU, disk or memory figures")
		}
		cmp.Relays = append(cmp.Relays, ComparedRelay{Name: t.Name, Report: rep})
	}
	return cmp, nil
}

// figure is one row of the comparison: how to read its value from a
// report (false: not measured), its unit and decimals. The ratio is
// always the first relay's value over the other's.
type figure struct {
	name   string
	unit   string
	value  func(*Report) (float64, bool)
	digits int
}

func compareFigures(reps []*Report) []figure {
	ingest := func(f func(*IngestReport) (float64, bool)) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) {
			if r.Ingest == nil {
				return 0, false
			}
			return f(r.Ingest)
		}
	}
	query := func(f func(*QueryReport) (float64, bool)) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) {
			if r.Query == nil {
				return 0, false
			}
			return f(r.Query)
		}
	}
	search := func(f func(*QueryReport) (float64, bool)) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) {
			if r.Search == nil {
				return 0, false
			}
			return f(r.Search)
		}
	}
	fanout := func(f func(*FanoutReport) (float64, bool)) func(*Report) (float64, bool) {
		return func(r *Report) (float64, bool) {
			if r.Fanout == nil {
				return 0, false
			}
			return f(r.Fanout)
		}
	}
	some := func(v float64) (float64, bool) { return v, true }
	relayCPU := func(u *Usage) (float64, bool) {
		if u == nil {
			return 0, false
		}
		return u.CPUSeconds, true
	}
	figs := []figure{
		{"ingest: accepted events/s", "", ingest(func(in *IngestReport) (float64, bool) { return some(in.PerSecond) }), 0},
		{"ingest: OK true", "", ingest(func(in *IngestReport) (float64, bool) { return some(float64(in.OKTrue)) }), 0},
		{"ingest: OK false or unanswered", "", ingest(func(in *IngestReport) (float64, bool) {
			return some(float64(sum(in.OKFalse) + in.Timeouts + in.Unsent))
		}), 0},
		{"ingest: OK p50", "ms", ingest(func(in *IngestReport) (float64, bool) { return some(in.OK.P50) }), 1},
		{"ingest: OK p99", "ms", ingest(func(in *IngestReport) (float64, bool) { return some(in.OK.P99) }), 1},
		{"ingest: relay CPU per event", "µs", ingest(func(in *IngestReport) (float64, bool) {
			return in.CPUMicrosPerEvent, in.Relay != nil
		}), 0},
		{"ingest: disk written per event", "KiB", ingest(func(in *IngestReport) (float64, bool) {
			return in.DiskBytesPerEvent / 1024, in.Relay != nil
		}), 1},
		{"ingest: other processes' CPU", "s", ingest(func(in *IngestReport) (float64, bool) { return some(in.OtherCPUSeconds) }), 2},
		{"duplicates/s", "", ingest(func(in *IngestReport) (float64, bool) {
			if in.Duplicates == nil {
				return 0, false
			}
			return in.Duplicates.PerSecond, true
		}), 0},
		{"query: REQs/s", "", query(func(q *QueryReport) (float64, bool) { return some(q.QueriesPerSecond) }), 0},
		{"query: EOSE p50", "ms", query(func(q *QueryReport) (float64, bool) { return some(q.EOSE.P50) }), 2},
		{"query: EOSE p95", "ms", query(func(q *QueryReport) (float64, bool) { return some(q.EOSE.P95) }), 2},
		{"query: EOSE p99", "ms", query(func(q *QueryReport) (float64, bool) { return some(q.EOSE.P99) }), 2},
		{"query: mismatches", "", query(func(q *QueryReport) (float64, bool) { return some(float64(q.Mismatches)) }), 0},
		{"query: failed", "", query(func(q *QueryReport) (float64, bool) { return some(float64(sum(q.Failed))) }), 0},
		{"query: relay CPU per REQ", "µs", query(func(q *QueryReport) (float64, bool) {
			return q.CPUMsPerQuery * 1000, q.Relay != nil
		}), 0},
		{"query: relay CPU", "s", query(func(q *QueryReport) (float64, bool) { return relayCPU(q.Relay) }), 2},
		{"query: other processes' CPU", "s", query(func(q *QueryReport) (float64, bool) { return some(q.OtherCPUSeconds) }), 2},
	}
	// The query types, in the mix's order, by their p99.
	var types []string
	for _, r := range reps {
		if r.Query == nil {
			continue
		}
		for _, t := range r.Query.ByType {
			if !containsString(types, t.Type) {
				types = append(types, t.Type)
			}
		}
	}
	for _, typ := range types {
		figs = append(figs, figure{"query " + typ + ": EOSE p99", "ms", query(func(q *QueryReport) (float64, bool) {
			for _, t := range q.ByType {
				if t.Type == typ {
					return t.EOSE.P99, true
				}
			}
			return 0, false
		}), 2})
	}
	figs = append(figs,
		figure{"search apart: REQs", "", search(func(q *QueryReport) (float64, bool) { return some(float64(q.Completed)) }), 0},
		figure{"search apart: EOSE p50", "ms", search(func(q *QueryReport) (float64, bool) { return some(q.EOSE.P50) }), 2},
		figure{"search apart: EOSE p99", "ms", search(func(q *QueryReport) (float64, bool) { return some(q.EOSE.P99) }), 2},
		figure{"search apart: mismatches", "", search(func(q *QueryReport) (float64, bool) { return some(float64(q.Mismatches)) }), 0},
		figure{"search apart: relay CPU per REQ", "µs", search(func(q *QueryReport) (float64, bool) {
			return q.CPUMsPerQuery * 1000, q.Relay != nil
		}), 0},
	)
	figs = append(figs,
		figure{"fanout: delivery p50", "ms", fanout(func(f *FanoutReport) (float64, bool) { return some(f.Latency.P50) }), 2},
		figure{"fanout: delivery p99", "ms", fanout(func(f *FanoutReport) (float64, bool) { return some(f.Latency.P99) }), 2},
		figure{"fanout: delivered", "", fanout(func(f *FanoutReport) (float64, bool) { return some(float64(f.Delivered)) }), 0},
		figure{"fanout: expected", "", fanout(func(f *FanoutReport) (float64, bool) { return some(float64(f.Expected)) }), 0},
		figure{"fanout: missing", "", fanout(func(f *FanoutReport) (float64, bool) { return some(float64(f.Missing)) }), 0},
		figure{"fanout: doubled", "", fanout(func(f *FanoutReport) (float64, bool) { return some(float64(f.Repeated)) }), 0},
		figure{"fanout cross-node: delivery p50", "ms", fanout(func(f *FanoutReport) (float64, bool) {
			return crossNode(f, func(x *CrossNodeReport) float64 { return x.Latency.P50 })
		}), 2},
		figure{"fanout cross-node: delivery p99", "ms", fanout(func(f *FanoutReport) (float64, bool) {
			return crossNode(f, func(x *CrossNodeReport) float64 { return x.Latency.P99 })
		}), 2},
		figure{"fanout cross-node: missing", "", fanout(func(f *FanoutReport) (float64, bool) {
			return crossNode(f, func(x *CrossNodeReport) float64 { return float64(x.Missing) })
		}), 0},
		figure{"fanout cross-node: doubled", "", fanout(func(f *FanoutReport) (float64, bool) {
			return crossNode(f, func(x *CrossNodeReport) float64 { return float64(x.Doubled) })
		}), 0},
		figure{"idle: relay memory per connection", "KiB", func(r *Report) (float64, bool) {
			if r.Idle == nil || r.Idle.RSSAfterKiB == 0 {
				return 0, false
			}
			return r.Idle.KiBPerConn, true
		}, 1},
	)
	return figs
}

// crossNode reads a cross-node figure, measured only for a relay of
// several nodes.
func crossNode(f *FanoutReport, v func(*CrossNodeReport) float64) (float64, bool) {
	if f.CrossNode == nil {
		return 0, false
	}
	return v(f.CrossNode), true
}

func containsString(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// WriteCompareText writes a comparison for people: each relay's software,
// then a row per figure with a column per relay and the ratio of the first
// relay's figure to each other's, then each relay's notes.
func WriteCompareText(w io.Writer, c *Comparison) error {
	var b strings.Builder
	reps := make([]*Report, len(c.Relays))
	for i, r := range c.Relays {
		reps[i] = r.Report
		info := r.Report.Relay
		fmt.Fprintf(&b, "%s: %s, %s %s", r.Name, r.Report.URL, strings.TrimSpace(info.Software), info.Version)
		if r.Report.PID != 0 {
			fmt.Fprintf(&b, ", pid %d", r.Report.PID)
		}
		b.WriteByte('\n')
	}
	if len(reps) > 0 {
		co := reps[0].Corpus
		fmt.Fprintf(&b, "corpus: %d events from %d keys, seed %d; every relay ran the same phases one after the other, in this order\n\n",
			co.Events, co.Keys, co.Seed)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "FIGURE\t"
	for _, r := range c.Relays {
		head += r.Name + "\t"
	}
	for _, r := range c.Relays[1:] {
		head += c.Relays[0].Name + " ÷ " + r.Name + "\t"
	}
	fmt.Fprintln(tw, head)
	for _, f := range compareFigures(reps) {
		vals := make([]float64, len(reps))
		oks := make([]bool, len(reps))
		anyOK := false
		for i, r := range reps {
			vals[i], oks[i] = f.value(r)
			anyOK = anyOK || oks[i]
		}
		if !anyOK {
			continue
		}
		name := f.name
		if f.unit != "" {
			name += " (" + f.unit + ")"
		}
		line := name + "\t"
		for i := range reps {
			if oks[i] {
				line += fmt.Sprintf("%.*f\t", f.digits, vals[i])
			} else {
				line += "-\t"
			}
		}
		for i := 1; i < len(reps); i++ {
			if oks[0] && oks[i] && vals[i] != 0 {
				line += fmt.Sprintf("%.2f×\t", vals[0]/vals[i])
			} else {
				line += "-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	for _, r := range c.Relays {
		// The notes of the single-relay report: mismatches, failures, warnings.
		var notes strings.Builder
		writeNotes(&notes, r.Report)
		if notes.Len() > 0 {
			fmt.Fprintf(&b, "\n%s:\n%s", r.Name, notes.String())
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

// hostPort is the host:port a ws:// or wss:// URL connects to.
func hostPort(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	host, port := pu.Hostname(), pu.Port()
	if port == "" {
		port = "80"
		if pu.Scheme == "wss" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port), nil
}
