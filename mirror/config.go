package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Config is a live mirroring config file, JSON:
//
//	{
//	  "streams": [
//	    {
//	      "name": "friends",
//	      "dir": "both",
//	      "urls": ["wss://relay.example.com", "wss://other.example.org"],
//	      "filter": {"kinds": [0, 1, 3]},
//	      "plugin_down": "/etc/wisp/down-policy",
//	      "plugin_up": ""
//	    }
//	  ]
//	}
//
// dir is down (remote to here), up (here to remote) or both; filter is a
// NIP-01 filter (without since, until or limit: streams are live) and
// defaults to everything; the plugins are strfry write-policy plugins that
// judge each event going that way (empty: none).
type Config struct {
	Streams []StreamConfig `json:"streams"`
}

// StreamConfig is one stream of a Config.
type StreamConfig struct {
	Name       string          `json:"name"`
	Dir        string          `json:"dir"`
	URLs       []string        `json:"urls"`
	Filter     json.RawMessage `json:"filter,omitempty"`
	PluginDown string          `json:"plugin_down,omitempty"`
	PluginUp   string          `json:"plugin_up,omitempty"`
	// PluginTimeout is how long a plugin may take per event (Go duration;
	// empty: 5s).
	PluginTimeout string `json:"plugin_timeout,omitempty"`

	dir     Direction
	filter  nostr.Filter
	timeout time.Duration
}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mirror config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses and checks a config.
func ParseConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("mirror config: %w", err)
	}
	var errs []error
	for i := range c.Streams {
		s := &c.Streams[i]
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("stream %d", i+1)
			s.Name = name
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
		}
		d, err := ParseDirection(s.Dir)
		if err != nil {
			bad("%v", err)
		}
		s.dir = d
		if len(s.URLs) == 0 {
			bad("no urls")
		}
		for _, u := range s.URLs {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
				bad("%q is not a ws:// or wss:// URL", u)
			}
		}
		if len(s.Filter) > 0 && string(s.Filter) != "null" {
			if err := s.filter.UnmarshalJSON(s.Filter); err != nil {
				bad("filter: %v", err)
			}
			if s.filter.Since != nil || s.filter.Until != nil || s.filter.Limit != 0 || s.filter.Search != "" {
				bad("filter: since, until, limit and search make no sense in a live stream")
			}
		}
		s.timeout = 5 * time.Second
		if s.PluginTimeout != "" {
			t, err := time.ParseDuration(s.PluginTimeout)
			if err != nil || t <= 0 {
				bad("plugin_timeout %q: want a duration such as 5s", s.PluginTimeout)
			}
			s.timeout = t
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("mirror config: %w", errors.Join(errs...))
	}
	return &c, nil
}
