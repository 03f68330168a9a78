// Package bench is wisp's load tool. It measures any Nostr relay over
// websockets only, the way clients see it: it never reaches into a relay
// (it imports none of wisp's relay or storage code), so the same run
// compares wisp with strfry, khatru or anything else that speaks NIP-01.
//
// A run pre-signs a deterministic corpus (cached on disk), then goes
// through the phases ingest, query, fanout and idle; each is bounded in
// time. With the relay's process id it also reads the relay's CPU time,
// disk writes and memory from /proc.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wisp-relay/wisp/internal/progress"
)

// The phases, in the order they run.
const (
	PhaseIngest = "ingest"
	PhaseQuery  = "query"
	PhaseFanout = "fanout"
	PhaseIdle   = "idle"
)

// PhaseHostile runs only when asked for (hostile.go): it measures what
// connections that never read make the relay hold, not its speed.
const PhaseHostile = "hostile"

// Phases lists the phases a run goes through by default, in running order.
func Phases() []string { return []string{PhaseIngest, PhaseQuery, PhaseFanout, PhaseIdle} }

// AllPhases lists every phase in running order, those run only when asked
// for included.
func AllPhases() []string { return append(Phases(), PhaseHostile) }

// Config is one run of the tool. DefaultConfig gives the workload.
type Config struct {
	URL string // ws:// or wss:// URL of the relay
	// Nodes are more URLs of the same relay: its other nodes, which share
	// its database and live stream. Connections are spread over URL and
	// Nodes in turn, and the fan-out phase measures delivery across nodes.
	Nodes  []string
	Phases []string // phases to run; they always run in Phases() order

	Corpus    CorpusSpec
	CorpusDir string // cache of signed corpora; empty: no cache

	Conns      int     // ingest connections and concurrent query clients
	InFlight   int     // EVENTs awaiting their OK per ingest connection
	Duplicates int     // stored events re-sent after ingest
	Queries    int     // REQs in the query mix
	FanoutSubs int     // fan-out subscribers
	FanoutN    int     // events published in the fan-out phase
	FanoutRate float64 // fan-out events per second
	IdleConns  int     // idle connections, each with one subscription
	// HostileConns are the connections of each hostile attack, held for
	// HostileHold; the relay's memory is then watched for HostileRelease.
	HostileConns   int
	HostileSubs    int // subscriptions each connection of the subs attack opens
	HostileHold    time.Duration
	HostileRelease time.Duration
	Wait           time.Duration // longest wait for one answer (OK, EOSE, delivery)
	PhaseLimit     time.Duration // longest any phase may run

	PID int // relay process for CPU, disk and memory figures; 0: none

	// SearchApart leaves NIP-50 search out of the query mix, which otherwise
	// has it when the relay lists NIP-50, and times the mix's search REQs on
	// their own after it (Report.Search), if the relay lists NIP-50. A
	// comparison sets it unless every relay lists NIP-50, so that all answer
	// the same mix and the relays that search are still measured on it.
	SearchApart bool

	ToolVersion string    // who is measuring, for the report
	Progress    io.Writer // progress lines (a terminal); nil: none
}

// DefaultConfig is the workload of issue 3 for url, without a corpus end
// (set Corpus.Until) or cache directory.
func DefaultConfig(url string) Config {
	return Config{
		URL:            url,
		Phases:         Phases(),
		Corpus:         CorpusSpec{Seed: 1, Events: 20000, Keys: 500},
		Conns:          8,
		InFlight:       50,
		Duplicates:     2000,
		Queries:        4000,
		FanoutSubs:     200,
		FanoutN:        1000,
		FanoutRate:     200,
		IdleConns:      2000,
		HostileConns:   40,
		HostileSubs:    50,
		HostileHold:    5 * time.Second,
		HostileRelease: 20 * time.Second,
		Wait:           15 * time.Second,
		PhaseLimit:     5 * time.Minute,
	}
}

func (c *Config) validate() error {
	for _, u := range c.urls() {
		if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			return fmt.Errorf("relay url %q must start with ws:// or wss://", u)
		}
	}
	if len(c.Phases) == 0 {
		return errors.New("no phase to run")
	}
	for _, p := range c.Phases {
		if !slices.Contains(AllPhases(), p) {
			return fmt.Errorf("unknown phase %q (phases: %s)", p, strings.Join(AllPhases(), ","))
		}
	}
	positive := []struct {
		name string
		v    int
	}{
		{"connections", c.Conns}, {"events in flight", c.InFlight}, {"queries", c.Queries},
		{"fan-out subscribers", c.FanoutSubs}, {"fan-out events", c.FanoutN}, {"idle connections", c.IdleConns},
		{"hostile connections", c.HostileConns}, {"hostile subscriptions", c.HostileSubs},
	}
	for _, p := range positive {
		if p.v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", p.name, p.v)
		}
	}
	switch {
	case c.Duplicates < 0:
		return fmt.Errorf("duplicates must not be negative, got %d", c.Duplicates)
	case c.FanoutRate <= 0:
		return fmt.Errorf("fan-out rate must be positive, got %g", c.FanoutRate)
	case c.Wait <= 0 || c.PhaseLimit <= 0:
		return errors.New("timeouts must be positive")
	}
	return c.Corpus.validate()
}

func (c *Config) runs(phase string) bool { return slices.Contains(c.Phases, phase) }

// urls are the relay's nodes: URL, then Nodes.
func (c *Config) urls() []string { return append([]string{c.URL}, c.Nodes...) }

// nodeURL is the node connection k of a phase goes to: the nodes in turn,
// so that every phase loads each node alike.
func (c *Config) nodeURL(k int) string {
	if k%(len(c.Nodes)+1) == 0 {
		return c.URL
	}
	return c.Nodes[k%(len(c.Nodes)+1)-1]
}

// Report is the result of a run; its JSON form is what --json prints.
type Report struct {
	URL      string         `json:"url"`
	Nodes    []string       `json:"nodes,omitempty"` // the relay's other URLs
	Relay    RelayInfo      `json:"relay"`
	Tool     ToolInfo       `json:"tool"`
	Corpus   CorpusInfo     `json:"corpus"`
	PID      int            `json:"pid,omitempty"`
	Ingest   *IngestReport  `json:"ingest,omitempty"`
	Query    *QueryReport   `json:"query,omitempty"`
	Search   *QueryReport   `json:"search,omitempty"` // with Config.SearchApart
	Fanout   *FanoutReport  `json:"fanout,omitempty"`
	Idle     *IdleReport    `json:"idle,omitempty"`
	Hostile  *HostileReport `json:"hostile,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// ToolInfo describes the measuring side.
type ToolInfo struct {
	Version    string `json:"version,omitempty"`
	GoVersion  string `json:"go_version"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// CorpusInfo describes the corpus of the run.
type CorpusInfo struct {
	Seed           uint64      `json:"seed"`
	Events         int         `json:"events"`
	Keys           int         `json:"keys"`
	Until          int64       `json:"until"`
	Kinds          map[int]int `json:"kinds"`
	Cached         bool        `json:"cached"`
	CacheDir       string      `json:"cache_dir,omitempty"`
	PrepareSeconds float64     `json:"prepare_seconds"`
}

// runner carries one run's shared pieces between phases.
type runner struct {
	cfg    Config
	corpus *Corpus
	rep    *Report
	prog   *phaseLine
	search bool // the relay lists NIP-50: search is measured

	mu       sync.Mutex
	warnings []string
	// stored and unknown are, after ingest, which corpus events the relay
	// kept and which it never answered (nil: assume all kept, when ingest
	// did not run).
	stored, unknown []bool
}

func (r *runner) warn(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(r.warnings, msg) {
		r.warnings = append(r.warnings, msg)
	}
}

// Run prepares the corpus and runs the configured phases against the relay.
// Problems of the relay (refusals, timeouts, wrong answers) are measured and
// reported; Run fails only when it cannot measure at all.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{
		cfg:  cfg,
		prog: &phaseLine{Line: progress.New(cfg.Progress)},
		rep: &Report{
			URL:   cfg.URL,
			Nodes: cfg.Nodes,
			PID:   cfg.PID,
			Tool: ToolInfo{
				Version:    cfg.ToolVersion,
				GoVersion:  runtime.Version(),
				CPUs:       runtime.NumCPU(),
				GOMAXPROCS: runtime.GOMAXPROCS(0),
			},
		},
	}
	defer r.prog.Stop()

	// Every phase needs the relay; fail at once and clearly,
	// before signing a corpus, if it is not there.
	for _, u := range cfg.urls() {
		ws, err := dial(ctx, u)
		if err != nil {
			return nil, err
		}
		ws.CloseNow() //nolint:errcheck // only a reachability check
	}
	if cfg.PID != 0 && len(cfg.Nodes) > 0 {
		r.warn("relay CPU, disk and memory figures are of process %d (%s) only, not of the other nodes", cfg.PID, cfg.URL)
	}

	if info, err := fetchInfo(ctx, cfg.URL); err != nil {
		r.warn("no relay information (NIP-11): %v", err)
	} else {
		r.rep.Relay = info
	}
	r.search = r.rep.Relay.supports(50)
	if cfg.PID != 0 {
		if _, err := readProc(cfg.PID); err != nil {
			return nil, fmt.Errorf("relay process %d: %w", cfg.PID, err)
		}
	}
	r.checkOpenFiles()
	if cfg.runs(PhaseIngest) {
		r.checkEmpty(ctx)
	}

	r.prog.set("corpus", func() string { return "preparing (signing on first use)" })
	start := time.Now()
	corpus, cached, err := LoadCorpus(ctx, cfg.Corpus, cfg.CorpusDir)
	if err != nil {
		return nil, fmt.Errorf("prepare corpus: %w", err)
	}
	r.corpus = corpus
	r.rep.Corpus = CorpusInfo{
		Seed: cfg.Corpus.Seed, Events: cfg.Corpus.Events, Keys: cfg.Corpus.Keys, Until: cfg.Corpus.Until,
		Kinds: corpus.kindCounts(), Cached: cached, CacheDir: cfg.CorpusDir,
		PrepareSeconds: time.Since(start).Round(time.Millisecond).Seconds(),
	}

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{PhaseIngest, r.ingest},
		{PhaseQuery, r.query},
		{PhaseFanout, r.fanout},
		{PhaseIdle, r.idle},
		{PhaseHostile, r.hostile},
	}
	for _, s := range steps {
		if !cfg.runs(s.name) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.PhaseLimit)
		err := s.run(pctx)
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", s.name, ctx.Err())
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if timedOut {
			r.warn("%s: stopped at the phase limit of %s; its figures cover what finished", s.name, cfg.PhaseLimit)
		}
	}
	r.rep.Warnings = r.warnings
	return r.rep, nil
}

// checkEmpty warns when the relay already holds events: every figure
// assumes it starts empty (stored events turn the corpus into duplicates,
// and a comparison is fair only when every relay starts alike).
func (r *runner) checkEmpty(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Wait)
	defer cancel()
	ws, err := dial(ctx, r.cfg.URL)
	if err != nil {
		r.warn("could not check that the relay is empty: %v", err)
		return
	}
	defer ws.CloseNow() //nolint:errcheck // a one-off check
	if err := ws.Write(ctx, websocket.MessageText, []byte(`["REQ","empty",{"limit":1}]`)); err != nil {
		r.warn("could not check that the relay is empty: %v", err)
		return
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			r.warn("could not check that the relay is empty: %v", err)
			return
		}
		if sub, ok := eventSub(data); ok && sub == "empty" {
			r.warn("the relay held events before the run: start it on an empty database")
			return
		}
		if m, err := parseRelayMsg(data); err == nil && m.sub == "empty" {
			return // EOSE or CLOSED with nothing before it
		}
	}
}

// checkOpenFiles raises this process' open file limit for the phases' many
// sockets, and warns when this process or the relay cannot hold them.
func (r *runner) checkOpenFiles() {
	need := uint64(r.cfg.Conns + 16)
	if r.cfg.runs(PhaseFanout) {
		need = max(need, uint64(r.cfg.FanoutSubs+16))
	}
	if r.cfg.runs(PhaseIdle) {
		need = max(need, uint64(r.cfg.IdleConns+16))
	}
	if r.cfg.runs(PhaseHostile) {
		need = max(need, uint64(r.cfg.HostileConns+16))
	}
	got, err := raiseOpenFiles(need)
	if err != nil {
		r.warn("%v", err)
	}
	if got < need {
		r.warn("this process may open only %d files but needs about %d: raise the hard limit (ulimit -Hn) or expect failed connections", got, need)
	}
	if r.cfg.PID != 0 {
		relayLim, err := openFileLimit(r.cfg.PID)
		switch {
		case err != nil:
			r.warn("%v", err)
		case relayLim >= 0 && uint64(relayLim) < need:
			r.warn("the relay may open only %d files but will be asked for about %d connections: raise its ulimit -n", relayLim, need)
		}
	}
}

// usageMeter samples the relay process (with --pid), this one and the
// whole machine around a phase. On a small machine the tool's CPU is CPU
// the relay lacks, and other busy processes disturb the figures: both are
// reported so that a reader can tell.
type usageMeter struct {
	r          *runner
	start      time.Time
	before     procSample
	ok         bool
	toolTicks  int64
	busyTicks  int64
	busyTicked bool
}

// Cost is what a phase cost the machine, in every phase's report.
type Cost struct {
	Relay          *Usage  `json:"relay,omitempty"`  // with --pid
	ToolCPUSeconds float64 `json:"tool_cpu_seconds"` // this tool
	// OtherCPUSeconds is everything else on the machine (the relay too,
	// without --pid): a busy neighbour disturbs the figures.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
}

func (r *runner) meter() *usageMeter {
	m := &usageMeter{r: r, start: time.Now(), toolTicks: selfTicks()}
	m.busyTicks, m.busyTicked = machineBusyTicks()
	if r.cfg.PID == 0 {
		return m
	}
	s, err := readProc(r.cfg.PID)
	if err != nil {
		r.warn("relay usage: %v", err)
		return m
	}
	m.before, m.ok = s, true
	return m
}

// done returns what the phase cost since meter, and warns when other
// processes took a noticeable share of the machine.
func (m *usageMeter) done(phase string) Cost {
	c := Cost{ToolCPUSeconds: float64(selfTicks()-m.toolTicks) / userHZ}
	if m.ok {
		if s, err := readProc(m.r.cfg.PID); err != nil {
			m.r.warn("relay usage: %v", err)
		} else {
			c.Relay = s.usageSince(m.before)
		}
	}
	busy, ok := machineBusyTicks()
	if !ok || !m.busyTicked {
		return c
	}
	other := float64(busy-m.busyTicks)/userHZ - c.ToolCPUSeconds
	if c.Relay != nil {
		other -= c.Relay.CPUSeconds
	}
	c.OtherCPUSeconds = max(0, round1(other*100)/100)
	capacity := time.Since(m.start).Seconds() * float64(runtime.NumCPU())
	if m.r.cfg.PID != 0 && capacity > 0 && c.OtherCPUSeconds > max(otherShare*capacity, tickNoise) {
		m.r.warn("%s: other processes used %.2f of %.2f CPU-seconds of the machine: the figures are disturbed", phase, c.OtherCPUSeconds, capacity)
	}
	return c
}

// otherShare is the share of the machine's CPU other processes may take
// during a phase before the run is flagged as disturbed.
const otherShare = 0.10

// tickNoise is the error of "other" CPU: it is the difference of three
// counters read in clock ticks (10 ms), so a phase of a tenth of a second
// would be flagged for a tick or two of nothing.
const tickNoise = 0.05

// selfTicks is this process' CPU time so far, 0 where /proc is missing.
func selfTicks() int64 {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	t, err := parseStatCPU(stat)
	if err != nil {
		return 0
	}
	return t
}

// machineBusyTicks is the machine's busy CPU time so far, all CPUs, from
// /proc/stat.
func machineBusyTicks() (int64, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	t, err := parseMachineBusy(data)
	return t, err == nil
}

// relayRSS reads the relay's resident memory in KiB (0 without --pid).
func (r *runner) relayRSS() int64 {
	if r.cfg.PID == 0 {
		return 0
	}
	s, err := readProc(r.cfg.PID)
	if err != nil {
		r.warn("relay memory: %v", err)
		return 0
	}
	return s.rssKiB
}

// phaseLine is the run's status line: the phase, then what it says.
type phaseLine struct{ *progress.Line }

// set shows line's result under name until the next set.
func (p *phaseLine) set(name string, line func() string) {
	p.Show(func() string { return name + ": " + line() })
}
