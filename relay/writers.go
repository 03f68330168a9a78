package relay

import "sync/atomic"

// parkedWriters is how many outbox writers a relay keeps parked: about as
// many as one broadcast to a few hundred subscribers has running at once.
const parkedWriters = 128

// writerPool keeps a few outbox writers parked between writes. A live
// event reaches each subscriber's connection in a write of its own, and
// starting a goroutine for each, then growing its stack to the depth of a
// socket write, cost a node in the 3-node fan-out about a tenth of its CPU
// (runtime.newproc, morestack, goexit). A parked writer has its stack
// already. At most maxIdle wait, so an idle relay holds a bounded few and
// an idle connection none; a writer busy with a slow client is a goroutine
// of its own, so no connection's write waits behind another's.
type writerPool struct {
	work    chan *outbox // unbuffered: a send succeeds only to a parked writer
	idle    atomic.Int32 // parked
	live    atomic.Int32 // running or parked
	maxIdle int32
	done    <-chan struct{} // the relay is shutting down: parked writers leave
}

func newWriterPool(maxIdle int, done <-chan struct{}) *writerPool {
	return &writerPool{work: make(chan *outbox), maxIdle: int32(maxIdle), done: done}
}

// start runs o's writer on a parked goroutine, or on a new one if none
// waits. The caller has counted it in o.writers.
func (p *writerPool) start(o *outbox) {
	select {
	case p.work <- o:
	default:
		p.live.Add(1)
		go p.run(o)
	}
}

func (p *writerPool) run(o *outbox) {
	defer p.live.Add(-1)
	for {
		o.writeLoop(false)
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case o = <-p.work:
			p.idle.Add(-1)
		case <-p.done:
			p.idle.Add(-1)
			return
		}
	}
}
