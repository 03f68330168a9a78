package relay

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWorkClock(t *testing.T) {
	// Running, it ends with DeadlineExceeded once its budget is spent.
	w := newWorkClock(context.Background(), 20*time.Millisecond)
	<-w.Done()
	if !errors.Is(w.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", w.Err())
	}
	w.release()

	// Paused, its time does not run.
	w = newWorkClock(context.Background(), 50*time.Millisecond)
	w.pause()
	select {
	case <-w.Done():
		t.Fatal("a paused clock ran out")
	case <-time.After(200 * time.Millisecond):
	}
	w.resume()
	if w.Err() != nil {
		t.Fatalf("resumed with %v", w.Err())
	}
	<-w.Done()
	w.release()

	// Its parent ending ends it.
	parent, cancel := context.WithCancel(context.Background())
	w = newWorkClock(parent, time.Hour)
	cancel()
	<-w.Done()
	if !errors.Is(w.Err(), context.Canceled) {
		t.Fatalf("err %v, want canceled", w.Err())
	}
	w.release()
}
