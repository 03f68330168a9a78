package relay_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// A policy reloaded while the relay runs judges the next event by the new
// lists, rates and caps, on connections opened before too; what an admin
// changed over NIP-86 stays.
func TestPolicyReloadWhileServing(t *testing.T) {
	admin, alice, spammer := newKey(t), newKey(t), newKey(t)
	var pol *policy.Policy
	tr, _ := startManagedRelay(t, filepath.Join(t.TempDir(), "wisp.db"), admin, func(cfg *relay.Config) {
		pol = cfg.Policy.(*policy.Policy)
	})
	lists := pol.Lists()
	lists.SetFixed(nil, nil, nil, policy.KindSet{{From: 7, To: 7}})
	if err := pol.Reload(policy.Config{}); err != nil {
		t.Fatal(err)
	}

	c := dialFrom(t, tr.url, "192.0.2.1")
	wantRefused(t, c.publish(alice.sign(t, 7, now(), "+")), "blocked")
	c.mustPublish(alice.sign(t, 1, now(), "a note"))
	c.mustPublish(alice.sign(t, 1, now()-1, "another"))
	tr.must(t, admin, "banpubkey", spammer.pk, "spam")

	// Kind 7 allowed, kind 1 denied; two events per IP; one connection per IP.
	lists.SetFixed(nil, nil, nil, policy.KindSet{{From: 1, To: 1}})
	rate, _ := policy.ParseRate("2/1h")
	if err := pol.Reload(policy.Config{EventRateIP: rate, MaxConnsPerIP: 1}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, c.publish(alice.sign(t, 1, now()-2, "denied now")), "blocked")
	c.mustPublish(alice.sign(t, 7, now(), "+"))
	wantRefused(t, c.publish(alice.sign(t, 7, now()-1, "+")), "rate-limited")
	if _, resp, err := tryDial(t, tr.url, "192.0.2.1"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second connection from one IP: %v, want HTTP 429", err)
	}
	// The admin's ban survived the reload.
	other := dialFrom(t, tr.url, "192.0.2.2")
	wantRefused(t, other.publish(spammer.sign(t, 7, now(), "+")), "blocked")
	other.mustPublish(alice.sign(t, 7, now()-3, "+"))

	// NIP-11 says writes are restricted while a kind list holds.
	lists.SetFixed(nil, nil, nil, nil)
	if err := pol.Reload(policy.Config{MinPoW: 8}); err != nil {
		t.Fatal(err)
	}
	if got := pol.Limitation(); got.MinPoW != 8 || !got.RestrictedWrites {
		t.Errorf("limitation %+v", got)
	}
	wantRefused(t, other.publish(alice.sign(t, 1, now()-4, "no work")), "pow")
}

// A plugin that cannot be found is refused whole: the old rules stay.
func TestPolicyReloadRefusedKeepsRules(t *testing.T) {
	alice := newKey(t)
	pol, err := policy.New(policy.Config{}, policy.NewLists(nil, []string{alice.pk}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := startRelayAt(t, filepath.Join(t.TempDir(), "wisp.db"), func(_ *sqlite.Store, rc *relay.Config) { rc.Policy = pol })
	if err := pol.Reload(policy.Config{MinPoW: 4, Plugin: "/nonexistent/plugin"}); err == nil {
		t.Fatal("Reload with a missing plugin succeeded")
	}
	if got := pol.Config().MinPoW; got != 0 {
		t.Errorf("MinPoW %d after a refused reload", got)
	}
	c := dial(t, tr.url)
	wantRefused(t, c.publish(alice.sign(t, 1, now(), "x")), "blocked")
	c.mustPublish(newKey(t).sign(t, 1, now(), "x"))
}

// A reload that names another plugin command starts it for the next
// event; one that keeps the command keeps the running plugin.
func TestPolicyReloadSwapsPlugin(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sh"), filepath.Join(dir, "b.sh")
	reject := func(who string) string {
		return `#!/bin/sh
while IFS= read -r line; do
	id=$(printf '%s\n' "$line" | sed -n 's/.*"event":{"id":"\([0-9a-f]*\)".*/\1/p')
	printf '{"id":"%s","action":"reject","msg":"blocked: ` + who + `"}\n' "$id"
done
`
	}
	writeScript(t, a, reject("plugin a"))
	writeScript(t, b, reject("plugin b"))
	pol, err := policy.New(policy.Config{Plugin: a}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := startRelayAt(t, filepath.Join(dir, "wisp.db"), func(_ *sqlite.Store, rc *relay.Config) { rc.Policy = pol })
	c := dial(t, tr.url)
	k := newKey(t)
	if res := c.publish(k.sign(t, 1, now(), "1")); res.msg != "blocked: plugin a" {
		t.Fatalf("first plugin: %+v", res)
	}
	if err := pol.Reload(policy.Config{Plugin: b}); err != nil {
		t.Fatal(err)
	}
	if res := c.publish(k.sign(t, 1, now(), "2")); res.msg != "blocked: plugin b" {
		t.Errorf("after the reload: %+v", res)
	}
	if err := pol.Reload(policy.Config{}); err != nil {
		t.Fatal(err)
	}
	c.mustPublish(k.sign(t, 1, now(), "3"))
}
