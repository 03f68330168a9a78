package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// positions are where the streams stand, kept in a small JSON file (the
// Manager's StatePath) so that they resume after a restart instead of
// starting from now: for a down worker the newest created_at it has
// stored from its remote with no gap before it, for an up worker the
// sequence number up to which every local event was sent and answered.
// Keys name the direction, the remote URL and the filter, so a changed
// filter starts afresh.
type positions struct {
	path string // "": kept in memory only

	mu    sync.Mutex
	m     map[string]int64
	dirty bool
}

type stateFile struct {
	Positions map[string]int64 `json:"positions"`
}

// loadPositions reads the file at path; a missing file is an empty state.
func loadPositions(path string) (*positions, error) {
	p := &positions{path: path, m: map[string]int64{}}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("mirror state %s: %w", path, err)
	}
	for k, v := range f.Positions {
		p.m[k] = v
	}
	return p, nil
}

func (p *positions) get(key string) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[key]
	return v, ok
}

func (p *positions) set(key string, v int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[key] != v {
		p.m[key] = v
		p.dirty = true
	}
}

// save writes the file if anything changed (write then rename: a crash
// leaves the old file or the new one).
func (p *positions) save() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.path == "" || !p.dirty {
		return nil
	}
	b, err := json.MarshalIndent(stateFile{Positions: p.m}, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("mirror state: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("mirror state: %w", err)
	}
	p.dirty = false
	return nil
}

// stateKey names a worker's position: direction, remote and filter.
func (w worker) stateKey() string {
	f, _ := json.Marshal(w.stream.filter)
	return fmt.Sprintf("%s %s %s", w.dir, w.url, f)
}

// origins remembers, for the events the down workers hand to the local
// relay, which remotes sent them, so that an up worker reading the store
// never sends an event back to where it came from. Entries are noted
// before the event is stored and forgotten after originTTL.
type origins struct {
	mu    sync.Mutex
	m     map[string]*origin
	noted int
}

type origin struct {
	urls []string
	at   time.Time
}

// originTTL is how long an incoming event's origin is remembered: longer
// than an up worker normally lags behind the store. One that lags more (a
// remote down for a long time) may send such an event back; the remote
// answers duplicate.
const originTTL = 10 * time.Minute

// note records that url sent the event id.
func (o *origins) note(id, url string) {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]*origin{}
	}
	if e := o.m[id]; e != nil {
		if !slices.Contains(e.urls, url) {
			e.urls = append(e.urls, url)
		}
		e.at = now
		return
	}
	o.m[id] = &origin{urls: []string{url}, at: now}
	o.noted++
	if o.noted%1024 == 0 {
		for k, e := range o.m {
			if now.Sub(e.at) > originTTL {
				delete(o.m, k)
			}
		}
	}
}

// from reports whether url sent the event id.
func (o *origins) from(id, url string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.m[id]
	return e != nil && slices.Contains(e.urls, url)
}
