package bench

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/nbd-wtf/go-nostr"
)

// truth is what the relay should hold: the corpus minus the events it
// refused at ingest. The checker answers every filter from it, with its own
// matcher and indexes, so that it shares no code with any relay.
type truth struct {
	c      *Corpus
	stored []bool // by corpus index: answered OK true
	// unknown events were sent but never answered: the relay may or may
	// not hold them, so either is accepted (an answer that includes one is
	// judged as if it were stored).
	unknown []bool

	byAuthor map[string][]int
	byKind   map[int][]int
	byTag    map[string][]int // "<letter>:<value>"
	// words are the content words of each event, worked out on first use
	// by search (a search's candidates are thousands of notes).
	words map[int]map[string]bool
}

// newTruth indexes the corpus; stored[i] says whether event i is on the
// relay and unknown[i] that nobody knows (nil: all stored, none unknown).
func newTruth(c *Corpus, stored, unknown []bool) *truth {
	if stored == nil {
		stored = make([]bool, len(c.Events))
		for i := range stored {
			stored[i] = true
		}
	}
	if unknown == nil {
		unknown = make([]bool, len(c.Events))
	}
	t := &truth{
		c:        c,
		stored:   stored,
		unknown:  unknown,
		byAuthor: map[string][]int{},
		byKind:   map[int][]int{},
		byTag:    map[string][]int{},
		words:    map[int]map[string]bool{},
	}
	for i, ev := range c.Events {
		t.byAuthor[ev.PubKey] = append(t.byAuthor[ev.PubKey], i)
		t.byKind[ev.Kind] = append(t.byKind[ev.Kind], i)
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && len(tag[0]) == 1 {
				k := tag[0] + ":" + tag[1]
				// A tag repeated in one event is indexed once.
				if l := t.byTag[k]; len(l) == 0 || l[len(l)-1] != i {
					t.byTag[k] = append(l, i)
				}
			}
		}
	}
	return t
}

// matches says whether ev matches f by NIP-01: every field present must
// match, since and until are inclusive. limit is not the matcher's concern.
func matches(f *nostr.Filter, ev *nostr.Event) bool {
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, ev.ID) {
		return false
	}
	if len(f.Authors) > 0 && !slices.Contains(f.Authors, ev.PubKey) {
		return false
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, ev.Kind) {
		return false
	}
	if f.Since != nil && ev.CreatedAt < *f.Since {
		return false
	}
	if f.Until != nil && ev.CreatedAt > *f.Until {
		return false
	}
	if f.Search != "" && !searchMatches(f.Search, ev.Content) {
		return false
	}
	for name, values := range f.Tags {
		if len(values) == 0 {
			continue
		}
		found := false
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == name && slices.Contains(values, tag[1]) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// candidates returns corpus indexes that include every event f can match,
// from the narrowest index the filter allows.
func (t *truth) candidates(f *nostr.Filter) []int {
	var best []int
	have := false
	consider := func(l []int) {
		if !have || len(l) < len(best) {
			best, have = l, true
		}
	}
	if len(f.IDs) > 0 {
		var l []int
		for _, id := range f.IDs {
			if i, ok := t.c.index(id); ok {
				l = append(l, i)
			}
		}
		consider(l)
	}
	if len(f.Authors) > 0 {
		var l []int
		for _, a := range f.Authors {
			l = append(l, t.byAuthor[a]...)
		}
		consider(l)
	}
	for name, values := range f.Tags {
		if len(values) == 0 {
			continue
		}
		var l []int
		for _, v := range values {
			l = append(l, t.byTag[name+":"+v]...)
		}
		consider(l)
	}
	if len(f.Kinds) > 0 {
		var l []int
		for _, k := range f.Kinds {
			l = append(l, t.byKind[k]...)
		}
		consider(l)
	}
	if !have {
		// Only a time window: the corpus is in time order.
		evs := t.c.Events
		lo, hi := 0, len(evs)
		if f.Since != nil {
			lo = sort.Search(len(evs), func(i int) bool { return evs[i].CreatedAt >= *f.Since })
		}
		if f.Until != nil {
			hi = sort.Search(len(evs), func(i int) bool { return evs[i].CreatedAt > *f.Until })
		}
		for i := lo; i < hi; i++ {
			best = append(best, i)
		}
	}
	return best
}

// expected is every stored event matching f, newest first (ties by id, as
// NIP-01 suggests; the checker accepts any order among ties). Events of
// unknown fate count as stored when also[i] is true.
func (t *truth) expected(f *nostr.Filter, also map[int]bool) []int {
	cand := t.candidates(f)
	out := make([]int, 0, len(cand))
	plain := *f // f without its search, which the word sets answer
	plain.Search = ""
	search := searchWords(f.Search)
	for _, i := range cand {
		if (t.stored[i] || also[i]) && matches(&plain, t.c.Events[i]) && (f.Search == "" || t.hasWords(i, search)) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	evs := t.c.Events
	sort.SliceStable(out, func(a, b int) bool {
		ea, eb := evs[out[a]], evs[out[b]]
		if ea.CreatedAt != eb.CreatedAt {
			return ea.CreatedAt > eb.CreatedAt
		}
		return ea.ID < eb.ID
	})
	return out
}

// check says what is wrong with got as the relay's answer (stored events up
// to EOSE) to a REQ with the single filter f, or "" if it is right. Right
// means: every event is a stored corpus event, unaltered; it matches f;
// none comes twice; they come newest first; and they are the newest ones:
// as many as the limit allows (all of them without a limit), with none
// newer left out. Among events with equal created_at any order and any
// choice at the cut is accepted. Past the limit, only the rest of the
// created_at tie at the boundary may follow (NIP-67; see tieExtras).
func (t *truth) check(f *nostr.Filter, got []*nostr.Event) string {
	return t.checkWith(f, got, nil)
}

// checkWith is check with the expected answer, t.expected(f, nil), worked
// out beforehand (nil: work it out here), so that the query phase does the
// costly part before it is timed.
func (t *truth) checkWith(f *nostr.Filter, got []*nostr.Event, want []int) string {
	seen := make(map[string]bool, len(got))
	var served map[int]bool // events of unknown fate in the answer
	for n, ev := range got {
		i, ok := t.c.index(ev.ID)
		if !ok {
			return fmt.Sprintf("event %d (%s) is not in the corpus", n, short(ev.ID))
		}
		switch {
		case t.unknown[i]:
			if served == nil {
				served = map[int]bool{}
			}
			served[i] = true
		case !t.stored[i]:
			return fmt.Sprintf("event %d (%s) was refused at ingest", n, short(ev.ID))
		}
		if !same(ev, t.c.Events[i]) {
			return fmt.Sprintf("event %d (%s) differs from the one published", n, short(ev.ID))
		}
		if !matches(f, ev) {
			return fmt.Sprintf("event %d (%s) does not match the filter", n, short(ev.ID))
		}
		if seen[ev.ID] {
			return fmt.Sprintf("event %d (%s) is sent twice", n, short(ev.ID))
		}
		seen[ev.ID] = true
		// Search results come best match first (NIP-50), and each relay
		// ranks in its own way: only what they are is checked.
		if f.Search == "" && n > 0 && ev.CreatedAt > got[n-1].CreatedAt {
			return fmt.Sprintf("event %d (%s) is newer than the one before it", n, short(ev.ID))
		}
	}
	head := len(got) // events within the limit
	if f.Limit > 0 && len(got) > f.Limit {
		if why := tieExtras(f, got); why != "" {
			return why
		}
		head = f.Limit
	}
	if want == nil || served != nil {
		want = t.expected(f, served)
	}
	n := len(want)
	if f.Limit > 0 {
		n = min(n, f.Limit)
	}
	if head != n {
		return fmt.Sprintf("%d events, want %d", head, n)
	}
	if n == 0 || f.Search != "" {
		return ""
	}
	oldest := got[len(got)-1].CreatedAt
	for _, i := range want {
		ev := t.c.Events[i]
		if ev.CreatedAt <= oldest {
			break
		}
		if !seen[ev.ID] {
			return fmt.Sprintf("newer event %s (created_at %d) is missing", short(ev.ID), ev.CreatedAt)
		}
	}
	return ""
}

// maxTieExtra is the most events past a limit that a relay may send to
// finish the created_at tie at the boundary (NIP-67 asks that the tie be
// sent whole). wisp asks its store for limit + 1 + min(limit/10, 100)
// events and sends every one of them that is in the tie, so that is the
// bound: a relay sending more is not finishing a tie.
func maxTieExtra(limit int) int { return 1 + min(limit/10, 100) }

// tieExtras says what is wrong with the events of got past f's limit, or ""
// if they are the boundary's tie: each shares the created_at of the
// limit-th event, and there are no more than maxTieExtra. That they are
// stored, matching and not repeated is checked with the rest; the first
// limit events are checked as if the extras were not there. A search is
// ranked, not in time order, so it has no boundary tie and no extras.
func tieExtras(f *nostr.Filter, got []*nostr.Event) string {
	extra := len(got) - f.Limit
	if f.Search != "" || extra > maxTieExtra(f.Limit) {
		return fmt.Sprintf("%d events for limit %d", len(got), f.Limit)
	}
	at := got[f.Limit-1].CreatedAt
	for n := f.Limit; n < len(got); n++ {
		if ev := got[n]; ev.CreatedAt != at {
			return fmt.Sprintf("event %d (%s, created_at %d) is past limit %d and not in the boundary's created_at tie (%d)",
				n, short(ev.ID), ev.CreatedAt, f.Limit, at)
		}
	}
	return ""
}

// hasWords says whether event i's content holds every one of words (a
// search's, as searchWords gives them).
func (t *truth) hasWords(i int, words []string) bool {
	have, ok := t.words[i]
	if !ok {
		have = map[string]bool{}
		for _, w := range searchWords(t.c.Events[i].Content) {
			have[w] = true
		}
		t.words[i] = have
	}
	for _, w := range words {
		if !have[w] {
			return false
		}
	}
	return len(words) > 0
}

// searchMatches says whether content holds every word of search as a
// whole word, ignoring case: words are runs of letters and digits, as in
// SQLite's unicode61 tokenizer (the mix's searches are plain words, so
// NIP-50's key:value extensions do not come up).
func searchMatches(search, content string) bool {
	have := map[string]bool{}
	for _, w := range searchWords(content) {
		have[w] = true
	}
	want := searchWords(search)
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return len(want) > 0
}

func searchWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// same says whether a received event is the published one in every field.
func same(a, b *nostr.Event) bool {
	if a.ID != b.ID || a.PubKey != b.PubKey || a.CreatedAt != b.CreatedAt ||
		a.Kind != b.Kind || a.Content != b.Content || a.Sig != b.Sig || len(a.Tags) != len(b.Tags) {
		return false
	}
	for i := range a.Tags {
		if !slices.Equal(a.Tags[i], b.Tags[i]) {
			return false
		}
	}
	return true
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
