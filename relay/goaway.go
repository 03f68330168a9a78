package relay

// Closing a connection for shutdown. Every message the relay has read must
// be answered before its close frame, and nothing may follow that frame
// (RFC 6455, 5.5.1). So Shutdown does not queue the close itself: it marks
// the connection going away, the handler answers what the reader handed it
// (EVENTs then get `error: relay is shutting down`), and the close frame
// is queued once no message read is left unhandled. Meanwhile the reader
// may hand over at most maxInbox more messages; then it stops reading until
// the close frame is queued, so a client that keeps sending cannot hold
// the close back. What the reader reads after the close frame (the client
// sent it before seeing ours) cannot be answered: it is counted and
// dropped, and reading goes on only to find the client's close frame.

// awayState is a connection's part in a shutdown, guarded by inbox.mu.
type awayState struct {
	going   bool          // Shutdown is closing the connection
	left    int           // messages the reader may still hand over
	holding bool          // the reader holds a message it read and has not queued
	sent    bool          // the close frame is queued
	queued  chan struct{} // closed when sent is set
	dropped int64         // messages read after the close frame
}

// goAway starts closing the connection for shutdown.
func (in *inbox) goAway() {
	in.mu.Lock()
	defer in.mu.Unlock()
	a := &in.away
	if a.going {
		return
	}
	a.going, a.left, a.queued = true, maxInbox, make(chan struct{})
	in.closeIfAnsweredLocked()
}

// closeIfAnsweredLocked queues the close frame once the connection is
// going away and every message read has been handled: no handler runs (so
// the inbox is empty) and the reader holds none. in.mu is held.
func (in *inbox) closeIfAnsweredLocked() {
	a := &in.away
	if !a.going || a.sent || in.handling || a.holding {
		return
	}
	a.sent = true
	close(a.queued)
	in.goneAway()
}

// droppedAfterClose counts the messages read after the close frame.
func (in *inbox) droppedAfterClose() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.away.dropped
}

// dropLocked reports whether a message just read comes after the close
// frame, and counts it. inbox.mu is held.
func (a *awayState) dropLocked() bool {
	if a.sent {
		a.dropped++
	}
	return a.sent
}

// handedLocked counts a message handed to the handler; while going away
// it returns, once the reader has handed over its share, the channel to
// wait on before reading more. inbox.mu is held.
func (a *awayState) handedLocked() <-chan struct{} {
	if !a.going {
		return nil
	}
	a.left--
	if a.left > 0 {
		return nil
	}
	return a.queued
}
