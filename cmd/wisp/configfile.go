package main

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/caarlos0/env/v11"
)

// WISP_CONFIG_FILE: the same WISP_ variables as the environment, in
// env-file form, read at start and re-read by wisp serve on SIGHUP. A
// variable the file sets wins over the environment, so that every setting
// in the file can change by a reload; the environment gives the rest
// (such as the Docker image's WISP_LISTEN, or systemd's Environment=).

// configFileVar is the variable naming the file; only the environment may
// set it.
const configFileVar = envPrefix + "CONFIG_FILE"

// configEnviron is environ (KEY=VALUE entries) as a map, with the
// settings of WISP_CONFIG_FILE over it; overridden names the variables set
// in both with different values.
func configEnviron(environ []string) (m map[string]string, overridden []string, err error) {
	m = make(map[string]string, len(environ)) // non-nil: env falls back to os.Environ on nil
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	path := m[configFileVar]
	if path == "" {
		return m, nil, nil
	}
	file, err := readConfigFile(path)
	if err != nil {
		return nil, nil, &configError{[]error{err}}
	}
	for _, kv := range file {
		if old, ok := m[kv.key]; ok && old != kv.value {
			overridden = append(overridden, kv.key)
		}
		m[kv.key] = kv.value
	}
	slices.Sort(overridden)
	return m, overridden, nil
}

type fileSetting struct{ key, value string }

// readConfigFile reads an env file: KEY=VALUE lines; blank lines and
// lines starting with # are skipped; a value may be put in single or
// double quotes, which are removed (as systemd's EnvironmentFile= and a
// shell do; there are no escapes, and a # inside a value is kept). Only
// WISP_ variables that wisp reads may be set, each once; other variables
// (such as GOMEMLIMIT, which Go reads from the environment only) are
// skipped. Every mistake is reported, with its line.
func readConfigFile(path string) ([]fileSetting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configFileVar, err)
	}
	known := knownVariables()
	var (
		out  []fileSetting
		errs []string
		seen = map[string]int{}
	)
	for n, line := range strings.Split(string(b), "\n") {
		n++
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("line %d: %q is not KEY=VALUE", n, line))
			continue
		case !strings.HasPrefix(key, envPrefix):
			continue // another program's variable
		case key == configFileVar:
			errs = append(errs, fmt.Sprintf("line %d: %s can be set only in the environment", n, key))
			continue
		case !known[key]:
			errs = append(errs, fmt.Sprintf("line %d: %s is not a wisp setting (config.example.env lists them)", n, key))
			continue
		case seen[key] > 0:
			errs = append(errs, fmt.Sprintf("line %d: %s is set again (first on line %d)", n, key, seen[key]))
			continue
		}
		seen[key] = n
		out = append(out, fileSetting{key, unquote(strings.TrimSpace(value))})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s %s: %s", configFileVar, path, strings.Join(errs, "; "))
	}
	return out, nil
}

// unquote removes one pair of matching quotes around v.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// knownVariables are the names of every WISP_ variable Config reads.
func knownVariables() map[string]bool {
	params, _ := env.GetFieldParamsWithOptions(&Config{}, env.Options{Prefix: envPrefix})
	known := make(map[string]bool, len(params))
	for _, p := range params {
		known[p.Key] = true
	}
	return known
}

// A reload (SIGHUP) applies the settings of the fields tagged
// reload:"live" at once; the others take effect at the next start.

// configChange is what a reload found changed: the live variables it
// applies, and those that need a restart.
type configChange struct {
	live, restart []string
}

// reloadedConfig is the configuration a reload puts in force over cur:
// next's live settings, cur's others (they change only at a restart).
func reloadedConfig(cur, next Config) (Config, configChange) {
	var ch configChange
	eff := cur
	cv, nv, ev := reflect.ValueOf(cur), reflect.ValueOf(next), reflect.ValueOf(&eff).Elem()
	t := cv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if reflect.DeepEqual(cv.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		name := envPrefix + f.Tag.Get("env")
		if f.Tag.Get("reload") == "live" {
			ev.Field(i).Set(nv.Field(i))
			ch.live = append(ch.live, name)
		} else {
			ch.restart = append(ch.restart, name)
		}
	}
	return eff, ch
}

// liveVariables are the names of the variables a reload applies.
func liveVariables() []string {
	var names []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("reload") == "live" {
			names = append(names, envPrefix+f.Tag.Get("env"))
		}
	}
	return names
}
