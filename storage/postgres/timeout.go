package postgres

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTimeout is Options.Timeout's default: far above any statement of
// a healthy server (a Save of a large batch takes tens of milliseconds),
// short enough that a relay whose database vanished answers `error:`
// rather than hang.
const DefaultTimeout = 30 * time.Second

// A server that stops answering is found out three ways, because each
// covers a case the others miss:
//
//   - a deadline on each Save and statement whose caller gave none
//     (bounded): a server that is up at the TCP level but does nothing (a
//     stopped process, a hung disk) acknowledges every packet, so only the
//     client's clock can tell;
//   - TCP_USER_TIMEOUT (Linux) on every connection: data sent and not
//     acknowledged for that long drops the connection, for a host or
//     network that went away mid-statement;
//   - TCP keepalive: an idle connection (a pooled one, Watch's listening
//     one) to a host that went away is dropped within about the timeout,
//     so that Watch reconnects and the pool does not hand it out.
//
// Plus the connect timeout, unless the URL's connect_timeout says
// otherwise.

// bound sets the connection timeouts of cfg for timeout (0: none).
func bound(cfg *pgx.ConnConfig, timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = timeout
	}
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     max(timeout/2, time.Second),
			Interval: max(timeout/6, time.Second),
			Count:    3,
		},
		Control: userTimeout(timeout),
	}
	cfg.DialFunc = d.DialContext
}

// bounded gives ctx the store's timeout as its deadline when it has none.
func (s *Store) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || s.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}
