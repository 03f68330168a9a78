package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryEvery is how often giveBackMemory looks.
const memoryEvery = 10 * time.Second

// giveBackMemory returns the heap's free memory to the system once the
// relay has gone a whole interval without a garbage collection, that is
// once it is quiet: Go collects only when the heap grows, so after a burst
// (a crowd of connections that went away, a big negentropy session) the
// garbage it left would otherwise be counted in the relay's resident
// memory until the next burst. Under load the collector runs by itself and
// this does nothing.
func giveBackMemory(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	var last uint64
	t := time.NewTicker(memoryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		cycles := sample[0].Value.Uint64()
		if cycles == last {
			debug.FreeOSMemory()
			metrics.Read(sample)
			cycles = sample[0].Value.Uint64()
		}
		last = cycles
	}
}
