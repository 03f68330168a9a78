package relay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/policy"
)

// testPlugin is a strfry write-policy plugin in plain sh: it decides by the
// first word of the event's content.
const testPlugin = `#!/bin/sh
while IFS= read -r line; do
	id=$(printf '%s\n' "$line" | sed -n 's/.*"event":{"id":"\([0-9a-f]*\)".*/\1/p')
	case "$line" in
	*'"content":"spam'*) printf '{"id":"%s","action":"reject","msg":"blocked: no spam here"}\n' "$id" ;;
	*'"content":"bare'*) printf '{"id":"%s","action":"reject","msg":"no prefix given"}\n' "$id" ;;
	*'"content":"shadow'*) printf '{"id":"%s","action":"shadowReject","msg":""}\n' "$id" ;;
	*'"content":"hang'*) sleep 30 ;;
	*'"content":"crash'*) exit 3 ;;
	*'"content":"wrongid'*) printf '{"id":"%s","action":"accept"}\n' 0000000000000000000000000000000000000000000000000000000000000000 ;;
	*'"content":"weird'*) printf '{"id":"%s","action":"maybe"}\n' "$id" ;;
	*'"content":"whoami'*)
		src=$(printf '%s\n' "$line" | sed -n 's/.*"type":"new".*"receivedAt":[0-9]*,"sourceType":"\([^"]*\)","sourceInfo":"\([^"]*\)".*/\1 \2/p')
		authed=$(printf '%s\n' "$line" | sed -n 's/.*"authed":"\([0-9a-f]*\)".*/\1/p')
		printf '{"id":"%s","action":"reject","msg":"blocked: %s authed=%s"}\n' "$id" "$src" "$authed" ;;
	*) printf '{"id":"%s","action":"accept","msg":""}\n' "$id" ;;
	esac
done
`

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startPluginRelay(t *testing.T, command string) *testRelay {
	t.Helper()
	return startPolicyRelay(t, policy.Config{Plugin: command, PluginTimeout: 2 * time.Second}, nil) // roomy: a loaded CI machine can take 500 ms
}

func TestPluginDecisions(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	writeScript(t, script, testPlugin)
	tr := startPluginRelay(t, script)
	c := dialFrom(t, tr.url, "198.51.100.7")
	k := newKey(t)

	ok := k.sign(t, 1, now(), "hello")
	c.mustPublish(ok)

	res := c.publish(k.sign(t, 1, now(), "spam spam"))
	if res.ok || res.msg != "blocked: no spam here" {
		t.Fatalf("reject: %+v", res)
	}
	// A message without a prefix gets one.
	if res := c.publish(k.sign(t, 1, now(), "bare")); res.ok || res.msg != "blocked: no prefix given" {
		t.Fatalf("reject without prefix: %+v", res)
	}
	// shadowReject: the client is told OK, nothing is stored or broadcast.
	watcher := dial(t, tr.url)
	watcher.req("live", nostr.Filter{Authors: []string{k.pk}, Since: ptr(nostr.Timestamp(now()))})
	shadow := k.sign(t, 1, now(), "shadow banned")
	if res := c.publish(shadow); !res.ok || res.msg != "" {
		t.Fatalf("shadowReject: %+v, want OK true", res)
	}
	watcher.quiet(100 * time.Millisecond)
	if got := c.query("q", nostr.Filter{IDs: []string{shadow.ID}}); len(got) != 0 {
		t.Fatal("shadow-rejected event was stored")
	}

	// The plugin sees the source and the authenticated pubkey.
	if res := c.publish(k.sign(t, 1, now(), "whoami")); res.msg != "blocked: IP4 198.51.100.7 authed=" {
		t.Fatalf("whoami before AUTH: %+v", res)
	}
	if res := c.authenticate(k, c.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	if res := c.publish(k.sign(t, 1, now(), "whoami")); res.msg != "blocked: IP4 198.51.100.7 authed="+k.pk {
		t.Fatalf("whoami after AUTH: %+v", res)
	}
	c6 := dialFrom(t, tr.url, "2001:db8::1")
	if res := c6.publish(k.sign(t, 1, now(), "whoami")); res.msg != "blocked: IP6 2001:db8::1 authed=" {
		t.Fatalf("whoami over IPv6: %+v", res)
	}
}

// Every way a plugin can fail rejects the event with error: internal error,
// and the plugin is restarted for the next one.
func TestPluginFailsClosed(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	writeScript(t, script, testPlugin)
	tr := startPluginRelay(t, script)
	c := dial(t, tr.url)
	k := newKey(t)
	for _, content := range []string{"hang", "crash", "wrongid", "weird"} {
		start := time.Now()
		res := c.publish(k.sign(t, 1, now(), content))
		if res.ok || res.msg != "error: internal error" {
			t.Fatalf("%s: %+v, want error: internal error", content, res)
		}
		if content == "hang" && time.Since(start) > 5*time.Second {
			t.Fatalf("timeout took %s", time.Since(start))
		}
		// The plugin comes back (after a short restart delay).
		var ok *nostr.Event
		eventually(t, "the plugin to restart after "+content, func() bool {
			ok = k.sign(t, 1, now(), "fine after "+content)
			return c.publish(ok).ok
		})
		if got := c.query("q", nostr.Filter{IDs: []string{ok.ID}}); len(got) != 1 {
			t.Fatalf("event after %s not stored", content)
		}
	}
}

func TestPluginReloadsWhenChanged(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	writeScript(t, script, testPlugin)
	tr := startPluginRelay(t, script)
	c := dial(t, tr.url)
	k := newKey(t)
	c.mustPublish(k.sign(t, 1, now(), "v1 accepts"))

	v2 := strings.Replace(testPlugin, `*) printf '{"id":"%s","action":"accept","msg":""}\n' "$id" ;;`,
		`*) printf '{"id":"%s","action":"reject","msg":"blocked: version two"}\n' "$id" ;;`, 1)
	if v2 == testPlugin {
		t.Fatal("test plugin has no default branch to change")
	}
	writeScript(t, script, v2)
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(script, later, later); err != nil {
		t.Fatal(err)
	}
	if res := c.publish(k.sign(t, 1, now(), "v2 rejects")); res.ok || res.msg != "blocked: version two" {
		t.Fatalf("after reload: %+v", res)
	}
}

// A command with arguments runs through the shell.
func TestPluginShellCommand(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	writeScript(t, script, testPlugin)
	tr := startPluginRelay(t, "sh "+script)
	c := dial(t, tr.url)
	k := newKey(t)
	c.mustPublish(k.sign(t, 1, now(), "hello"))
	if res := c.publish(k.sign(t, 1, now(), "spam")); res.ok || res.msg != "blocked: no spam here" {
		t.Fatalf("reject: %+v", res)
	}
}

// Built-in rules run before the plugin: what they refuse never reaches it.
func TestPluginAfterBuiltinRules(t *testing.T) {
	script := filepath.Join(t.TempDir(), "policy.sh")
	writeScript(t, script, `#!/bin/sh
while IFS= read -r line; do
	echo seen >> "$0.log"
	id=$(printf '%s\n' "$line" | sed -n 's/.*"event":{"id":"\([0-9a-f]*\)".*/\1/p')
	printf '{"id":"%s","action":"accept"}\n' "$id"
done
`)
	kinds, _ := policy.ParseKinds("1")
	tr := startPolicyRelay(t, policy.Config{Plugin: script}, policy.NewLists(nil, nil, kinds, nil))
	c := dial(t, tr.url)
	k := newKey(t)
	wantRefused(t, c.publish(k.sign(t, 7, now(), "+")), "blocked")
	c.mustPublish(k.sign(t, 1, now(), "note"))
	b, err := os.ReadFile(script + ".log")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "seen"); n != 1 {
		t.Fatalf("plugin saw %d events, want 1", n)
	}
}
