package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/internal/progress"
	"github.com/wisp-relay/wisp/relay"
)

const importUsage = `Usage: wisp import [--no-verify] [--show-rejected] [file]

Reads events as JSON lines (one event per line, as wisp export, strfry
export and nostream write) from file, or from standard input when file is
missing or -, and stores them. Each event passes the relay's checks, its
signature is verified (unless --no-verify: only for files you trust) and
the write policy judges it with source import, as for a client's EVENT.
Events are stored in large batches. A bad line never stops the import; at
the end wisp prints how many events were stored, duplicate (already
stored), rejected (invalid, refused by policy) and malformed (not an
event). The first 10 bad lines are described with their numbers and
reasons; --show-rejected describes them all. The relay may keep running
on the same database, and its subscribers get the imported events live.

  wisp import all.jsonl
  zcat dump.jsonl.gz | wisp import
`

// importBatch is the write batch of an import: larger than a serving
// relay's, since nobody waits for an OK.
const importBatch = 5000

// maxProblems is how many bad lines are described one by one.
const maxProblems = 10

// importCounts are the figures of an import.
type importCounts struct {
	lines, malformed atomic.Int64
	relay.IngestTally
}

// runImport is "wisp import".
func runImport(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlags("import")
	noVerify := fs.Bool("no-verify", false, "do not check signatures")
	showRejected := fs.Bool("show-rejected", false, "describe every bad line, not only the first ones")
	positional, err := parseFlags(fs, args)
	if err != nil || positional == nil {
		return helpOr(err, stdout, importUsage)
	}
	if len(positional) > 1 {
		return &usageError{"import", fmt.Sprintf("import: want one file, got %q", positional)}
	}
	shown := maxProblems
	if *showRejected {
		shown = math.MaxInt
	}
	src := stdin
	if src == nil { // a caller without standard input: nothing to read
		src = strings.NewReader("")
	}
	name := "standard input"
	if len(positional) == 1 && positional[0] != "-" {
		f, err := os.Open(positional[0])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		src, name = f, positional[0]
	}
	// The size of a file (or of standard input redirected from one) is
	// what the progress line counts towards.
	var size int64
	if f, ok := src.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	read := &countingReader{r: src}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	local, err := openLocal(ctx, cfg, stderr, func(rc *relay.Config) {
		rc.WriteBatchMax = max(rc.WriteBatchMax, importBatch)
		rc.WriteQueue = max(rc.WriteQueue, 2*importBatch)
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := local.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	var c importCounts
	var problems sync.Mutex
	nproblems := 0
	problem := func(line int64, why string) {
		problems.Lock()
		defer problems.Unlock()
		nproblems++
		if nproblems <= shown {
			fmt.Fprintf(stderr, "%s:%d: %s\n", name, line, why)
		}
	}
	prog := progress.New(stderr)
	show := func() {
		el := prog.Elapsed()
		done := ""
		if of := progress.Of(read.n.Load(), size, el); of != "" {
			done = of + ": "
		}
		prog.Update("%s%d lines: %d stored, %d duplicate, %d rejected, %d malformed (%.0f lines/s, %s)",
			done, c.lines.Load(), c.Stored.Load(), c.Duplicate.Load(), c.Rejected.Load(), c.malformed.Load(),
			progress.Rate(c.lines.Load(), el), el.Round(time.Second))
	}
	var pending sync.WaitGroup
	lim := cfg.limits()
	opt := relay.IngestOptions{Source: wisp.SourceImport, NoVerify: *noVerify}
	readErr := eachLine(ctx, read, lim.MaxMessageBytes, func(n int64, line []byte, tooLong bool) {
		c.lines.Add(1)
		if tooLong {
			c.malformed.Add(1)
			problem(n, "malformed: line too long")
			return
		}
		ev, err := relay.ParseEvent(line, lim)
		if err != nil {
			c.malformed.Add(1)
			problem(n, err.Error())
			return
		}
		pending.Add(1)
		local.relay.Ingest(ctx, ev, opt, func(r relay.IngestResult) {
			defer pending.Done()
			c.Count(r)
			if r.Outcome == relay.IngestRejected {
				problem(n, r.Reason)
			}
		})
		show()
	})
	pending.Wait()
	prog.Stop()
	if readErr == nil {
		// Closing the store completes its search index, which after a big
		// import is long work of its own: done here, with its progress.
		if err := local.store.finishLoad(ctx, stderr); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if nproblems > shown {
		fmt.Fprintf(stderr, "... and %d more bad lines (--show-rejected shows them all)\n", nproblems-shown)
	}
	took := prog.Elapsed()
	fmt.Fprintf(stdout, "imported %s in %s: %d stored, %d duplicate, %d rejected, %d malformed (%.0f lines/s)\n",
		name, took.Round(time.Millisecond), c.Stored.Load(), c.Duplicate.Load(), c.Rejected.Load(), c.malformed.Load(),
		progress.Rate(c.lines.Load(), took))
	if readErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("import interrupted after %d lines; what was read is stored", c.lines.Load())
		}
		return fmt.Errorf("import: read %s: %w", name, readErr)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// eachLine calls fn with every non-blank line of r (without its newline),
// numbered from 1; a line longer than maxLen is reported with tooLong and
// skipped. It stops when ctx is done.
func eachLine(ctx context.Context, r io.Reader, maxLen int, fn func(n int64, line []byte, tooLong bool)) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var n int64
	var long []byte
	tooLong := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong {
				long = append(long, chunk...)
				if len(long) > maxLen {
					tooLong, long = true, nil
				}
			}
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return err
		}
		line := chunk
		if long != nil || tooLong {
			line = append(long, chunk...)
		}
		if len(line) > 0 || err == nil {
			n++
			trimmed := bytes.TrimSpace(line)
			switch {
			case tooLong || len(trimmed) > maxLen:
				fn(n, nil, true)
			case len(trimmed) > 0:
				fn(n, trimmed, false)
			}
		}
		long, tooLong = nil, false
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}
