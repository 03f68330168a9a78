package bench

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Latency summarises a set of durations, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// samples: the smallest sample that at least p % of the samples do not
// exceed. It is 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// summarize sorts samples in place and returns their percentiles.
func summarize(samples []time.Duration) Latency {
	slices.Sort(samples)
	l := Latency{Count: len(samples)}
	if len(samples) == 0 {
		return l
	}
	l.P50 = ms(percentile(samples, 50))
	l.P95 = ms(percentile(samples, 95))
	l.P99 = ms(percentile(samples, 99))
	l.Max = ms(samples[len(samples)-1])
	return l
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// perSecond is n per wall second of d, 0 for no time.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*10) / 10
}

// reasonPrefix is the machine-readable prefix of an OK or CLOSED message
// ("invalid", "blocked", "error", ...; NIP-01), or "(none)".
func reasonPrefix(msg string) string {
	p, _, found := strings.Cut(msg, ":")
	if !found || p == "" || len(p) > 20 || strings.ContainsAny(p, " \t") {
		return "(none)"
	}
	return p
}
