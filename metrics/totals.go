package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wisp-relay/wisp/relay"
)

// Totals are the counters of Metrics as they stand, for the operator's
// dashboard, which turns successive readings into rates. They are read
// from the collectors themselves, so the dashboard and /metrics always
// agree.
type Totals struct {
	Stored, Ephemeral, Duplicate float64
	// Rejected counts refused EVENTs by the prefix of the reason.
	Rejected map[string]float64
	// Refused counts the other refusals (wisp_refused_total) by what was
	// refused: REQ, COUNT, NEG, connection.
	Refused map[string]float64
	// Queries is the histogram of stored queries (REQ and COUNT, every
	// outcome) summed into one.
	Queries Histogram
	// BatchErrors counts failed write batches.
	BatchErrors float64
}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i] seconds.
type Histogram struct {
	Count  uint64
	Sum    float64
	Bounds []float64
	Counts []uint64
}

// Totals reads the counters.
func (m *Metrics) Totals() Totals {
	t := Totals{Rejected: map[string]float64{}, Refused: map[string]float64{}}
	for k, c := range m.events {
		v := counterValue(c)
		switch k[0] {
		case relay.OutcomeStored:
			t.Stored = v
		case relay.OutcomeEphemeral:
			t.Ephemeral = v
		case relay.OutcomeDuplicate:
			t.Duplicate = v
		case relay.OutcomeRejected:
			t.Rejected[k[1]] = v
		}
	}
	for k, c := range m.refused {
		t.Refused[k[0]] += counterValue(c)
	}
	t.BatchErrors = counterValue(m.batchErrors)
	for _, h := range m.queryHists {
		var d dto.Metric
		if h.Write(&d) != nil || d.Histogram == nil {
			continue
		}
		dh := d.Histogram
		t.Queries.Count += dh.GetSampleCount()
		t.Queries.Sum += dh.GetSampleSum()
		if t.Queries.Bounds == nil {
			for _, b := range dh.Bucket {
				t.Queries.Bounds = append(t.Queries.Bounds, b.GetUpperBound())
			}
			t.Queries.Counts = make([]uint64, len(t.Queries.Bounds))
		}
		for i, b := range dh.Bucket {
			if i < len(t.Queries.Counts) {
				t.Queries.Counts[i] += b.GetCumulativeCount()
			}
		}
	}
	return t
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if c.Write(&d) != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}
