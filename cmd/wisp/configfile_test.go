package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// What WISP_CONFIG_FILE sets wins over the environment; the environment
// gives the rest. Comments, blank lines, quotes and other programs'
// variables are as in an env file.
func TestConfigFileOverEnvironment(t *testing.T) {
	file := tempPath(t, "wisp.env")
	writeFile(t, file, envLines(
		"# a comment",
		"",
		`WISP_RELAY_NAME="my relay"`,
		"WISP_RELAY_DESCRIPTION=relay #1 = the best",
		"  WISP_MAX_LIMIT = 200  ",
		"WISP_DEFAULT_LIMIT='50'",
		"GOMEMLIMIT=400MiB",
	))
	cfg, overridden, err := loadConfigNoting([]string{
		"WISP_CONFIG_FILE=" + file,
		"WISP_RELAY_NAME=env name",
		"WISP_MAX_LIMIT=200", // the same in both: not an override
		"WISP_DATA_DIR=/srv/wisp",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RelayName != "my relay" || cfg.RelayDescription != "relay #1 = the best" || cfg.MaxLimit != 200 ||
		cfg.DefaultLimit != 50 || cfg.DataDir != "/srv/wisp" || cfg.ConfigFile != file {
		t.Errorf("config %+v", cfg)
	}
	if !slices.Equal(overridden, []string{"WISP_RELAY_NAME"}) {
		t.Errorf("overridden %v, want WISP_RELAY_NAME", overridden)
	}

	// config.example.env as it comes sets nothing.
	def, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	example, _ := filepath.Abs("../../config.example.env")
	got, err := loadConfig([]string{"WISP_CONFIG_FILE=" + example})
	if err != nil {
		t.Fatal(err)
	}
	got.ConfigFile = ""
	if got != def {
		t.Errorf("config.example.env as WISP_CONFIG_FILE changes the defaults:\n got %+v\nwant %+v", got, def)
	}
}

// Every mistake in the file is reported at once, with its line; a value
// that does not parse is reported as one from the environment is.
func TestConfigFileMistakes(t *testing.T) {
	file := tempPath(t, "wisp.env")
	writeFile(t, file, envLines(
		"WISP_LISTEN=127.0.0.1:4869",
		"WISP_LISTN=127.0.0.1:4869",
		"just words",
		"WISP_LISTEN=127.0.0.1:4870",
		"WISP_CONFIG_FILE=/etc/other.env",
	))
	_, err := loadConfig([]string{"WISP_CONFIG_FILE=" + file})
	for _, want := range []string{
		"line 2: WISP_LISTN is not a wisp setting",
		`line 3: "just words" is not KEY=VALUE`,
		"line 4: WISP_LISTEN is set again (first on line 1)",
		"line 5: WISP_CONFIG_FILE can be set only in the environment",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}

	writeFile(t, file, "WISP_MAX_LIMIT=lots\n")
	if _, err := loadConfig([]string{"WISP_CONFIG_FILE=" + file}); err == nil || !strings.Contains(err.Error(), `WISP_MAX_LIMIT="lots": want a whole number`) {
		t.Errorf("bad value: %v", err)
	}
	if _, err := loadConfig([]string{"WISP_CONFIG_FILE=" + filepath.Join(t.TempDir(), "missing.env")}); err == nil || !strings.Contains(err.Error(), "WISP_CONFIG_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

// A reload applies the live settings and keeps the others as they run,
// naming both.
func TestReloadedConfig(t *testing.T) {
	cur, err := loadConfig([]string{"WISP_MIN_POW=4", "WISP_READ_CONNS=4"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := loadConfig([]string{"WISP_MIN_POW=8", "WISP_READ_CONNS=2", "WISP_RELAY_NAME=new", "WISP_PUBLIC_URL=wss://x.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	eff, ch := reloadedConfig(cur, next)
	if eff.MinPoW != 8 || eff.RelayName != "new" || eff.ReadConns != 4 || eff.PublicURL != "" {
		t.Errorf("in force after the reload: %+v", eff)
	}
	if !slices.Equal(ch.live, []string{"WISP_RELAY_NAME", "WISP_MIN_POW"}) || !slices.Equal(ch.restart, []string{"WISP_PUBLIC_URL", "WISP_READ_CONNS"}) {
		t.Errorf("change %+v", ch)
	}
}

// A file valid alone but not with the settings that run until a restart
// is refused: WISP_AUTH=write on a public address needs WISP_PUBLIC_URL,
// which the file sets but only a restart applies.
func TestReloadRefusesWhatCannotRunTogether(t *testing.T) {
	file := tempPath(t, "wisp.env")
	writeFile(t, file, "")
	environ := []string{"WISP_CONFIG_FILE=" + file, "WISP_LISTEN=0.0.0.0:4869"}
	cur, err := loadConfig(environ)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, envLines("WISP_AUTH=write", "WISP_PUBLIC_URL=wss://relay.example.com"))
	if _, err := loadConfig(environ); err != nil {
		t.Fatalf("the file alone: %v", err)
	}
	r := &reloader{environ: environ, log: slog.New(slog.DiscardHandler), cur: cur}
	_, _, _, err = r.prepare()
	if err == nil || !strings.Contains(err.Error(), `WISP_AUTH="write": needs WISP_PUBLIC_URL`) ||
		!strings.Contains(err.Error(), "WISP_PUBLIC_URL change only at a restart") {
		t.Errorf("prepare: %v", err)
	}
}

// The README's reload section lists exactly the variables a reload
// applies (the reload:"live" tags).
func TestReadmeListsLiveVariables(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "**SIGHUP applies:**")
	if !ok {
		t.Fatal(`README.md has no "**SIGHUP applies:**" list`)
	}
	list, _, _ := strings.Cut(rest, "\n\n")
	var got []string
	for _, m := range regexp.MustCompile("`(WISP_[A-Z0-9_]+)`").FindAllStringSubmatch(list, -1) {
		got = append(got, m[1])
	}
	want := liveVariables()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("README lists as reloaded:\n %v\nthe code reloads:\n %v", got, want)
	}
}
