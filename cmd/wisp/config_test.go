package main

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wisp-relay/wisp/relay"
)

// configDefaults maps every WISP_ variable of Config to its default, read
// from the struct tags.
func configDefaults(t *testing.T) map[string]string {
	t.Helper()
	params, err := env.GetFieldParamsWithOptions(&Config{}, env.Options{Prefix: envPrefix})
	if err != nil {
		t.Fatalf("read config tags: %v", err)
	}
	want := make(map[string]string, len(params))
	for _, p := range params {
		if !p.HasDefaultValue {
			t.Errorf("%s has no envDefault", p.Key)
		}
		want[p.Key] = p.DefaultValue
	}
	if len(want) != reflect.TypeFor[Config]().NumField() {
		t.Errorf("config tags name %d variables, Config has %d fields", len(want), reflect.TypeFor[Config]().NumField())
	}
	return want
}

// exampleSetting is a setting of config.example.env: commented out, so
// that the file as it comes sets nothing.
var exampleSetting = regexp.MustCompile(`^#(WISP_[A-Z0-9_]+)=(.*)$`)

// config.example.env lists every variable with its default, commented out
// and with a comment above it, and sets none.
func TestExampleEnvMatchesConfig(t *testing.T) {
	want := configDefaults(t)

	f, err := os.Open("../../config.example.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	prevComment := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		m := exampleSetting.FindStringSubmatch(line)
		switch {
		case line == "":
			prevComment = false
		case m != nil:
			k, v := m[1], m[2]
			if !prevComment {
				t.Errorf("line %d: %s has no comment above it", n, k)
			}
			if _, dup := got[k]; dup {
				t.Errorf("line %d: %s listed twice", n, k)
			}
			got[k] = v
			prevComment = false
		case strings.HasPrefix(line, "#"):
			prevComment = true
		default:
			t.Errorf("line %d: %q sets a variable; the example sets none (comment it out as #WISP_...=default)", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		gv, ok := got[k]
		switch {
		case !ok:
			t.Errorf("config.example.env misses %s (default %q)", k, v)
		case gv != v:
			t.Errorf("config.example.env: %s=%q, but the default is %q", k, gv, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("config.example.env lists %s, which Config does not read", k)
		}
	}
}

// envFile reads a file as docker run --env-file does: KEY=VALUE lines set
// KEY, lines starting with # are comments, blank lines are skipped (a
// bare KEY, which passes the host's variable through, sets nothing here).
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || strings.HasPrefix(line, "#") || !strings.Contains(line, "=") {
			continue
		}
		env = append(env, line)
	}
	return env
}

// dockerfileEnv reads the ENV instructions of the Dockerfile.
func dockerfileEnv(t *testing.T, dockerfile string) []string {
	t.Helper()
	var env []string
	in := false
	for line := range strings.SplitSeq(dockerfile, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			line, in = rest, true
		} else if !in {
			continue
		}
		in = strings.HasSuffix(line, "\\")
		for _, kv := range strings.Fields(strings.TrimSuffix(line, "\\")) {
			env = append(env, kv)
		}
	}
	return env
}

// What the README tells a Docker user to do works: the image listens on
// every interface and keeps its data in the volume, and
// --env-file config.example.env (as it comes) changes neither; the
// image's health check is wisp health.
func TestDockerImageAndExampleEnvAgree(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(b)
	if set := envFile(t, "../../config.example.env"); len(set) > 0 {
		t.Errorf("--env-file config.example.env sets %v, overriding the image", set)
	}
	// docker run: the image's ENV, then --env-file on top.
	environ := append(dockerfileEnv(t, dockerfile), envFile(t, "../../config.example.env")...)
	cfg, err := loadConfig(environ)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:4869" || cfg.DataDir != "/data" {
		t.Errorf("in the image: WISP_LISTEN=%s WISP_DATA_DIR=%s, want 0.0.0.0:4869 and /data", cfg.Listen, cfg.DataDir)
	}
	for _, want := range []string{"EXPOSE 4869", "VOLUME /data", `HEALTHCHECK `, `CMD ["/usr/local/bin/wisp", "health"]`, "USER wisp"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

// The README's configuration tables list every variable with its default,
// as rows like "| `WISP_LISTEN` | `127.0.0.1:4869` | ... |", with "(empty)"
// for an empty default.
func TestReadmeListsEveryVariable(t *testing.T) {
	want := configDefaults(t)
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(WISP_[A-Z0-9_]+)` \\| (`[^`]*`|\\(empty\\)) \\|")
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("README.md lists %s twice", m[1])
		}
		got[m[1]] = strings.Trim(m[2], "`")
		if m[2] == "(empty)" {
			got[m[1]] = ""
		}
	}
	for k, v := range want {
		gv, ok := got[k]
		switch {
		case !ok:
			t.Errorf("README.md has no table row for %s (default %q)", k, v)
		case gv != v:
			t.Errorf("README.md: %s default %q, but the default is %q", k, gv, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("README.md lists %s, which Config does not read", k)
		}
	}
}

// Every relay limit has a Config field of the same name, whose default is
// the relay's default, and limits() carries it over.
func TestLimitDefaultsMatchRelay(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.limits(), relay.DefaultLimits(); got != want {
		t.Errorf("default limits:\n got %+v\nwant %+v", got, want)
	}

	// Fields the relay fixes by protocol rather than by configuration.
	fixed := map[string]bool{"MaxSubIDLength": true}
	def := reflect.ValueOf(relay.DefaultLimits())
	cv := reflect.ValueOf(&cfg).Elem()
	lt := def.Type()
	for i := range lt.NumField() {
		name := lt.Field(i).Name
		if fixed[name] {
			continue
		}
		f := cv.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("relay.Limits.%s has no Config field", name)
			continue
		}
		if f.Type() != def.Field(i).Type() {
			t.Errorf("Config.%s is %s, relay.Limits.%s is %s", name, f.Type(), name, def.Field(i).Type())
			continue
		}
		if !reflect.DeepEqual(f.Interface(), def.Field(i).Interface()) {
			t.Errorf("default %s: config %v, relay %v", name, f.Interface(), def.Field(i).Interface())
		}
		// A distinct value must reach the relay's limits.
		switch f.Kind() {
		case reflect.Int:
			f.SetInt(int64(1000 + i))
		case reflect.Int64: // time.Duration
			f.SetInt(int64(time.Duration(1000+i) * time.Second))
		}
		if got := reflect.ValueOf(cfg.limits()).Field(i).Interface(); !reflect.DeepEqual(got, f.Interface()) {
			t.Errorf("limits() does not carry %s: got %v, want %v", name, got, f.Interface())
		}
	}
}

func TestLoadConfigReadsEnviron(t *testing.T) {
	// The process environment must not leak in: run gets only environ.
	t.Setenv("WISP_LISTEN", "not an address")
	cfg, err := loadConfig([]string{
		"WISP_DATA_DIR=/tmp/x",
		"WISP_MAX_LIMIT=100",
		"WISP_DEFAULT_LIMIT=10",
		"WISP_CREATED_AT_PAST=720h",
		"WISP_LOG_FORMAT=json",
		"OTHER=ignored",
		"WISP_RELAY_DESCRIPTION=a=b", // values may hold '='
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:4869" || cfg.DataDir != "/tmp/x" || cfg.dbPath() != "/tmp/x/wisp.db" {
		t.Errorf("listen %q data %q db %q", cfg.Listen, cfg.DataDir, cfg.dbPath())
	}
	l := cfg.limits()
	if l.MaxLimit != 100 || l.DefaultLimit != 10 || l.CreatedAtPast != 720*time.Hour {
		t.Errorf("limits %+v", l)
	}
	if cfg.LogFormat != "json" || cfg.RelayDescription != "a=b" {
		t.Errorf("log format %q description %q", cfg.LogFormat, cfg.RelayDescription)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		env  []string
		want []string // substrings of the error
	}{
		{[]string{"WISP_LISTEN=4869"}, []string{`WISP_LISTEN="4869": want host:port`, "missing port"}},
		{[]string{"WISP_LISTEN=localhost:http"}, []string{"WISP_LISTEN", "not a number"}},
		{[]string{"WISP_LISTEN=:70000"}, []string{"WISP_LISTEN"}},
		{[]string{"WISP_LOG_LEVEL=loud"}, []string{`WISP_LOG_LEVEL="loud": want debug, info, warn or error`}},
		{[]string{"WISP_LOG_FORMAT=xml"}, []string{`WISP_LOG_FORMAT="xml": want text or json`}},
		{[]string{"WISP_LOG_IPS=some"}, []string{`WISP_LOG_IPS="some": want hashed, full or off`}},
		{[]string{"WISP_SYNC=extra"}, []string{`WISP_SYNC="extra": want normal or full`}},
		{[]string{"WISP_METRICS_LISTEN=9469"}, []string{`WISP_METRICS_LISTEN="9469": want host:port`}},
		{[]string{"WISP_RELAY_PUBKEY=abc"}, []string{"WISP_RELAY_PUBKEY", "64 lowercase hex"}},
		{[]string{"WISP_PUBLIC_URL=https://example.com"}, []string{"WISP_PUBLIC_URL", "ws://"}},
		{[]string{"WISP_OTHER_URLS=wss://a.example.com,b.example.com"}, []string{"WISP_OTHER_URLS", `"b.example.com" is not a ws://`}},
		// AUTH and NIP-98 events must name a configured URL: beyond loopback,
		// modes that need them refuse to start without one.
		{[]string{"WISP_LISTEN=0.0.0.0:4869", "WISP_AUTH=all"}, []string{`WISP_AUTH="all": needs WISP_PUBLIC_URL`}},
		{[]string{"WISP_LISTEN=:4869", "WISP_AUTH=write"}, []string{`WISP_AUTH="write": needs WISP_PUBLIC_URL`}},
		{[]string{"WISP_LISTEN=192.0.2.1:4869", "WISP_ADMIN_PUBKEYS=" + strings.Repeat("ab", 32)}, []string{"WISP_ADMIN_PUBKEYS", "needs WISP_PUBLIC_URL"}},
		{[]string{"WISP_MAX_FILTERS=0"}, []string{`WISP_MAX_FILTERS="0": must be positive`}},
		{[]string{"WISP_QUERY_TIMEOUT=0s"}, []string{`WISP_QUERY_TIMEOUT="0s": must be positive`}},
		{[]string{"WISP_READ_CONNS=-1"}, []string{`WISP_READ_CONNS="-1": must be positive`}},
		{[]string{"WISP_CREATED_AT_PAST=-1h"}, []string{`WISP_CREATED_AT_PAST="-1h0m0s": must not be negative`}},
		{[]string{"WISP_VERIFY_WORKERS=-2"}, []string{`WISP_VERIFY_WORKERS="-2": must not be negative`}},
		{[]string{"WISP_DEFAULT_LIMIT=600", "WISP_MAX_LIMIT=500"}, []string{`WISP_DEFAULT_LIMIT="600": must not exceed WISP_MAX_LIMIT (500)`}},
		{[]string{"WISP_MAX_EVENT_BYTES=2000000"}, []string{`WISP_MAX_EVENT_BYTES="2000000": must not exceed WISP_MAX_MESSAGE_BYTES (524288)`}},
		// Every bad setting is reported at once.
		{[]string{"WISP_MAX_FILTERS=0", "WISP_LOG_FORMAT=xml"}, []string{"WISP_MAX_FILTERS", "WISP_LOG_FORMAT"}},
		// Values the parser itself refuses.
		{[]string{"WISP_MAX_LIMIT=lots"}, []string{`WISP_MAX_LIMIT="lots": want a whole number`}},
		{[]string{"WISP_EXPIRY_SWEEP=60"}, []string{`WISP_EXPIRY_SWEEP="60": want a duration`}},
		{[]string{"WISP_MAX_LIMIT=x", "WISP_QUERY_TIMEOUT=y"}, []string{"WISP_MAX_LIMIT", "WISP_QUERY_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			_, err := loadConfig(tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	valid := [][]string{
		{"WISP_LISTEN=127.0.0.1:0"},
		{"WISP_LISTEN=[::1]:4869"},
		{"WISP_LISTEN=:4869"},
		{"WISP_VERIFY_WORKERS=0", "WISP_CHECKPOINT_INTERVAL=0", "WISP_CREATED_AT_FUTURE=0"},
		{"WISP_PUBLIC_URL=wss://relay.example.com", "WISP_RELAY_PUBKEY=" + strings.Repeat("ab", 32)},
		{"WISP_LOG_LEVEL=DEBUG"},
		{"WISP_SYNC=full", "WISP_LOG_IPS=off", "WISP_METRICS_LISTEN=127.0.0.1:9469"},
		{"WISP_SYNC=normal", "WISP_LOG_IPS=full"},
		{"WISP_AUTH=all", "WISP_LISTEN=127.0.0.1:4869"},
		{"WISP_AUTH=all", "WISP_LISTEN=[::1]:4869", "WISP_ADMIN_PUBKEYS=" + strings.Repeat("ab", 32)},
		{"WISP_AUTH=all", "WISP_LISTEN=0.0.0.0:4869", "WISP_OTHER_URLS=ws://relay.lan:4869"},
		{"WISP_AUTH=write", "WISP_LISTEN=0.0.0.0:4869", "WISP_PUBLIC_URL=wss://relay.example.com", "WISP_OTHER_URLS=ws://x.onion, wss://b.example.com"},
	}
	for _, e := range valid {
		if _, err := loadConfig(e); err != nil {
			t.Errorf("%v: %v", e, err)
		}
	}
}
