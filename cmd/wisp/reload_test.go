package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
)

// relayName is the name in the relay's NIP-11 document.
func relayName(t *testing.T, addr string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc struct{ Name, Version string }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("NIP-11 %q: %v", b, err)
	}
	return doc.Name
}

// words splits a log attribute listing variables.
func words(v any) []string { return strings.Fields(str(v)) }

// The real wisp serve, given WISP_CONFIG_FILE, applies a changed file on
// SIGHUP to the connections already open (lists, NIP-11, mirror streams),
// keeps what an admin changed over NIP-86, names what changed and what
// needs a restart, and refuses a bad file whole, keeping the rules it had.
func TestSIGHUPReloadsConfigFile(t *testing.T) {
	bin := tempPath(t, "wisp")
	buildWispAs(t, bin, "0.0.0-reload")
	remote, _, _ := startWisp(t) // the far end of a mirror stream
	dir := t.TempDir()
	admin, alice, spammer := wstest.NewKey(t), wstest.NewKey(t), wstest.NewKey(t)
	file := filepath.Join(dir, "wisp.env")
	writeFile(t, file, envLines(
		"# as config.example.env: comments and KEY=VALUE lines",
		"WISP_DENY_KINDS=7",
		`WISP_RELAY_NAME="before"`,
		"WISP_ADMIN_PUBKEYS="+admin.PK,
	))
	p := startProc(t, bin, "WISP_CONFIG_FILE="+file, "WISP_LISTEN=127.0.0.1:0",
		"WISP_DATA_DIR="+filepath.Join(dir, "data"), "WISP_RELAY_NAME=from the environment")
	p.waitLog(0, "set in the environment and in WISP_CONFIG_FILE: the file's value is used",
		func(r map[string]any) bool { return r["variable"] == "WISP_RELAY_NAME" })
	if got := relayName(t, p.addr); got != "before" {
		t.Fatalf("NIP-11 name %q, want the file's", got)
	}
	c := wstest.Dial(t, "ws://"+p.addr)
	c.Refused(alice.Sign(t, 7), "blocked")
	c.MustPublish(alice.Sign(t, 1))
	if _, e, code := wstest.RPC(t, "http://"+p.addr, admin, "banpubkey", spammer.PK, "spam"); code != http.StatusOK || e != "" {
		t.Fatalf("banpubkey: HTTP %d %q", code, e)
	}

	// Kind 1 denied and 7 allowed, a new name, a mirror stream up to the
	// remote relay, and a setting that needs a restart.
	mirrorFile := filepath.Join(dir, "mirror.json")
	writeFile(t, mirrorFile, fmt.Sprintf(`{"streams":[{"name":"out","dir":"up","urls":["ws://%s"],"filter":{"kinds":[7]}}]}`, remote))
	writeFile(t, file, envLines(
		"WISP_DENY_KINDS=1",
		"WISP_RELAY_NAME=after",
		"WISP_ADMIN_PUBKEYS="+admin.PK,
		"WISP_MIRROR_CONFIG="+mirrorFile,
		"WISP_READ_CONNS=2",
	))
	mark := p.mark()
	p.signal(syscall.SIGHUP)
	rec := p.waitLog(mark, "configuration reloaded", nil)
	if got, want := words(rec["changed"]), []string{"WISP_RELAY_NAME", "WISP_DENY_KINDS", "WISP_MIRROR_CONFIG"}; !slices.Equal(got, want) {
		t.Errorf("changed %v, want %v", got, want)
	}
	rec = p.waitLog(mark, "configuration changes that take effect only at a restart (not applied)", nil)
	if got := words(rec["restart"]); !slices.Equal(got, []string{"WISP_READ_CONNS"}) {
		t.Errorf("needing a restart: %v, want WISP_READ_CONNS", got)
	}
	// The connection opened before is held to the new rules.
	c.Refused(alice.Sign(t, 1), "blocked")
	mirrored := alice.Sign(t, 7)
	c.MustPublish(mirrored)
	c.Refused(spammer.Sign(t, 7), "blocked") // the admin's ban stays
	if got := relayName(t, p.addr); got != "after" {
		t.Errorf("NIP-11 name %q after the reload, want after", got)
	}
	far := wstest.Dial(t, "ws://"+remote)
	wstest.Eventually(t, "the up stream the reload started", func() bool {
		return len(far.Events(nostr.Filter{IDs: []string{mirrored.ID}})) == 1
	})

	// A bad file is refused whole: nothing of it applies.
	writeFile(t, file, envLines(
		"WISP_DENY_KINDS=7",
		"WISP_RELAY_NAME=bad",
		"WISP_MAX_LIMIT=many",
		"WISP_ADMIN_PUBKEYS="+admin.PK,
	))
	mark = p.mark()
	p.signal(syscall.SIGHUP)
	rec = p.waitLog(mark, "configuration not reloaded; the running one stays", nil)
	if e := str(rec["err"]); !strings.Contains(e, `WISP_MAX_LIMIT="many"`) {
		t.Errorf("refusal %q does not name WISP_MAX_LIMIT", e)
	}
	c.Refused(alice.Sign(t, 1), "blocked")
	c.MustPublish(alice.Sign(t, 7))
	c.Refused(spammer.Sign(t, 7), "blocked")
	if got := relayName(t, p.addr); got != "after" {
		t.Errorf("NIP-11 name %q after a refused reload, want after", got)
	}

	mark = p.mark()
	p.signal(syscall.SIGTERM)
	p.waitLog(mark, "wisp stopped", nil)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("wisp exited with %v", err)
	}
}
