package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wisp-relay/wisp/relay"
)

// envPrefix is put before every variable name of Config.
const envPrefix = "WISP_"

// Config is every setting of wisp, read from WISP_ environment variables
// and WISP_CONFIG_FILE. config.example.env and README.md list the same
// variables with the same defaults; TestExampleEnvMatchesConfig keeps the
// example in step. Fields tagged reload:"live" are the ones wisp serve
// applies on SIGHUP (configfile.go, reload.go); the others need a restart.
type Config struct {
	// ConfigFile is an env file (KEY=VALUE lines, like config.example.env)
	// of WISP_ settings, read at start and re-read by wisp serve on SIGHUP;
	// what it sets wins over the environment. Only the environment may
	// set it (path; empty: none). Default empty.
	ConfigFile string `env:"CONFIG_FILE" envDefault:""`
	// Listen is the TCP address to serve on (host:port). Default 127.0.0.1:4869.
	Listen string `env:"LISTEN" envDefault:"127.0.0.1:4869"`
	// DataDir is the directory holding the database, wisp.db. Default ./data.
	DataDir string `env:"DATA_DIR" envDefault:"./data"`
	// DatabaseURL selects PostgreSQL: a postgres:// URL of a database that
	// any number of wisp serve nodes share (docs/scale-out.md). Empty: the
	// SQLite database in DataDir. Default empty.
	DatabaseURL string `env:"DATABASE_URL" envDefault:""`
	// DatabaseReadURL is a postgres:// URL of a read replica of
	// DatabaseURL, for stored queries (REQ, COUNT, NIP-77, search); empty:
	// every query goes to DatabaseURL. Default empty.
	DatabaseReadURL string `env:"DATABASE_READ_URL" envDefault:""`
	// DatabaseMaxConns is the size of one wisp serve's PostgreSQL
	// connection pool (count): its writer, its queries and the follower.
	// Default 10.
	DatabaseMaxConns int `env:"DATABASE_MAX_CONNS" envDefault:"10"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info" reload:"live"`
	// LogFormat is text or json. Default text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"text"`
	// LogIPs is how client IP addresses appear in logs: hashed (a tag from
	// a key drawn at every start: one IP, one tag within a run, and no way
	// back to the IP), full or off. Default hashed.
	LogIPs string `env:"LOG_IPS" envDefault:"hashed"`

	// RelayName is the relay's name in NIP-11 and on the front page. Default wisp.
	RelayName string `env:"RELAY_NAME" envDefault:"wisp" reload:"live"`
	// RelayDescription is a short description for NIP-11. Default empty.
	RelayDescription string `env:"RELAY_DESCRIPTION" envDefault:"" reload:"live"`
	// RelayPubKey is the operator's pubkey (64 hex) for NIP-11. Default empty.
	RelayPubKey string `env:"RELAY_PUBKEY" envDefault:"" reload:"live"`
	// RelayContact is how to reach the operator (URI or email). Default empty.
	RelayContact string `env:"RELAY_CONTACT" envDefault:"" reload:"live"`
	// RelayIcon is the URL of the relay's icon. Default empty.
	RelayIcon string `env:"RELAY_ICON" envDefault:"" reload:"live"`
	// PublicURL is the ws:// or wss:// URL clients use; AUTH (NIP-42), NIP-98
	// and NIP-62 events must name it (or OtherURLs). Default empty: only
	// loopback names are accepted there, and the front page shows a URL
	// derived from the request.
	PublicURL string `env:"PUBLIC_URL" envDefault:""`
	// OtherURLs are further ws:// or wss:// URLs this relay is reached at
	// (comma-separated), accepted like PublicURL. Default empty.
	OtherURLs string `env:"OTHER_URLS" envDefault:""`

	// MaxMessageBytes is the largest websocket message (bytes). Default 524288.
	MaxMessageBytes int `env:"MAX_MESSAGE_BYTES" envDefault:"524288" reload:"live"`
	// MaxEventBytes is the largest event as canonical JSON (bytes). Default 262144.
	MaxEventBytes int `env:"MAX_EVENT_BYTES" envDefault:"262144" reload:"live"`
	// MaxEventTags is the most tags in one event (count). Default 2000.
	MaxEventTags int `env:"MAX_EVENT_TAGS" envDefault:"2000" reload:"live"`
	// MaxTagValueBytes is the longest tag element (bytes). Default 8192.
	MaxTagValueBytes int `env:"MAX_TAG_VALUE_BYTES" envDefault:"8192" reload:"live"`
	// MaxContentLength is the longest event content (unicode characters). Default 131072.
	MaxContentLength int `env:"MAX_CONTENT_LENGTH" envDefault:"131072" reload:"live"`
	// MaxSubscriptions is the most open subscriptions per connection (count). Default 50.
	MaxSubscriptions int `env:"MAX_SUBSCRIPTIONS" envDefault:"50" reload:"live"`
	// MaxSubscriptionBytes bounds what the open subscriptions of one
	// connection hold: their filters and fan-out index entries (bytes).
	// Default 2097152.
	MaxSubscriptionBytes int `env:"MAX_SUBSCRIPTION_BYTES" envDefault:"2097152" reload:"live"`
	// MaxFilters is the most filters in one REQ (count). Default 10.
	MaxFilters int `env:"MAX_FILTERS" envDefault:"10" reload:"live"`
	// MaxFilterValues is the most values in one filter list (count). Default 500.
	MaxFilterValues int `env:"MAX_FILTER_VALUES" envDefault:"500" reload:"live"`
	// MaxLimit caps a filter's limit (events). Default 5000.
	MaxLimit int `env:"MAX_LIMIT" envDefault:"5000" reload:"live"`
	// DefaultLimit is used for a filter without limit (events). Default 500.
	DefaultLimit int `env:"DEFAULT_LIMIT" envDefault:"500" reload:"live"`
	// CreatedAtFuture is how far ahead of now created_at may be (duration). Default 15m.
	CreatedAtFuture time.Duration `env:"CREATED_AT_FUTURE" envDefault:"15m" reload:"live"`
	// CreatedAtPast is how far behind now created_at may be (duration, 0: no bound). Default 0.
	CreatedAtPast time.Duration `env:"CREATED_AT_PAST" envDefault:"0" reload:"live"`
	// MaxPendingBytes is the outbound bytes queued per connection before it is
	// closed as a slow consumer (bytes). Default 4194304.
	MaxPendingBytes int `env:"MAX_PENDING_BYTES" envDefault:"4194304" reload:"live"`
	// QueryTimeout is the time one REQ's stored query may work, not counting
	// waits for a slow client to take the answer (duration). Default 10s.
	QueryTimeout time.Duration `env:"QUERY_TIMEOUT" envDefault:"10s" reload:"live"`

	// VerifyWorkers is the number of signature-check workers (count, 0: one per CPU). Default 0.
	VerifyWorkers int `env:"VERIFY_WORKERS" envDefault:"0"`
	// WriteBatchMax is the most events in one write transaction (events). Default 500.
	WriteBatchMax int `env:"WRITE_BATCH_MAX" envDefault:"500"`
	// WriteQueue is the events waiting for the writer before EVENTs wait (events). Default 4096.
	WriteQueue int `env:"WRITE_QUEUE" envDefault:"4096"`
	// ExpirySweep is how often expired events, and events past their
	// retention (WISP_RETENTION), are purged (duration). Default 1m.
	ExpirySweep time.Duration `env:"EXPIRY_SWEEP" envDefault:"1m"`
	// ReadConns is the number of read-only database connections (count). Default 4.
	ReadConns int `env:"READ_CONNS" envDefault:"4"`
	// CheckpointInterval is how often the WAL is checkpointed (TRUNCATE) and
	// PRAGMA optimize runs (duration, 0: never). Default 5m.
	CheckpointInterval time.Duration `env:"CHECKPOINT_INTERVAL" envDefault:"5m"`
	// Sync is when commits reach the disk: normal (at checkpoints; a crash
	// of wisp loses nothing, a power loss or OS crash may lose the last
	// commits) or full (each commit before its OK; slower). Default normal.
	Sync string `env:"SYNC" envDefault:"normal"`

	// Who may write and read (see policy.go in this directory and package policy).

	// Auth is what NIP-42 AUTH is required for: open, write or all. Default open.
	Auth string `env:"AUTH" envDefault:"open" reload:"live"`
	// AllowPubkeys, if set, are the only pubkeys that may publish (hex or
	// npub, comma-separated); NIP-86 allowpubkey adds more. Default empty.
	AllowPubkeys string `env:"ALLOW_PUBKEYS" envDefault:"" reload:"live"`
	// DenyPubkeys may not publish (hex or npub, comma-separated). Default empty.
	DenyPubkeys string `env:"DENY_PUBKEYS" envDefault:"" reload:"live"`
	// AllowKinds, if set, are the only kinds stored (list and ranges such
	// as 0,1,3,30000-39999). Default empty.
	AllowKinds string `env:"ALLOW_KINDS" envDefault:"" reload:"live"`
	// DenyKinds are kinds never stored (list and ranges). Default empty.
	DenyKinds string `env:"DENY_KINDS" envDefault:"" reload:"live"`
	// MinPoW is the NIP-13 proof of work every client event needs (bits, 0: none). Default 0.
	MinPoW int `env:"MIN_POW" envDefault:"0" reload:"live"`
	// EventRateIP limits EVENTs per client IP (N/period, such as 20/1m; empty: none). Default empty.
	EventRateIP string `env:"EVENT_RATE_IP" envDefault:"" reload:"live"`
	// EventRatePubkey limits EVENTs per author (N/period; empty: none). Default empty.
	EventRatePubkey string `env:"EVENT_RATE_PUBKEY" envDefault:"" reload:"live"`
	// ReqRateIP limits REQs per client IP (N/period; empty: none). Default empty.
	ReqRateIP string `env:"REQ_RATE_IP" envDefault:"" reload:"live"`
	// ConnRateIP limits new connections per client IP (N/period; empty: none). Default empty.
	ConnRateIP string `env:"CONN_RATE_IP" envDefault:"" reload:"live"`
	// MaxConnsPerIP caps open connections per client IP (count, 0: no cap):
	// with the per-connection budgets, it bounds what one IP can make the
	// relay hold. Default 20.
	MaxConnsPerIP int `env:"MAX_CONNS_PER_IP" envDefault:"20" reload:"live"`
	// RealIPHeader is the header a reverse proxy puts the client's address
	// in, such as X-Forwarded-For (empty: the TCP peer). Default empty.
	RealIPHeader string `env:"REAL_IP_HEADER" envDefault:""`
	// WritePolicyPlugin is a strfry write-policy plugin: a path, or a
	// command with arguments run by /bin/sh (empty: none). Default empty.
	WritePolicyPlugin string `env:"WRITE_POLICY_PLUGIN" envDefault:"" reload:"live"`
	// WritePolicyTimeout is how long the plugin may take per event (duration). Default 5s.
	WritePolicyTimeout time.Duration `env:"WRITE_POLICY_TIMEOUT" envDefault:"5s" reload:"live"`
	// AdminPubkeys may use the NIP-86 management API (hex or npub,
	// comma-separated; empty: API off). Default empty.
	AdminPubkeys string `env:"ADMIN_PUBKEYS" envDefault:""`

	// Communities: NIP-29 groups and NIP-43 membership (see community.go).

	// RelaySecretKey is the relay's own key, which signs the group state
	// (NIP-29) and member lists (NIP-43) it publishes; its pubkey is NIP-11
	// self (64 hex; empty: a key made once and kept in
	// DATA_DIR/relay.key). Default empty.
	RelaySecretKey string `env:"RELAY_SECRET_KEY" envDefault:""`
	// Groups turns NIP-29 relay-based groups on (on or off). Default off.
	Groups string `env:"GROUPS" envDefault:"off"`
	// GroupCreators may create groups (hex or npub, comma-separated;
	// empty: anyone who may publish). Default empty.
	GroupCreators string `env:"GROUP_CREATORS" envDefault:""`
	// GroupsMax is the most groups the relay holds (count). Default 1000.
	GroupsMax int `env:"GROUPS_MAX" envDefault:"1000"`
	// GroupMaxMembers is the most members of one group (count). Default 1000.
	GroupMaxMembers int `env:"GROUP_MAX_MEMBERS" envDefault:"1000"`
	// GroupEventMaxAge is how old a client's event for a group may be,
	// NIP-29's "late publication" (duration, 0: no bound). Default 1h.
	GroupEventMaxAge time.Duration `env:"GROUP_EVENT_MAX_AGE" envDefault:"1h"`
	// Membership turns NIP-43 relay membership on (on or off): members are
	// the allow list, joining by invite code. Default off.
	Membership string `env:"MEMBERSHIP" envDefault:"off"`
	// MembershipInvites is who gets invite codes over NIP-43 (members or
	// admins, the WISP_ADMIN_PUBKEYS). Default members.
	MembershipInvites string `env:"MEMBERSHIP_INVITES" envDefault:"members"`
	// MembershipInviteTTL is how long an invite code stays valid (duration).
	// Default 24h.
	MembershipInviteTTL time.Duration `env:"MEMBERSHIP_INVITE_TTL" envDefault:"24h"`
	// MembershipMaxMembers bounds the members joining by invite can make
	// (count). Default 10000.
	MembershipMaxMembers int `env:"MEMBERSHIP_MAX_MEMBERS" envDefault:"10000"`

	// Search, metrics, retention and logs (see features.go).

	// SearchKinds are the kinds whose content is indexed for NIP-50 search
	// (kinds, comma-separated; none: search off). Default 1,30023.
	SearchKinds string `env:"SEARCH_KINDS" envDefault:"1,30023"`
	// MetricsToken, if set, is the bearer token /metrics requires (text;
	// empty: /metrics is open where it is served). Default empty.
	MetricsToken string `env:"METRICS_TOKEN" envDefault:""`
	// MetricsListen, if set, serves /metrics on this separate address and
	// not on the relay's (host:port; empty: on the relay's port, but only
	// with a token or when nothing but loopback reaches it; see
	// metricsOnRelayPort). Default empty.
	MetricsListen string `env:"METRICS_LISTEN" envDefault:""`
	// Dashboard serves the operator's page at /dashboard on the relay's
	// port, for admins (NIP-98) and the metrics token: on or off. Default
	// on.
	Dashboard string `env:"DASHBOARD" envDefault:"on"`
	// PprofListen, if set, serves Go's profiler (net/http/pprof) on this
	// separate address, never on the relay's (host:port; empty: off).
	// Default empty.
	PprofListen string `env:"PPROF_LISTEN" envDefault:""`
	// Retention deletes old events of some kinds (KINDS:AGE rules,
	// comma-separated, such as 7:30d,1:8760h; empty: keep everything).
	// Default empty.
	Retention string `env:"RETENTION" envDefault:""`
	// SlowQuery logs stored queries taking at least this long with their
	// filters (duration, 0: never). Default 500ms.
	SlowQuery time.Duration `env:"SLOW_QUERY" envDefault:"500ms" reload:"live"`

	// Moving events between relays (see sync.go and mirror.go).

	// Negentropy turns NIP-77 set reconciliation on (true or false). Default true.
	Negentropy bool `env:"NEGENTROPY" envDefault:"true"`
	// NegMaxEvents caps the events one negentropy session may cover (events). Default 500000.
	NegMaxEvents int `env:"NEG_MAX_EVENTS" envDefault:"500000"`
	// NegMaxTotalEvents caps the events all open negentropy sessions of the
	// relay hold together, 40 bytes each (events). Default 2000000.
	NegMaxTotalEvents int `env:"NEG_MAX_TOTAL_EVENTS" envDefault:"2000000"`
	// MirrorConfig is the path of the live mirroring config that wisp serve
	// runs (path; empty: no mirroring). Default empty.
	MirrorConfig string `env:"MIRROR_CONFIG" envDefault:"" reload:"live"`
}

// loadConfig reads Config from environ (KEY=VALUE entries, as os.Environ
// returns them) and WISP_CONFIG_FILE, if set (see configfile.go), and
// validates it. Only environ is read, never the process environment, so
// tests stay independent of the machine.
func loadConfig(environ []string) (Config, error) {
	cfg, _, err := loadConfigNoting(environ)
	return cfg, err
}

// loadConfigNoting is loadConfig, which also returns the variables
// WISP_CONFIG_FILE set over a different value in the environment.
func loadConfigNoting(environ []string) (Config, []string, error) {
	m, overridden, err := configEnviron(environ)
	if err != nil {
		return Config{}, nil, err
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: envPrefix, Environment: m}); err != nil {
		return Config{}, nil, &configError{explainParse(err, m)}
	}
	if errs := cfg.validate(); len(errs) > 0 {
		return Config{}, nil, &configError{errs}
	}
	return cfg, overridden, nil
}

// configError lists every bad setting, one per line when there are several.
type configError struct{ errs []error }

func (e *configError) Error() string {
	if len(e.errs) == 1 {
		return "invalid configuration: " + e.errs[0].Error()
	}
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, err := range e.errs {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *configError) Unwrap() []error { return e.errs }

// explainParse rewrites env's parse errors, which name Go fields, to name
// the variable, its value and what it should look like.
func explainParse(err error, environ map[string]string) []error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{err}
	}
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			errs = append(errs, e)
			continue
		}
		f, ok := reflect.TypeFor[Config]().FieldByName(pe.Name)
		if !ok {
			errs = append(errs, e)
			continue
		}
		key := envPrefix + f.Tag.Get("env")
		want := "a valid " + pe.Type.String()
		switch {
		case pe.Type == reflect.TypeFor[time.Duration]():
			want = "a duration such as 90s, 5m or 1h"
		case pe.Type.Kind() == reflect.Int:
			want = "a whole number"
		}
		errs = append(errs, fmt.Errorf("%s=%q: want %s", key, environ[key], want))
	}
	return errs
}

// validate reports every bad setting at once, each as WISP_NAME=value: reason.
func (c Config) validate() []error {
	var errs []error
	bad := func(name string, value any, reason string) {
		errs = append(errs, fmt.Errorf("%s%s=%q: %s", envPrefix, name, fmt.Sprint(value), reason))
	}

	if c.PprofListen != "" {
		if err := checkListen(c.PprofListen); err != nil {
			bad("PPROF_LISTEN", c.PprofListen, "want host:port: "+err.Error())
		}
	}
	if err := checkListen(c.Listen); err != nil {
		bad("LISTEN", c.Listen, "want host:port: "+err.Error())
	}
	if c.DataDir == "" {
		bad("DATA_DIR", c.DataDir, "must not be empty")
	}
	if c.DatabaseURL != "" && !isPostgresURL(c.DatabaseURL) {
		bad("DATABASE_URL", redactURL(c.DatabaseURL), "want a postgres:// URL (unset: SQLite in "+envPrefix+"DATA_DIR)")
	}
	switch {
	case c.DatabaseReadURL == "":
	case c.DatabaseURL == "":
		bad("DATABASE_READ_URL", redactURL(c.DatabaseReadURL), "needs "+envPrefix+"DATABASE_URL (a read replica of PostgreSQL)")
	case !isPostgresURL(c.DatabaseReadURL):
		bad("DATABASE_READ_URL", redactURL(c.DatabaseReadURL), "want a postgres:// URL")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("LOG_LEVEL", c.LogLevel, "want debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LOG_FORMAT", c.LogFormat, "want text or json")
	}
	if c.LogIPs != "hashed" && c.LogIPs != "full" && c.LogIPs != "off" {
		bad("LOG_IPS", c.LogIPs, "want hashed, full or off")
	}
	if c.Dashboard != "on" && c.Dashboard != "off" {
		bad("DASHBOARD", c.Dashboard, "want on or off")
	}
	if c.Sync != "normal" && c.Sync != "full" {
		bad("SYNC", c.Sync, "want normal or full")
	}
	if c.RelayPubKey != "" {
		if b, err := hex.DecodeString(c.RelayPubKey); err != nil || len(b) != 32 || strings.ToLower(c.RelayPubKey) != c.RelayPubKey {
			bad("RELAY_PUBKEY", c.RelayPubKey, "want 64 lowercase hex characters")
		}
	}
	errs = append(errs, c.validateURLs()...)

	positive := []struct {
		name string
		v    any
		ok   bool
	}{
		{"MAX_MESSAGE_BYTES", c.MaxMessageBytes, c.MaxMessageBytes > 0},
		{"MAX_EVENT_BYTES", c.MaxEventBytes, c.MaxEventBytes > 0},
		{"MAX_EVENT_TAGS", c.MaxEventTags, c.MaxEventTags > 0},
		{"MAX_TAG_VALUE_BYTES", c.MaxTagValueBytes, c.MaxTagValueBytes > 0},
		{"MAX_CONTENT_LENGTH", c.MaxContentLength, c.MaxContentLength > 0},
		{"MAX_SUBSCRIPTIONS", c.MaxSubscriptions, c.MaxSubscriptions > 0},
		{"MAX_SUBSCRIPTION_BYTES", c.MaxSubscriptionBytes, c.MaxSubscriptionBytes > 0},
		{"MAX_FILTERS", c.MaxFilters, c.MaxFilters > 0},
		{"MAX_FILTER_VALUES", c.MaxFilterValues, c.MaxFilterValues > 0},
		{"MAX_LIMIT", c.MaxLimit, c.MaxLimit > 0},
		{"DEFAULT_LIMIT", c.DefaultLimit, c.DefaultLimit > 0},
		{"MAX_PENDING_BYTES", c.MaxPendingBytes, c.MaxPendingBytes > 0},
		{"QUERY_TIMEOUT", c.QueryTimeout, c.QueryTimeout > 0},
		{"WRITE_BATCH_MAX", c.WriteBatchMax, c.WriteBatchMax > 0},
		{"WRITE_QUEUE", c.WriteQueue, c.WriteQueue > 0},
		{"EXPIRY_SWEEP", c.ExpirySweep, c.ExpirySweep > 0},
		{"READ_CONNS", c.ReadConns, c.ReadConns > 0},
		{"DATABASE_MAX_CONNS", c.DatabaseMaxConns, c.DatabaseMaxConns > 0},
		{"NEG_MAX_EVENTS", c.NegMaxEvents, c.NegMaxEvents > 0},
		{"NEG_MAX_TOTAL_EVENTS", c.NegMaxTotalEvents, c.NegMaxTotalEvents > 0},
	}
	for _, p := range positive {
		if !p.ok {
			bad(p.name, p.v, "must be positive")
		}
	}
	notNegative := []struct {
		name string
		v    any
		ok   bool
	}{
		{"CREATED_AT_FUTURE", c.CreatedAtFuture, c.CreatedAtFuture >= 0},
		{"CREATED_AT_PAST", c.CreatedAtPast, c.CreatedAtPast >= 0},
		{"VERIFY_WORKERS", c.VerifyWorkers, c.VerifyWorkers >= 0},
		{"CHECKPOINT_INTERVAL", c.CheckpointInterval, c.CheckpointInterval >= 0},
	}
	for _, p := range notNegative {
		if !p.ok {
			bad(p.name, p.v, "must not be negative")
		}
	}

	if c.DefaultLimit > c.MaxLimit {
		bad("DEFAULT_LIMIT", c.DefaultLimit, fmt.Sprintf("must not exceed %sMAX_LIMIT (%d)", envPrefix, c.MaxLimit))
	}
	// An event travels inside one message, so a larger event limit would be
	// advertised in NIP-11 but could never be reached.
	if c.MaxEventBytes > c.MaxMessageBytes {
		bad("MAX_EVENT_BYTES", c.MaxEventBytes, fmt.Sprintf("must not exceed %sMAX_MESSAGE_BYTES (%d)", envPrefix, c.MaxMessageBytes))
	}
	errs = append(errs, c.validatePolicy()...)
	errs = append(errs, c.validateFeatures()...)
	errs = append(errs, c.validateCommunity()...)
	return errs
}

// checkListen accepts host:port with a numeric port (0 picks a free one).
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// parseLevel reads a slog level name (debug, info, warn, error).
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// isPostgresURL accepts the URL forms of libpq and pgx: postgres:// and
// postgresql://.
func isPostgresURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// dbPath is where the SQLite database lives.
func (c Config) dbPath() string { return filepath.Join(c.DataDir, "wisp.db") }

// fullSync is WISP_SYNC=full: every commit synced to disk before its OK.
func (c Config) fullSync() bool { return c.Sync == "full" }

// limits are the relay limits this configuration sets. Fields without a
// variable (the NIP-01 sub id length) keep the relay's default.
func (c Config) limits() relay.Limits {
	l := relay.DefaultLimits()
	l.MaxMessageBytes = c.MaxMessageBytes
	l.MaxEventBytes = c.MaxEventBytes
	l.MaxEventTags = c.MaxEventTags
	l.MaxTagValueBytes = c.MaxTagValueBytes
	l.MaxContentLength = c.MaxContentLength
	l.MaxSubscriptions = c.MaxSubscriptions
	l.MaxSubscriptionBytes = c.MaxSubscriptionBytes
	l.MaxFilters = c.MaxFilters
	l.MaxFilterValues = c.MaxFilterValues
	l.MaxLimit = c.MaxLimit
	l.DefaultLimit = c.DefaultLimit
	l.CreatedAtFuture = c.CreatedAtFuture
	l.CreatedAtPast = c.CreatedAtPast
	l.MaxPendingBytes = c.MaxPendingBytes
	l.QueryTimeout = c.QueryTimeout
	return l
}

// info is the operator description for NIP-11 and the front page.
func (c Config) info() relay.Info {
	return relay.Info{
		Name:        c.RelayName,
		Description: c.RelayDescription,
		PubKey:      c.RelayPubKey,
		Contact:     c.RelayContact,
		Icon:        c.RelayIcon,
		PublicURL:   c.PublicURL,
		OtherURLs:   splitList(c.OtherURLs),
	}
}
