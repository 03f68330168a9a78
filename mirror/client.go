// Package mirror moves events between this relay and others: negentropy
// (NIP-77) sync with a REQ fallback, and live streams in both directions.
// Every event it brings in goes through the relay's own pipeline (Ingest:
// checks, signature, write policy with source sync or stream), and every
// wait on a remote relay is bounded.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Timeouts of the websocket client.
const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
	// readLimit is the largest message accepted from a remote relay.
	readLimit = 32 << 20
)

// ErrClosed is returned once the connection to the remote relay ended.
var ErrClosed = errors.New("connection closed")

// msg is one message from the remote relay: its verb and its elements.
type msg struct {
	verb string
	args []json.RawMessage // the elements after the verb
}

func (m msg) str(i int) string {
	if i >= len(m.args) {
		return ""
	}
	var s string
	_ = json.Unmarshal(m.args[i], &s)
	return s
}

// okResult is the answer to one EVENT.
type okResult struct {
	ok     bool
	reason string
}

// client is a websocket connection to a remote relay. One goroutine reads
// and routes messages: EVENT, EOSE, CLOSED, NEG-MSG and NEG-ERR to the
// subscription's channel, OK to the waiting publisher, NOTICE to notices.
// A subscription channel that is full holds the reader up (backpressure),
// so consumers must keep draining.
type client struct {
	url string
	ws  *websocket.Conn

	mu      sync.Mutex
	subs    map[string]chan msg
	oks     map[string]chan okResult
	notices chan string

	done chan struct{} // closed when the reader stops
	err  error         // why it stopped; read after done
}

// dial connects to a relay.
func dial(ctx context.Context, url string) (*client, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	ws.SetReadLimit(readLimit)
	c := &client{
		url:     url,
		ws:      ws,
		subs:    map[string]chan msg{},
		oks:     map[string]chan okResult{},
		notices: make(chan string, 16),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var arr []json.RawMessage
		if json.Unmarshal(data, &arr) != nil || len(arr) == 0 {
			continue
		}
		var m msg
		if json.Unmarshal(arr[0], &m.verb) != nil {
			continue
		}
		m.args = arr[1:]
		switch m.verb {
		case "EVENT", "EOSE", "CLOSED", "NEG-MSG", "NEG-ERR":
			c.mu.Lock()
			ch := c.subs[m.str(0)]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				case <-time.After(time.Minute):
					// A consumer that stopped reading for a minute is gone.
					c.err = errors.New("subscription consumer stalled")
					c.ws.CloseNow()
					return
				}
			}
		case "OK":
			var ok bool
			if len(m.args) >= 2 {
				_ = json.Unmarshal(m.args[1], &ok)
			}
			c.mu.Lock()
			ch := c.oks[m.str(0)]
			delete(c.oks, m.str(0))
			c.mu.Unlock()
			if ch != nil {
				ch <- okResult{ok: ok, reason: m.str(2)} // buffered
			}
		case "NOTICE":
			select {
			case c.notices <- m.str(0):
			default:
			}
		}
	}
}

// send writes one message.
func (c *client) send(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageText, b); err != nil {
		select {
		case <-c.done:
			return c.closedErr()
		default:
		}
		return fmt.Errorf("send to %s: %w", c.url, err)
	}
	return nil
}

func (c *client) sendJSON(ctx context.Context, v ...any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.send(ctx, b)
}

// closedErr says why the connection ended.
func (c *client) closedErr() error {
	if c.err != nil {
		return fmt.Errorf("%s: %w: %v", c.url, ErrClosed, c.err)
	}
	return fmt.Errorf("%s: %w", c.url, ErrClosed)
}

// subscribe routes the messages of sub id to the returned channel.
func (c *client) subscribe(id string, buf int) chan msg {
	ch := make(chan msg, buf)
	c.mu.Lock()
	c.subs[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *client) unsubscribe(id string) {
	c.mu.Lock()
	delete(c.subs, id)
	c.mu.Unlock()
}

// publish sends an event (its canonical JSON) and returns a channel that
// gets its OK.
func (c *client) publish(ctx context.Context, id string, raw []byte) (<-chan okResult, error) {
	ch := make(chan okResult, 1)
	c.mu.Lock()
	c.oks[id] = ch
	c.mu.Unlock()
	b := make([]byte, 0, len(raw)+12)
	b = append(b, `["EVENT",`...)
	b = append(b, raw...)
	b = append(b, ']')
	if err := c.send(ctx, b); err != nil {
		c.mu.Lock()
		delete(c.oks, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// forget drops the wait for an OK that will not come.
func (c *client) forget(id string) {
	c.mu.Lock()
	delete(c.oks, id)
	c.mu.Unlock()
}

func (c *client) close() {
	c.ws.Close(websocket.StatusNormalClosure, "")
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		c.ws.CloseNow()
		<-c.done
	}
}
