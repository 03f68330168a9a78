package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// The query mix: one REQ of each type in turn.
const (
	qIDs          = "ids"           // 20 ids
	qAuthor       = "author"        // 1 author, limit 50
	qAuthors      = "authors"       // 10 authors, limit 50
	qKind         = "kind"          // one kind, limit 20–100
	qTagE         = "#e"            // limit 50
	qTagP         = "#p"            // limit 50
	qTagT         = "#t"            // limit 50
	qWindow       = "window"        // since/until holding ~40 events, no limit
	qWindowLimit  = "window+limit"  // since/until holding ~1,000 events, limit 20
	qKind0Authors = "kind0-authors" // kind 0 of 50 authors, no limit

	// What clients send most.
	qHome     = "home"     // authors of 300–500 follows, kinds 1, 6, 7, limit 100–500
	qNotify   = "notify"   // #p of one key with kinds 1, 6, 7, 9735, limit 100
	qThread   = "thread"   // #e of a replied-to event, kinds 1 and 7, no limit
	qProfiles = "profiles" // kind 0 of 100 authors, no limit
	qSearch   = "search"   // NIP-50: two or three words in kind 1, limit 20–50
)

// queryTypes lists the mix's types in turn; search only when the relay
// (every relay, when comparing) lists NIP-50.
func queryTypes(search bool) []string {
	t := []string{qIDs, qAuthor, qAuthors, qKind, qTagE, qTagP, qTagT, qWindow, qWindowLimit, qKind0Authors,
		qHome, qNotify, qThread, qProfiles}
	if search {
		t = append(t, qSearch)
	}
	return t
}

// query is one REQ of the mix.
type query struct {
	typ    string
	filter nostr.Filter
}

// queryMix builds n REQs from the corpus, deterministically from its seed.
// Every limit is at most 500 (strfry's default cap) and every query without
// a limit matches at most about a hundred events, so relays with default
// caps are judged fairly (khatru's SQLite store returns 100 at most: the
// home feed asks it for more).
func queryMix(c *Corpus, n int, search bool) []query {
	rng := rand.New(rand.NewPCG(c.Spec.Seed^0x5eed, c.Spec.Seed+1))
	evs, pks, tags := c.Events, c.Pubkeys, hashtags()
	var eRefs []string // values of `e` tags, in corpus order
	for _, ev := range evs {
		for _, t := range ev.Tags {
			if len(t) >= 2 && t[0] == "e" {
				eRefs = append(eRefs, t[1])
			}
		}
	}
	distinctKeys := func(k int) []string {
		k = min(k, len(pks))
		out := make([]string, 0, k)
		for _, i := range rng.Perm(len(pks))[:k] {
			out = append(out, pks[i])
		}
		return out
	}
	span := int64(corpusSpan / time.Second)
	window := func(expect int) (since, until nostr.Timestamp) {
		w := max(60, span*int64(expect)/int64(len(evs)))
		w = min(w, span)
		s := c.Spec.Until - span + rng.Int64N(span-w+1)
		return nostr.Timestamp(s), nostr.Timestamp(s + w)
	}

	ws := words()
	types := queryTypes(search)
	out := make([]query, n)
	for i := range out {
		q := query{typ: types[i%len(types)]}
		f := &q.filter
		switch q.typ {
		case qIDs:
			for _, j := range rng.Perm(len(evs))[:min(20, len(evs))] {
				f.IDs = append(f.IDs, evs[j].ID)
			}
		case qAuthor:
			f.Authors, f.Limit = distinctKeys(1), 50
		case qAuthors:
			f.Authors, f.Limit = distinctKeys(10), 50
		case qKind:
			switch rng.IntN(3) {
			case 0:
				f.Kinds, f.Limit = []int{1}, 100
			case 1:
				f.Kinds, f.Limit = []int{7}, 50
			default:
				f.Kinds, f.Limit = []int{30023}, 20
			}
		case qTagE:
			v := evs[rng.IntN(len(evs))].ID
			if len(eRefs) > 0 {
				v = eRefs[rng.IntN(len(eRefs))]
			}
			f.Tags, f.Limit = nostr.TagMap{"e": {v}}, 50
		case qTagP:
			f.Tags, f.Limit = nostr.TagMap{"p": distinctKeys(1)}, 50
		case qTagT:
			f.Tags, f.Limit = nostr.TagMap{"t": {tags[skewed(rng, len(tags))]}}, 50
		case qWindow:
			s, u := window(40)
			f.Since, f.Until = &s, &u
		case qWindowLimit:
			s, u := window(1000)
			f.Since, f.Until, f.Limit = &s, &u, 20
		case qKind0Authors:
			f.Kinds, f.Authors = []int{0}, distinctKeys(50)
		case qHome:
			f.Authors = distinctKeys(300 + rng.IntN(201))
			f.Kinds, f.Limit = []int{1, 6, 7}, 100+rng.IntN(401)
		case qNotify:
			f.Tags, f.Kinds, f.Limit = nostr.TagMap{"p": distinctKeys(1)}, []int{1, 6, 7, 9735}, 100
		case qThread:
			v := evs[rng.IntN(len(evs))].ID
			if len(eRefs) > 0 {
				v = eRefs[rng.IntN(len(eRefs))]
			}
			f.Tags, f.Kinds = nostr.TagMap{"e": {v}}, []int{1, 7}
		case qProfiles:
			f.Kinds, f.Authors = []int{0}, distinctKeys(100)
		case qSearch:
			var q []string
			for _, j := range rng.Perm(len(ws))[:2+rng.IntN(2)] {
				q = append(q, ws[j])
			}
			f.Search, f.Kinds, f.Limit = strings.Join(q, " "), []int{1}, 20+rng.IntN(31)
		}
		out[i] = q
	}
	return out
}

// QueryReport is the query phase.
type QueryReport struct {
	Clients   int `json:"clients"`
	Queries   int `json:"queries"`
	Completed int `json:"completed"` // answered with EOSE
	// Failed counts REQs answered with CLOSED (by prefix) or not at all
	// ("timeout"), connections lost ("connection") and relay messages that
	// do not parse ("bad message").
	Failed     map[string]int `json:"failed,omitempty"`
	Mismatches int            `json:"mismatches"`
	// MismatchExamples is the first mismatch of each query type.
	MismatchExamples []string          `json:"mismatch_examples,omitempty"`
	Events           int               `json:"events"`
	Seconds          float64           `json:"seconds"`
	QueriesPerSecond float64           `json:"queries_per_second"`
	EventsPerSecond  float64           `json:"events_per_second"`
	EOSE             Latency           `json:"eose_latency"`
	ByType           []QueryTypeReport `json:"by_type"`
	Cost
	CPUMsPerQuery float64 `json:"relay_cpu_ms_per_query,omitempty"`
}

// QueryTypeReport is one type of REQ in the mix.
type QueryTypeReport struct {
	Type       string  `json:"type"`
	Example    string  `json:"example"` // the first filter of the type
	Queries    int     `json:"queries"`
	Events     int     `json:"events"`
	Mismatches int     `json:"mismatches"`
	EOSE       Latency `json:"eose_latency"`
}

// queryState is the query phase's shared bookkeeping.
type queryState struct {
	mix   []query
	truth *truth
	want  [][]int // by query: its expected answer, worked out before timing
	// by query: its EVENT messages, kept as received and checked after the
	// phase, so that the tool's parsing and checking take no CPU from the
	// relay while it is timed.
	answers [][][]byte
	next    atomic.Int64
	done    atomic.Int64

	mu         sync.Mutex
	lat        map[string][]time.Duration // by type
	events     map[string]int
	mismatches map[string]int
	examples   map[string]string // first mismatch by type
	failed     map[string]int
}

// query is the query phase: the mix, with its search REQs apart after it
// when so configured.
func (r *runner) query(ctx context.Context) error {
	if !r.cfg.SearchApart {
		r.rep.Query = r.runQueries(ctx, "query", queryMix(r.corpus, r.cfg.Queries, r.search))
		return nil
	}
	r.rep.Query = r.runQueries(ctx, "query", queryMix(r.corpus, r.cfg.Queries, false))
	if !r.search || ctx.Err() != nil {
		return nil
	}
	// The search REQs the mix would have held: as many, the same filters.
	var searches []query
	for _, q := range queryMix(r.corpus, r.cfg.Queries, true) {
		if q.typ == qSearch {
			searches = append(searches, q)
		}
	}
	if len(searches) > 0 {
		r.rep.Search = r.runQueries(ctx, "search", searches)
	}
	return nil
}

// runQueries sends the REQs of mix from the configured clients, checks
// every answer and reports, as phase name.
func (r *runner) runQueries(ctx context.Context, name string, mix []query) *QueryReport {
	r.mu.Lock()
	stored, unknown := r.stored, r.unknown
	r.mu.Unlock()
	s := &queryState{
		mix:        mix,
		truth:      newTruth(r.corpus, stored, unknown),
		lat:        map[string][]time.Duration{},
		events:     map[string]int{},
		mismatches: map[string]int{},
		examples:   map[string]string{},
		failed:     map[string]int{},
	}
	s.want = make([][]int, len(s.mix))
	s.answers = make([][][]byte, len(s.mix))
	for i := range s.mix {
		s.want[i] = s.truth.expected(&s.mix[i].filter, nil)
	}
	r.prog.set(name, func() string {
		return fmt.Sprintf("%d/%d queries answered", s.done.Load(), len(s.mix))
	})

	m := r.meter()
	start := time.Now()
	var wg sync.WaitGroup
	for k := range r.cfg.Conns {
		wg.Go(func() { r.queryClient(ctx, s, r.cfg.nodeURL(k)) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := &QueryReport{
		Clients: r.cfg.Conns,
		Queries: len(s.mix),
		Failed:  nonEmpty(s.failed),
		Seconds: elapsed.Round(time.Millisecond).Seconds(),
	}
	rep.Cost = m.done(name)
	s.checkAnswers()
	var all []time.Duration
	for _, q := range s.mix {
		// The first query of each type stands for its type.
		if !hasType(rep.ByType, q.typ) {
			ex, _ := q.filter.MarshalJSON()
			lat := s.lat[q.typ]
			all = append(all, lat...)
			rep.ByType = append(rep.ByType, QueryTypeReport{
				Type: q.typ, Example: string(ex), Queries: len(lat),
				Events: s.events[q.typ], Mismatches: s.mismatches[q.typ], EOSE: summarize(lat),
			})
			rep.Completed += len(lat)
			rep.Events += s.events[q.typ]
			rep.Mismatches += s.mismatches[q.typ]
			if ex, ok := s.examples[q.typ]; ok {
				rep.MismatchExamples = append(rep.MismatchExamples, ex)
			}
		}
	}
	rep.EOSE = summarize(all)
	rep.QueriesPerSecond = perSecond(rep.Completed, elapsed)
	rep.EventsPerSecond = perSecond(rep.Events, elapsed)
	if rep.Relay != nil && rep.Completed > 0 {
		rep.CPUMsPerQuery = round3(rep.Relay.CPUSeconds * 1000 / float64(rep.Completed))
	}
	return rep
}

func hasType(l []QueryTypeReport, typ string) bool {
	for _, t := range l {
		if t.Type == typ {
			return true
		}
	}
	return false
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

// queryClient runs queries of the mix one after another on one connection
// to url, taking the next one left; a lost connection is dialled again.
func (r *runner) queryClient(ctx context.Context, s *queryState, url string) {
	var ws *websocket.Conn
	defer func() {
		if ws != nil {
			ws.CloseNow() //nolint:errcheck // the phase is over for it
		}
	}()
	for ctx.Err() == nil {
		i := int(s.next.Add(1) - 1)
		if i >= len(s.mix) {
			return
		}
		if ws == nil {
			var err error
			if ws, err = dial(ctx, url); err != nil {
				s.fail("connection")
				continue
			}
		}
		if !r.runQuery(ctx, ws, s, i) {
			ws.CloseNow() //nolint:errcheck // replaced by a new connection
			ws = nil
		}
		s.done.Add(1)
	}
}

// checkAnswers parses and checks every answer received, after the phase,
// counting mismatches by type; an EVENT message that does not parse is one.
func (s *queryState) checkAnswers() {
	for i, msgs := range s.answers {
		if msgs == nil {
			continue // not answered: counted among the failures
		}
		q := s.mix[i]
		got := make([]*nostr.Event, 0, len(msgs))
		why := ""
		for _, data := range msgs {
			m, err := parseRelayMsg(data)
			if err != nil {
				why = err.Error()
				break
			}
			got = append(got, m.event)
		}
		if why == "" {
			why = s.truth.checkWith(&q.filter, got, s.want[i])
		}
		if why != "" {
			s.mismatches[q.typ]++
			if _, ok := s.examples[q.typ]; !ok {
				fj, _ := json.Marshal(q.filter)
				s.examples[q.typ] = fmt.Sprintf("%s %s: %s", q.typ, fj, why)
			}
		}
		s.answers[i] = nil
	}
}

// readInto reads the next message into dst (reused between messages):
// Conn.Read allocates a fresh, growing buffer for every message, which
// made most of the tool's CPU in the query phase.
func readInto(ctx context.Context, ws *websocket.Conn, dst []byte) ([]byte, error) {
	_, r, err := ws.Reader(ctx)
	if err != nil {
		return dst, err
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func (s *queryState) fail(why string) {
	s.mu.Lock()
	s.failed[why]++
	s.mu.Unlock()
}

// runQuery sends query i, reads its stored events up to EOSE, closes the
// subscription and checks the answer. It reports whether the connection is
// still usable.
func (r *runner) runQuery(ctx context.Context, ws *websocket.Conn, s *queryState, i int) bool {
	q := s.mix[i]
	sub := "q" + strconv.Itoa(i)
	req, err := reqMessage(sub, q.filter)
	if err != nil {
		s.fail("encode")
		return true
	}
	// Read closes the connection when its context ends, so a timeout costs
	// the connection; the caller dials a new one.
	qctx, cancel := context.WithTimeout(ctx, r.cfg.Wait)
	defer cancel()
	start := time.Now()
	if err := ws.Write(qctx, websocket.MessageText, req); err != nil {
		s.fail("connection")
		return false
	}
	var arena, buf []byte // the answer's EVENT messages, back to back; one message
	var lens []int        // their lengths
	for {
		data, err := readInto(qctx, ws, buf[:0])
		buf = data
		if err != nil {
			if qctx.Err() != nil && ctx.Err() == nil {
				s.fail("timeout")
			} else if ctx.Err() == nil {
				s.fail("connection")
			}
			return false
		}
		if evSub, ok := eventSub(data); ok {
			if evSub == sub {
				// Kept to be parsed and checked after the phase.
				arena = append(arena, data...)
				lens = append(lens, len(data))
			}
			continue
		}
		m, err := parseRelayMsg(data)
		if err != nil {
			s.fail("bad message")
			continue
		}
		if m.sub != sub {
			continue // NOTICEs, and late events of an earlier query
		}
		if m.label == "CLOSED" {
			s.fail("CLOSED " + reasonPrefix(m.reason))
			return true
		}
		if m.label == "EOSE" {
			break
		}
	}
	took := time.Since(start)
	if err := ws.Write(qctx, websocket.MessageText, closeMessage(sub)); err != nil {
		s.fail("connection")
		return false
	}

	got := make([][]byte, len(lens)) // answered, maybe with nothing: nil is for unanswered
	off := 0
	for k, n := range lens {
		got[k] = arena[off : off+n : off+n]
		off += n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[q.typ] = append(s.lat[q.typ], took)
	s.events[q.typ] += len(got)
	s.answers[i] = got
	return true
}
