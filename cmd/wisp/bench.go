package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wisp-relay/wisp/bench"
	"github.com/wisp-relay/wisp/internal/progress"
)

const benchUsage = `Usage: wisp bench [flags] <ws-url> [<ws-url>...]
       wisp bench [flags] --compare NAME=URL,NAME=URL...

Measures a Nostr relay (wisp or any other) over websockets: ingest,
duplicates, queries (every answer checked), live fan-out and idle
connections. Point it at an empty relay; with --pid (the relay's process id,
same machine) it also reports the relay's CPU time, disk writes and memory.
The signed corpus is cached, so only the first run with a seed signs it.

Several URLs are the nodes of one relay (wisp serve processes on one
database): every phase spreads its connections over them in turn, and the
fan-out phase publishes each event on one node and reports, besides the
whole, the deliveries to subscribers on the other nodes: latency from
publish to receipt, missing deliveries and doubled ones (an event twice on
one subscription). --pid, and the process found in a comparison, are of
the first URL's node only.

--compare runs the same workload against several relays in one run, one
relay after the other in the order given, and prints a table with a column
per relay and the ratios of the first relay's figures to the others'. Start
every relay fresh, on an empty database of its own, before the run (the
tool warns about one that already holds events); each relay's process is
found from the port it listens on, for its CPU, disk and memory figures.
NAME heads the relay's column (a bare URL is named by its host:port); the
flag may be repeated. URL may be several joined by "+", the nodes of one
relay (NAME=ws://a+ws://b+ws://c). Search is in the query mix only when
every relay lists NIP-50; otherwise the relays that list it answer the
mix's search REQs apart, after it ("search apart" figures).

Flags:
`

// targetList is --compare: relays to compare, from comma-separated lists
// and repeated flags.
type targetList []bench.Target

func (l *targetList) String() string {
	var parts []string
	for _, t := range *l {
		parts = append(parts, t.Name+"="+t.URL)
	}
	return strings.Join(parts, ",")
}

func (l *targetList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		t, err := bench.ParseTarget(part)
		if err != nil {
			return err
		}
		*l = append(*l, t)
	}
	return nil
}

// runBench is `wisp bench`: the load tool, pointed at any relay.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := bench.DefaultConfig("")
	fs := flag.NewFlagSet("wisp bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage and errors are printed by us, once
	phases := fs.String("phases", strings.Join(bench.Phases(), ","), "phases to run, comma-separated: `list` of "+strings.Join(bench.AllPhases(), ",")+" ("+bench.PhaseHostile+" only when named)")
	events := fs.Int("events", def.Corpus.Events, "corpus `size` in events")
	keys := fs.Int("keys", def.Corpus.Keys, "corpus authors (`n` keys)")
	seed := fs.Uint64("seed", def.Corpus.Seed, "corpus `seed`; the same seed gives the same events")
	until := fs.Int64("until", 0, "corpus end in Unix `seconds`; 0: the start of today (UTC)")
	corpusDir := fs.String("corpus-dir", "", "where signed corpora are cached (`dir`); default: the user cache directory/wisp-bench")
	conns := fs.Int("conns", def.Conns, "ingest connections and query clients (`n`)")
	inFlight := fs.Int("in-flight", def.InFlight, "EVENTs awaiting OK per ingest connection (`n`)")
	dups := fs.Int("duplicates", def.Duplicates, "stored events re-sent after ingest (`n`)")
	queries := fs.Int("queries", def.Queries, "REQs in the query mix (`n`)")
	fanSubs := fs.Int("fanout-subs", def.FanoutSubs, "fan-out subscribers (`n`)")
	fanEvents := fs.Int("fanout-events", def.FanoutN, "fan-out events published (`n`)")
	fanRate := fs.Float64("fanout-rate", def.FanoutRate, "fan-out events per second (`rate`)")
	idle := fs.Int("idle-conns", def.IdleConns, "idle connections, one subscription each (`n`)")
	hostile := fs.Int("hostile-conns", def.HostileConns, "connections of each hostile attack, which never read (`n`)")
	hostileSubs := fs.Int("hostile-subs", def.HostileSubs, "subscriptions each connection of the subs attack opens (`n`)")
	hostileHold := fs.Duration("hostile-hold", def.HostileHold, "how long each attack's connections are held (`duration`)")
	hostileRelease := fs.Duration("hostile-release", def.HostileRelease, "how long the relay's memory is watched after they close (`duration`)")
	wait := fs.Duration("wait", def.Wait, "longest wait for one OK, EOSE or delivery (`duration`)")
	limit := fs.Duration("phase-limit", def.PhaseLimit, "longest time any phase may run (`duration`)")
	pid := fs.Int("pid", 0, "relay process id, for its CPU, disk writes and memory (`pid`)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var compare targetList
	fs.Var(&compare, "compare", "relays to compare in one run, `NAME=URL,...` (repeatable; see above)")

	// Flags may come before and after the URL.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return printBenchUsage(stdout, fs)
			}
			return &usageError{"bench", "bench: " + err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(compare) > 0 && len(positional) > 0:
		return &usageError{"bench", "bench takes either a relay URL or --compare, not both"}
	case len(compare) == 1:
		return &usageError{"bench", "bench --compare needs at least two relays"}
	case len(compare) > 0 && *pid != 0:
		return &usageError{"bench", "bench --compare finds each relay's process by its port; --pid is for one relay"}
	case len(compare) == 0 && len(positional) == 0:
		return &usageError{"bench", "bench takes a relay URL (or several, the nodes of one relay)"}
	}

	cfg := def
	if len(positional) > 0 {
		cfg.URL, cfg.Nodes = positional[0], positional[1:]
	}
	cfg.Phases = nil
	for p := range strings.SplitSeq(*phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases = append(cfg.Phases, p)
		}
	}
	cfg.Corpus = bench.CorpusSpec{Seed: *seed, Events: *events, Keys: *keys, Until: *until}
	if cfg.Corpus.Until == 0 {
		// The start of the day keeps the corpus "the last 30 days" while
		// reruns on the same day find it in the cache.
		cfg.Corpus.Until = time.Now().UTC().Truncate(24 * time.Hour).Unix()
	}
	cfg.CorpusDir = *corpusDir
	if cfg.CorpusDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		cfg.CorpusDir = filepath.Join(dir, "wisp-bench")
	}
	cfg.Conns, cfg.InFlight, cfg.Duplicates, cfg.Queries = *conns, *inFlight, *dups, *queries
	cfg.FanoutSubs, cfg.FanoutN, cfg.FanoutRate = *fanSubs, *fanEvents, *fanRate
	cfg.IdleConns, cfg.Wait, cfg.PhaseLimit, cfg.PID = *idle, *wait, *limit, *pid
	cfg.HostileConns, cfg.HostileSubs, cfg.HostileHold, cfg.HostileRelease = *hostile, *hostileSubs, *hostileHold, *hostileRelease
	cfg.ToolVersion = versionString()
	if progress.IsTerminal(stderr) {
		cfg.Progress = stderr
	}

	if len(compare) > 0 {
		cfg.URL, cfg.Nodes = compare[0].URL, compare[0].Nodes // validated as every run's
		cmp, err := bench.RunCompare(ctx, cfg, compare)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if *asJSON {
			return bench.WriteJSON(stdout, cmp)
		}
		return bench.WriteCompareText(stdout, cmp)
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if *asJSON {
		return bench.WriteJSON(stdout, rep)
	}
	return bench.WriteText(stdout, rep)
}

func printBenchUsage(w io.Writer, fs *flag.FlagSet) error {
	fs.SetOutput(w)
	defer fs.SetOutput(io.Discard)
	if _, err := fmt.Fprint(w, benchUsage); err != nil {
		return err
	}
	fs.PrintDefaults()
	return nil
}
