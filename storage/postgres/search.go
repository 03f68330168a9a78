package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/unicode61"
)

// NIP-50 search on PostgreSQL's full-text search: events.search is a
// tsvector of the content of the events of the kinds in search_kinds, with a
// GIN index, matched with @@ and ranked with ts_rank.
//
// The vector is built here, not by to_tsvector: its words are those of
// unicode61.Words, the tokenizer the SQLite engine's index uses (and its
// matcher of live events), so that a search
// finds the same events on both engines and live. PostgreSQL's own parser
// splits differently (it keeps URLs, e-mail addresses, hyphenated words and
// numbers such as 1.5 whole, and its letters depend on the locale).
// The words are written as a tsvector literal (each word quoted, with its
// positions), which PostgreSQL stores as it is: no stemming, no stop words.

var _ storage.Searcher = (*Store)(nil)

// maxSearchCandidates bounds the work of one search filter: relevance is
// ranked among at most this many matches, the most recently stored first
// (as the SQLite engine does).
const maxSearchCandidates = 10000

// rankNormalization is ts_rank's normalization: 1 divides the rank by
// 1 + the logarithm of the content's length in words, so that among
// contents holding a word as often, the shorter ranks first.
const rankNormalization = 1

// Limits of a tsvector (PostgreSQL's tsvector.h): a lexeme has fewer than
// 2 KiB, at most 256 positions, each at most 16383, and all lexemes together
// fewer than 1 MiB.
const (
	maxLexemeBytes  = 200 // longer words are stored hashed (see lexeme)
	maxPositions    = 256
	maxPosition     = 16383
	maxVectorLexeme = 1<<20 - 1<<16 // with room for quoting
)

// lexeme is how a word is stored in the vector and asked for in a query:
// itself, or, when it is too long for a lexeme or not valid UTF-8 (only
// invalid content yields that), a digest of it. The digest starts with '#',
// which no word holds (it is a separator), so it never equals a word.
func lexeme(word []byte) string {
	if len(word) <= maxLexemeBytes && utf8.Valid(word) {
		return string(word)
	}
	sum := sha256.Sum256(word)
	return "#" + hex.EncodeToString(sum[:16])
}

// quoteLexeme writes a lexeme as tsvector and tsquery input read it: in
// single quotes, with quotes and backslashes escaped (words hold neither).
func quoteLexeme(b *strings.Builder, lex string) {
	b.WriteByte('\'')
	for i := 0; i < len(lex); i++ {
		if c := lex[i]; c == '\'' || c == '\\' {
			b.WriteByte(c)
		}
		b.WriteByte(lex[i])
	}
	b.WriteByte('\'')
}

// searchVector returns content as a tsvector literal: each distinct word
// with its positions (word numbers from 1), or nil when content has no
// words. Past PostgreSQL's limits positions are dropped (a word counts at
// most 256 times, positions stop at 16383) and, past about 1 MiB of distinct
// words, further new words are left out: such content is found by its
// first megabyte of vocabulary only.
func searchVector(content string) *string {
	type entry struct {
		lex string
		pos []int
	}
	var entries []entry
	index := map[string]int{}
	size, n := 0, 0
	unicode61.Words(content, func(w []byte) {
		n++
		lex := lexeme(w)
		i, ok := index[lex]
		if !ok {
			if size+len(lex) > maxVectorLexeme {
				return
			}
			size += len(lex)
			i = len(entries)
			index[lex] = i
			entries = append(entries, entry{lex: lex})
		}
		e := &entries[i]
		pos := min(n, maxPosition)
		if len(e.pos) < maxPositions && (len(e.pos) == 0 || e.pos[len(e.pos)-1] != pos) {
			e.pos = append(e.pos, pos)
		}
	})
	if len(entries) == 0 {
		return nil
	}
	var b strings.Builder
	b.Grow(size + 8*len(entries))
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(' ')
		}
		quoteLexeme(&b, e.lex)
		b.WriteByte(':')
		for j, p := range e.pos {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(p))
		}
	}
	v := b.String()
	return &v
}

// searchQuery returns the tsquery of a NIP-50 search string: every word
// (unicode61.Terms) required. ok is false when it has no words (it then
// matches nothing).
func searchQuery(search string) (query string, ok bool) {
	terms := unicode61.Terms(search)
	if len(terms) == 0 {
		return "", false
	}
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteString(" & ")
		}
		quoteLexeme(&b, lexeme([]byte(t)))
	}
	return b.String(), true
}

// contentOf reads the content of a stored event's JSON.
func contentOf(raw []byte) (string, error) {
	var ev struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return "", err
	}
	return ev.Content, nil
}

// reindexChunk is how many events configureSearch indexes per statement.
const reindexChunk = 500

// configureSearch reads the indexed kinds and, when want is not nil and
// differs, indexes the stored events of the kinds added and drops those of
// the kinds removed, in one transaction that holds the write lock, so that
// no Save of another process runs meanwhile (each reads the kinds in its
// own transaction). The caller holds the migration lock. It returns the
// kinds now indexed.
func configureSearch(ctx context.Context, conn *pgxpool.Conn, want []int) ([]int, error) {
	if want != nil {
		want = slices.Clone(want)
		slices.Sort(want)
		want = slices.Compact(want)
		for _, k := range want {
			if k < 0 || k > 65535 {
				return nil, fmt.Errorf("configure search: kind %d is not 0 to 65535", k)
			}
		}
	}
	have, err := readSearchKinds(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("configure search: %w", err)
	}
	if want == nil || slices.Equal(have, want) {
		return have, nil
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockWrite); err != nil {
			return err
		}
		if have, err = readSearchKinds(ctx, tx); err != nil {
			return err
		}
		for _, k := range have {
			if slices.Contains(want, k) {
				continue
			}
			if _, err := tx.Exec(ctx, "UPDATE events SET search = NULL WHERE kind = $1 AND search IS NOT NULL", k); err != nil {
				return fmt.Errorf("unindex kind %d: %w", k, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM search_kinds WHERE kind = $1", k); err != nil {
				return fmt.Errorf("unindex kind %d: %w", k, err)
			}
		}
		for _, k := range want {
			if slices.Contains(have, k) {
				continue
			}
			if err := indexKind(ctx, tx, k); err != nil {
				return fmt.Errorf("index kind %d: %w", k, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO search_kinds (kind) VALUES ($1)", k); err != nil {
				return fmt.Errorf("index kind %d: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("configure search: %w", err)
	}
	return want, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readSearchKinds(ctx context.Context, q querier) ([]int, error) {
	rows, err := q.Query(ctx, "SELECT kind FROM search_kinds ORDER BY kind")
	if err != nil {
		return nil, fmt.Errorf("read search kinds: %w", err)
	}
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read search kinds: %w", err)
	}
	if kinds == nil {
		kinds = []int{}
	}
	return kinds, nil
}

// indexKind fills events.search for the stored events of one kind, a chunk
// at a time in seq order. A stored JSON that does not parse (none should)
// is left without words.
func indexKind(ctx context.Context, tx pgx.Tx, kind int) error {
	var after int64
	for {
		rows, err := tx.Query(ctx, "SELECT seq, raw FROM events WHERE kind = $1 AND seq > $2 ORDER BY seq LIMIT $3",
			kind, after, reindexChunk)
		if err != nil {
			return err
		}
		var (
			seqs    []int64
			vectors []*string
			seq     int64
			raw     []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&seq, &raw}, func() error {
			content, _ := contentOf(raw)
			seqs = append(seqs, seq)
			vectors = append(vectors, searchVector(content))
			return nil
		})
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE events AS e SET search = v.search::tsvector
			FROM unnest($1::bigint[], $2::text[]) AS v(seq, search) WHERE e.seq = v.seq`, seqs, vectors); err != nil {
			return err
		}
		if len(seqs) < reindexChunk {
			return nil
		}
		after = seqs[len(seqs)-1]
	}
}

// FlushSearchIndex moves the entries waiting in the search index's pending
// list into the index proper (gin_clean_pending_list) and returns how many
// pending pages it emptied. GIN adds new entries to that list, which is
// cheap, and merges it when it passes gin_pending_list_limit (4 MiB by
// default) inside whichever insert passes it, that is inside a Save,
// holding the write lock, or when autovacuum gets to the table. Run from a
// background loop every few seconds, it keeps that merge off the writers'
// path and the list, which every search reads in full, short.
func (s *Store) FlushSearchIndex(ctx context.Context) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var pages int64
	if err := s.pool.QueryRow(ctx, "SELECT gin_clean_pending_list('events_search'::regclass)").Scan(&pages); err != nil {
		return 0, fmt.Errorf("flush search index: %w", err)
	}
	return pages, nil
}
