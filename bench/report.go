package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes a report (or a Comparison) for machines: indented
// JSON, one document.
func WriteJSON(w io.Writer, rep any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}

// WriteText writes the report for people: a header, one row per phase, the
// query mix by type, then anything that went wrong.
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	relay := rep.Relay.Name
	if rep.Relay.Version != "" {
		relay += " " + rep.Relay.Version
	}
	if rep.Relay.Software != "" {
		relay += " (" + rep.Relay.Software + ")"
	}
	if strings.TrimSpace(relay) == "" {
		relay = "(no NIP-11 document)"
	}
	if rep.PID != 0 {
		relay += fmt.Sprintf(", pid %d", rep.PID)
	}
	fmt.Fprintf(&b, "wisp bench %s\n", strings.Join(append([]string{rep.URL}, rep.Nodes...), " "))
	fmt.Fprintf(&b, "relay:  %s\n", strings.TrimSpace(relay))
	tool := rep.Tool.Version
	if tool == "" {
		tool = rep.Tool.GoVersion
	}
	fmt.Fprintf(&b, "tool:   %s, %d CPUs (GOMAXPROCS %d)\n", tool, rep.Tool.CPUs, rep.Tool.GOMAXPROCS)
	c := rep.Corpus
	cached := "signed in"
	if c.Cached {
		cached = "loaded from cache in"
	}
	fmt.Fprintf(&b, "corpus: %d events from %d keys, seed %d, 30 days to %s; kinds %s; %s %.1f s\n\n",
		c.Events, c.Keys, c.Seed, time.Unix(c.Until, 0).UTC().Format("2006-01-02 15:04 UTC"),
		kindList(c.Kinds), cached, c.PrepareSeconds)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tCOUNT\tRATE\tP50\tP95\tP99\tRESULT\tRELAY CPU\tDISK WRITTEN\tTOOL CPU\tOTHER CPU")
	if in := rep.Ingest; in != nil {
		fmt.Fprintf(tw, "ingest\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Sent,
			rate(in.PerSecond, "ev/s"), msec(in.OK.P50), msec(in.OK.P95), msec(in.OK.P99),
			sendSummary(&in.SendReport, false),
			cpu(in.Relay, in.CPUMicrosPerEvent, "µs/ev"), disk(in.Relay, in.DiskBytesPerEvent), secs(in.ToolCPUSeconds), secs(in.OtherCPUSeconds))
		if d := in.Duplicates; d != nil {
			fmt.Fprintf(tw, "duplicates\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Sent,
				rate(d.PerSecond, "dup/s"), msec(d.OK.P50), msec(d.OK.P95), msec(d.OK.P99),
				sendSummary(d, true), cpu(d.Relay, 0, ""), disk(d.Relay, 0), secs(d.ToolCPUSeconds), secs(d.OtherCPUSeconds))
		}
	}
	for _, p := range []struct {
		name string
		q    *QueryReport
	}{{"query", rep.Query}, {"search (apart)", rep.Search}} {
		q := p.q
		if q == nil {
			continue
		}
		res := fmt.Sprintf("%d mismatches, %d failed", q.Mismatches, sum(q.Failed))
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.name, q.Queries,
			rate(q.QueriesPerSecond, "q/s"), msec(q.EOSE.P50), msec(q.EOSE.P95), msec(q.EOSE.P99),
			res, cpu(q.Relay, q.CPUMsPerQuery*1000, "µs/q"), disk(q.Relay, 0), secs(q.ToolCPUSeconds), secs(q.OtherCPUSeconds))
	}
	if f := rep.Fanout; f != nil {
		res := fmt.Sprintf("%d/%d delivered", f.Delivered, f.Expected)
		if f.Repeated+f.Unexpected > 0 {
			res += fmt.Sprintf(", %d repeated, %d unexpected", f.Repeated, f.Unexpected)
		}
		fmt.Fprintf(tw, "fanout\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Events,
			rate(f.RatePerSecond, "ev/s"), msec(f.Latency.P50), msec(f.Latency.P95), msec(f.Latency.P99),
			res, cpu(f.Relay, 0, ""), disk(f.Relay, 0), secs(f.ToolCPUSeconds), secs(f.OtherCPUSeconds))
		if x := f.CrossNode; x != nil {
			fmt.Fprintf(tw, "  cross-node (%d nodes)\t%d\t-\t%s\t%s\t%s\t%d/%d delivered, %d missing, %d doubled\t\t\t\t\n",
				f.Nodes, x.Expected, msec(x.Latency.P50), msec(x.Latency.P95), msec(x.Latency.P99),
				x.Delivered, x.Expected, x.Missing, x.Doubled)
		}
	}
	if i := rep.Idle; i != nil {
		res := fmt.Sprintf("%d/%d open, %d still", i.Open, i.Connections, i.StillOpen)
		if i.KiBPerConn != 0 {
			res += fmt.Sprintf(", %.1f KiB/conn", i.KiBPerConn)
		}
		fmt.Fprintf(tw, "idle\t%d\t%s\t-\t-\t-\t%s\t%s\t%s\t%s\t%s\n", i.Connections,
			rate(perSecond(i.Open, time.Duration(i.OpenSeconds*float64(time.Second))), "conn/s"),
			res, cpu(i.Relay, 0, ""), disk(i.Relay, 0), secs(i.ToolCPUSeconds), secs(i.OtherCPUSeconds))
	}
	tw.Flush()

	if q := rep.Query; q != nil {
		fmt.Fprintln(&b, "\nquery mix (time to EOSE)")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tQUERIES\tEVENTS\tP50\tP95\tP99\tMISMATCHES\tFIRST FILTER")
		for _, t := range q.ByType {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\n", t.Type, t.Queries, t.Events,
				msec(t.EOSE.P50), msec(t.EOSE.P95), msec(t.EOSE.P99), t.Mismatches, clip(t.Example, 90))
		}
		tw.Flush()
	}

	if h := rep.Hostile; h != nil {
		fmt.Fprintf(&b, "\nhostile: %d connections that never read, each attack in turn (relay RSS in MiB)\n", h.Connections)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ATTACK\tOPENED\tBEFORE\tPEAK HELD\tAFTER CLOSE\tREPLIES")
		for _, a := range h.Attacks {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", a.Name, a.Opened,
				mib(a.RSSBeforeKiB), mib(a.RSSPeakKiB), mib(a.RSSAfterKiB), countList(a.Replies))
		}
		tw.Flush()
	}

	var nb strings.Builder
	writeNotes(&nb, rep)
	if nb.Len() > 0 {
		fmt.Fprintln(&b)
		b.WriteString(nb.String())
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writeNotes writes what went wrong in the run, a line each: refusals,
// failures, mismatches, warnings.
func writeNotes(b *strings.Builder, rep *Report) {
	var notes []string
	if in := rep.Ingest; in != nil {
		notes = append(notes, sendNotes("ingest", &in.SendReport)...)
		if in.Duplicates != nil {
			notes = append(notes, sendNotes("duplicates", in.Duplicates)...)
		}
	}
	for _, q := range []*QueryReport{rep.Query, rep.Search} {
		if q == nil {
			continue
		}
		if len(q.Failed) > 0 {
			notes = append(notes, "query failures: "+countList(q.Failed))
		}
		for _, ex := range q.MismatchExamples {
			notes = append(notes, "mismatch: "+ex)
		}
	}
	if f := rep.Fanout; f != nil {
		if f.Subscribed < f.Subscribers {
			notes = append(notes, fmt.Sprintf("fanout: %d of %d subscribers subscribed (%s)", f.Subscribed, f.Subscribers, countList(f.SubscribeFailed)))
		}
		if f.Accepted < f.Events {
			notes = append(notes, fmt.Sprintf("fanout: %d of %d published events accepted (OK false: %s; %d timeouts)", f.Accepted, f.Events, countList(f.OKFalse), f.Timeouts))
		}
	}
	if h := rep.Hostile; h != nil {
		for _, a := range h.Attacks {
			if len(a.Failed) > 0 {
				notes = append(notes, fmt.Sprintf("hostile %s failures: %s", a.Name, countList(a.Failed)))
			}
		}
	}
	if i := rep.Idle; i != nil {
		if len(i.Failed) > 0 {
			notes = append(notes, "idle failures: "+countList(i.Failed))
		}
		if i.RSSAfterKiB > 0 {
			notes = append(notes, fmt.Sprintf("idle: relay RSS %.1f MiB before, %.1f MiB with %d connections", float64(i.RSSBeforeKiB)/1024, float64(i.RSSAfterKiB)/1024, i.Open))
		}
	}
	for _, wn := range rep.Warnings {
		notes = append(notes, "warning: "+wn)
	}
	for _, n := range notes {
		fmt.Fprintln(b, n)
	}
}

func sendSummary(s *SendReport, dups bool) string {
	var res string
	if dups {
		res = fmt.Sprintf("%d duplicate", s.Duplicate)
		if other := s.OKTrue - s.Duplicate; other > 0 {
			res += fmt.Sprintf(", %d plain OK", other)
		}
	} else {
		res = fmt.Sprintf("%d OK true", s.OKTrue)
	}
	res += fmt.Sprintf(", %d false, %d t/o", sum(s.OKFalse), s.Timeouts)
	if s.Unsent > 0 {
		res += fmt.Sprintf(", %d unsent", s.Unsent)
	}
	return res
}

func sendNotes(name string, s *SendReport) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(s.OKFalse)) {
		out = append(out, fmt.Sprintf("%s: %d OK false %q, e.g. %q", name, s.OKFalse[p], p, s.OKFalseExamples[p]))
	}
	if len(s.ConnErrors) > 0 {
		out = append(out, fmt.Sprintf("%s connection errors: %s", name, countList(s.ConnErrors)))
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func countList(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func kindList(m map[int]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func rate(v float64, unit string) string {
	return fmt.Sprintf("%.0f %s", v, unit)
}

func msec(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func cpu(u *Usage, per float64, unit string) string {
	if u == nil {
		return "-"
	}
	s := fmt.Sprintf("%.2f s", u.CPUSeconds)
	if per > 0 {
		s += fmt.Sprintf(" (%.0f %s)", per, unit)
	}
	return s
}

func secs(v float64) string { return fmt.Sprintf("%.2f s", v) }

func disk(u *Usage, perEvent float64) string {
	if u == nil {
		return "-"
	}
	s := bytesize(float64(u.DiskWriteBytes))
	if perEvent > 0 {
		s += " (" + bytesize(perEvent) + "/ev)"
	}
	return s
}

func bytesize(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// mib shows KiB as MiB, or - when not measured.
func mib(kib int64) string {
	if kib <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(kib)/1024)
}
