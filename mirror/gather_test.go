package mirror

import (
	"slices"
	"testing"
)

// The strfry interop run (docs/interop.md) found ids reported more than once
// by the negentropy client; each must be kept once.
func TestGatherUniqueDropsRepeats(t *testing.T) {
	ch := make(chan string, 8)
	for _, id := range []string{"a", "b", "a", "c", "b", "a"} {
		ch <- id
	}
	close(ch)
	got := gatherUnique(ch, make(chan struct{}))
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v, want [a b c]", got)
	}
}

func TestGatherUniqueStops(t *testing.T) {
	ch := make(chan string)
	stop := make(chan struct{})
	close(stop)
	if got := gatherUnique(ch, stop); len(got) != 0 {
		t.Fatalf("got %v after stop", got)
	}
}
