package main

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/wisp-relay/wisp/mirror"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
)

// reloader applies a new configuration to a running wisp serve (SIGHUP):
// the settings tagged reload:"live" in Config, all or nothing.
type reloader struct {
	environ []string // the process environment, read again with WISP_CONFIG_FILE
	log     *slog.Logger
	level   *slog.LevelVar
	rl      *relay.Relay
	pol     *policy.Policy
	mirrors *serveMirrors

	mu  sync.Mutex
	cur Config // in force
}

// reload reads the environment and WISP_CONFIG_FILE again and applies
// what changed, or, if anything is wrong with the new configuration,
// nothing: the old one stays, and the log says why.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	eff, ch, mc, err := r.prepare()
	if err == nil {
		// The last step that can fail (a plugin that does not start); it
		// changes nothing when it fails.
		err = r.pol.Reload(eff.policyConfig(r.log))
	}
	if err != nil {
		r.log.Error("configuration not reloaded; the running one stays", "err", err)
		return err
	}
	allow, deny, allowKinds, denyKinds := eff.fixedLists()
	r.pol.Lists().SetFixed(allow, deny, allowKinds, denyKinds)
	r.rl.SetLive(relay.Live{Limits: eff.limits(), Info: eff.info(), SlowQuery: eff.SlowQuery})
	l, _ := parseLevel(eff.LogLevel)
	r.level.Set(l)
	// Even with WISP_MIRROR_CONFIG unchanged the file may have changed:
	// SIGHUP applies it now rather than at the next look.
	r.mirrors.set(eff.MirrorConfig, mc)
	r.cur = eff

	if len(ch.live) == 0 {
		r.log.Info("configuration reloaded: nothing changed")
	} else {
		r.log.Info("configuration reloaded", "changed", strings.Join(ch.live, " "))
	}
	if len(ch.restart) > 0 {
		r.log.Warn("configuration changes that take effect only at a restart (not applied)", "restart", strings.Join(ch.restart, " "))
	}
	return nil
}

// prepare reads and checks the new configuration: it must be valid as
// written (the next start reads it), valid with the settings that need a
// restart kept as they run, and its mirror config must load.
func (r *reloader) prepare() (Config, configChange, *mirror.Config, error) {
	next, err := loadConfig(r.environ)
	if err != nil {
		return Config{}, configChange{}, nil, err
	}
	eff, ch := reloadedConfig(r.cur, next)
	if errs := eff.validate(); len(errs) > 0 {
		// The new file is valid, but not with what runs until a restart
		// (WISP_AUTH=all with a WISP_PUBLIC_URL yet to come, say).
		return Config{}, configChange{}, nil, fmt.Errorf("%w; %s change only at a restart, and run as they were",
			&configError{errs}, strings.Join(ch.restart, " "))
	}
	var mc *mirror.Config
	if eff.MirrorConfig != "" {
		if mc, err = mirror.LoadConfig(eff.MirrorConfig); err != nil {
			return Config{}, configChange{}, nil, fmt.Errorf("%sMIRROR_CONFIG: %w", envPrefix, err)
		}
	}
	if eff.ConfigFile == "" && len(ch.live)+len(ch.restart) == 0 {
		// Nothing but the environment, which a running process cannot be
		// given again: say so, in case the operator expected a file.
		r.log.Info("no " + configFileVar + " is set: a reload reads only the environment wisp started with")
	}
	return eff, ch, mc, nil
}
