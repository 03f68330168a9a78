package postgres

import (
	"bytes"

	"github.com/wisp-relay/wisp/storage"
)

// A Save batch is decided in Go, item after item, exactly as the SQLite
// engine's transaction decides it statement by statement: against the state
// the database had when the write lock was taken (read in one round trip,
// see fetchState) and what the earlier items of the batch did to it. The
// writes then go in a second round trip, in an order that gives the same end
// state: deletions of rows that were already stored first, then the rows
// the batch leaves (with sequence numbers in batch order), then tombstones.
// An item stored and then deleted by a later item of the same batch gets
// its sequence number but is never written: no reader could have seen it.

// dbState is what the database holds about a batch when its lock is taken.
type dbState struct {
	exists   map[[32]byte]bool   // batch ids already stored
	tomb     map[tombKey]bool    // NIP-09 id tombstones of batch ids
	vanished map[[32]byte]int64  // NIP-62 horizons of the batch's pubkeys
	addrTomb map[addrKey]int64   // NIP-09 address tombstones of batch addresses
	current  map[addrKey]version // stored versions of batch addresses
	kinds    []int               // search kinds
}

type tombKey struct{ id, pk [32]byte }

// version is the current event at an address: stored before the batch
// (batch -1) or an item of it.
type version struct {
	id      [32]byte
	created int64
	batch   int
}

// plan is what a batch does: each item's outcome, and the writes.
type plan struct {
	results []storage.Result
	live    []bool // items to insert: stored, and not deleted later in the batch
	stored  []int  // items stored, in order: each gets a sequence number

	// Deletions of rows stored before the batch.
	delIDs [][32]byte         // replaced versions
	delA   map[addrKey]int64  // NIP-09 a targets up to a created_at: deleted, and tombstones to record
	vanish map[[32]byte]int64 // NIP-62 requests: pubkey, up to a created_at
	tombs  map[tombKey]bool   // NIP-09 e targets with the deleting pubkey: deleted, and tombstones to record
}

// decide works out the plan of items against st, which it changes.
func decide(items []item, st *dbState) *plan {
	p := &plan{
		results: make([]storage.Result, len(items)),
		live:    make([]bool, len(items)),
		delA:    map[addrKey]int64{},
		vanish:  map[[32]byte]int64{},
		tombs:   map[tombKey]bool{},
	}
	d := decider{items: items, st: st, p: p, liveByID: map[[32]byte]int{}, byID: map[[32]byte]int{}}
	for i := range items {
		if _, ok := d.byID[items[i].id]; !ok {
			d.byID[items[i].id] = i
		}
	}
	for i := range items {
		p.results[i] = d.save(i)
	}
	return p
}

type decider struct {
	items    []item
	st       *dbState
	p        *plan
	liveByID map[[32]byte]int // items inserted in this batch and still there
	byID     map[[32]byte]int // the first item with each id
}

// save decides item i; the steps and their order are the SQLite engine's.
func (d *decider) save(i int) storage.Result {
	it := &d.items[i]
	// NIP-62: what a request to vanish covered never comes back. A request
	// itself is never refused that way, and applies even when it is then
	// refused or a duplicate.
	if d.vanishedItem(it) {
		return storage.Result{Outcome: storage.Deleted}
	}
	if it.kind == kindVanish {
		d.applyVanish(it.pk, it.created)
	}
	// A kind 5 cannot be deleted, so its id tombstones do not apply to it.
	if it.kind != kindDeletion && d.st.tomb[tombKey{it.id, it.pk}] {
		return storage.Result{Outcome: storage.Deleted}
	}
	if it.address {
		// Duplicate first, so a re-sent current version is not superseded.
		if d.exists(it.id) {
			return storage.Result{Outcome: storage.Duplicate}
		}
		a := it.addr()
		if until, ok := d.st.addrTomb[a]; ok && until >= it.created {
			return storage.Result{Outcome: storage.Deleted}
		}
		if cur, ok := d.st.current[a]; ok {
			// The newest wins; on a created_at tie, the lowest id.
			if cur.created > it.created || (cur.created == it.created && bytes.Compare(cur.id[:], it.id[:]) < 0) {
				return storage.Result{Outcome: storage.Superseded}
			}
			d.deleteVersion(a, cur)
		}
		d.st.current[a] = version{it.id, it.created, i}
	} else if d.exists(it.id) {
		return storage.Result{Outcome: storage.Duplicate}
	}
	d.p.live[i] = true
	d.liveByID[it.id] = i
	d.p.stored = append(d.p.stored, i)
	if it.kind == kindDeletion {
		d.applyDeletion(it)
	}
	return storage.Result{Outcome: storage.Stored}
}

// exists reports whether an event with id is stored at this point.
func (d *decider) exists(id [32]byte) bool {
	if _, ok := d.liveByID[id]; ok {
		return true
	}
	return d.st.exists[id]
}

func (d *decider) vanishedUntil(pk [32]byte) (int64, bool) {
	u, ok := d.st.vanished[pk]
	return u, ok
}

// vanishedItem reports whether an earlier request to vanish refuses it: its
// author's, or one of a pubkey a gift wrap p-tags.
func (d *decider) vanishedItem(it *item) bool {
	if it.kind == kindVanish {
		return false
	}
	if u, ok := d.vanishedUntil(it.pk); ok && it.created <= u {
		return true
	}
	if it.kind == kindGiftWrap {
		for _, p := range it.pTargets {
			if u, ok := d.vanishedUntil(p); ok && it.created <= u {
				return true
			}
		}
	}
	return false
}

// deleteVersion removes the current version of an address, replaced.
func (d *decider) deleteVersion(a addrKey, cur version) {
	if cur.batch >= 0 {
		d.unlive(cur.batch)
	} else {
		d.p.delIDs = append(d.p.delIDs, cur.id)
		d.st.exists[cur.id] = false
	}
	delete(d.st.current, a)
}

func (d *decider) unlive(i int) {
	d.p.live[i] = false
	delete(d.liveByID, d.items[i].id)
}

// deleteWhere carries out a deletion of every stored event that hit
// reports, and of every current version that hitVersion reports (a version
// stored before the batch is known by its address, id and created_at only).
func (d *decider) deleteWhere(hit func(it *item) bool, hitVersion func(a addrKey, v version) bool) {
	for _, i := range d.liveByID {
		if hit(&d.items[i]) {
			d.unlive(i)
		}
	}
	// Rows stored before the batch that later items of it name: an id
	// stands for the same event, so the item tells what the row holds.
	for id, there := range d.st.exists {
		if there && hit(&d.items[d.byID[id]]) {
			d.st.exists[id] = false
		}
	}
	for a, v := range d.st.current {
		if v.batch >= 0 && !d.p.live[v.batch] || v.batch < 0 && hitVersion(a, v) {
			delete(d.st.current, a)
		}
	}
}

// applyVanish carries out a request to vanish (NIP-62): every event of the
// pubkey up to created goes, kind 5 included, and so does every gift wrap
// p-tagging it; earlier requests stay.
func (d *decider) applyVanish(pk [32]byte, created int64) {
	if u, ok := d.st.vanished[pk]; !ok || created > u {
		d.st.vanished[pk] = created
	}
	if u, ok := d.p.vanish[pk]; !ok || created > u {
		d.p.vanish[pk] = created
	}
	d.deleteWhere(func(it *item) bool {
		if it.created > created {
			return false
		}
		if it.pk == pk && it.kind != kindVanish {
			return true
		}
		if it.kind == kindGiftWrap {
			for _, p := range it.pTargets {
				if p == pk {
					return true
				}
			}
		}
		return false
	}, func(a addrKey, v version) bool { return a.pk == pk && v.created <= created })
}

// applyDeletion carries out a stored kind 5 (NIP-09): only its author's
// events are deleted (never a kind 5), and tombstones keep them out.
func (d *decider) applyDeletion(del *item) {
	for _, target := range del.delIDs {
		k := tombKey{target, del.pk}
		d.p.tombs[k] = true
		d.st.tomb[k] = true
		d.deleteWhere(func(it *item) bool {
			return it.id == target && it.pk == del.pk && it.kind != kindDeletion
		}, func(a addrKey, v version) bool { return v.id == target && a.pk == del.pk })
	}
	for _, t := range del.delAddrs {
		a := addrKey{del.pk, t.kind, t.d}
		if u, ok := d.p.delA[a]; !ok || del.created > u {
			d.p.delA[a] = del.created
		}
		if u, ok := d.st.addrTomb[a]; !ok || del.created > u {
			d.st.addrTomb[a] = del.created
		}
		d.deleteWhere(func(it *item) bool {
			return it.address && it.addr() == a && it.created <= del.created
		}, func(b addrKey, v version) bool { return b == a && v.created <= del.created })
	}
}
