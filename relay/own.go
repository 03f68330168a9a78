package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// Events the relay signs itself (NIP-43 member lists, published by package
// membership) enter the pipeline through PublishOwn: no check, policy or
// signature verification (the relay's key made them), then the writer,
// which stores and broadcasts them like any event. The group state a
// Keeper signs does not come this way: it is saved in the transaction of
// the events that changed it (keeper.go).

// PublishOwn stores ev, which the relay signed with the key of Info.Self,
// and returns once it is durable (or broadcast, for an ephemeral kind), or
// with why not.
func (r *Relay) PublishOwn(ctx context.Context, ev *nostr.Event) error {
	if r.cfg.Info.Self == "" || ev.PubKey != r.cfg.Info.Self {
		return errors.New("publish own event: not signed by the relay's key")
	}
	type answer struct {
		ok  bool
		msg string
	}
	done := make(chan answer, 1)
	p := &pending{ev: ev, raw: canonicalEvent(ev), noVerify: true, own: true, source: wisp.SourceRelay,
		done: func(ok bool, msg string) { done <- answer{ok, msg} }}
	queued, _, msg := r.enqueue(ctx, p)
	if !queued {
		return fmt.Errorf("publish own event %d: %s", ev.Kind, msg)
	}
	select {
	case a := <-done:
		if !a.ok {
			return fmt.Errorf("publish own event %d: %s", ev.Kind, a.msg)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish own event %d: %w", ev.Kind, ctx.Err())
	}
}
