package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
)

type nip11Doc struct {
	NIPs  []int           `json:"supported_nips"`
	Self  string          `json:"self"`
	NIP29 map[string]bool `json:"nip29"`
}

func fetchNIP11(t *testing.T, addr string) nip11Doc {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc nip11Doc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func frontPage(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// With WISP_GROUPS=on, wisp serve makes the relay's key once, keeps it
// (0600) in the data directory, names it in NIP-11 and on the front page,
// and the groups it holds are there after a restart.
func TestGroupsServe(t *testing.T) {
	dir := t.TempDir()
	addr, _, stop := startWispIn(t, dir, "WISP_GROUPS=on", "WISP_GROUPS_MAX=7")
	fi, err := os.Stat(filepath.Join(dir, relayKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("relay key file: %v %v", fi, err)
	}
	doc := fetchNIP11(t, addr)
	if !slices.Contains(doc.NIPs, 29) || !nostr.IsValid32ByteHex(doc.Self) || !doc.NIP29["subgroups"] {
		t.Fatalf("NIP-11 %+v", doc)
	}
	if page := frontPage(t, addr); !strings.Contains(page, doc.Self) || !strings.Contains(page, "at most 7, each with at most 1000 members") {
		t.Fatalf("front page lacks the relay's key or the groups' limits:\n%s", page)
	}
	sk := nostr.GeneratePrivateKey()
	c := dialWisp(t, addr)
	if !c.publish(signed(t, sk, 9007, nostr.Now().Time().Unix(), "", nostr.Tag{"h", "book-club"})) {
		t.Fatal("create-group refused")
	}
	stop()

	addr, _, _ = startWispIn(t, dir, "WISP_GROUPS=on")
	if again := fetchNIP11(t, addr); again.Self != doc.Self {
		t.Fatalf("self changed across restarts: %s, then %s", doc.Self, again.Self)
	}
	c = dialWisp(t, addr)
	if !c.publish(signed(t, sk, 9, nostr.Now().Time().Unix(), "hello", nostr.Tag{"h", "book-club"})) {
		t.Fatal("message to the group refused after a restart")
	}
}

// Groups off: no NIP-29, no key made. WISP_RELAY_SECRET_KEY names the key.
func TestRelayKeySettings(t *testing.T) {
	addr, dir, _ := startWisp(t)
	if doc := fetchNIP11(t, addr); slices.Contains(doc.NIPs, 29) || doc.Self != "" {
		t.Fatalf("groups off: NIP-11 %+v", doc)
	}
	if _, err := os.Stat(filepath.Join(dir, relayKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key was made with groups off: %v", err)
	}
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	addr, dir, _ = startWisp(t, "WISP_GROUPS=on", "WISP_RELAY_SECRET_KEY="+sk)
	if doc := fetchNIP11(t, addr); doc.Self != pk {
		t.Fatalf("self %q, want the configured key's %q", doc.Self, pk)
	}
	if _, err := os.Stat(filepath.Join(dir, relayKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key file was made beside the configured key: %v", err)
	}
	if _, err := loadConfig([]string{"WISP_RELAY_SECRET_KEY=nope"}); err == nil || strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad key: %v (the value must not be echoed)", err)
	}
	for _, env := range [][]string{{"WISP_GROUPS=on", "WISP_RETENTION=*:30d"}, {"WISP_MEMBERSHIP=on", "WISP_RETENTION=13000-14000:1h"}} {
		if _, err := loadConfig(env); err == nil || !strings.Contains(err.Error(), "would purge kind") {
			t.Errorf("%v: %v", env, err)
		}
	}
	if _, err := loadConfig([]string{"WISP_GROUPS=on", "WISP_RETENTION=1:30d,7:1h"}); err != nil {
		t.Errorf("retention of other kinds with groups on: %v", err)
	}
	for _, kv := range []string{"WISP_GROUPS=yes", "WISP_MEMBERSHIP=maybe", "WISP_MEMBERSHIP_INVITES=all", "WISP_MEMBERSHIP_INVITE_TTL=0s", "WISP_GROUPS_MAX=0", "WISP_GROUP_MAX_MEMBERS=-1", "WISP_GROUP_EVENT_MAX_AGE=-1s", "WISP_GROUP_CREATORS=bob"} {
		if _, err := loadConfig([]string{kv}); err == nil {
			t.Errorf("%s accepted", kv)
		}
	}
}

// WISP_MEMBERSHIP=on with `wisp invite` run beside the serving relay: a
// code it mints lets a new member in, once.
func TestMembershipServeAndInvite(t *testing.T) {
	alice, bob, carol := wstest.NewKey(t), wstest.NewKey(t), wstest.NewKey(t)
	env := []string{"WISP_MEMBERSHIP=on", "WISP_AUTH=write", "WISP_ALLOW_PUBKEYS=" + alice.PK}
	addr, dir, _ := startWisp(t, env...)
	if doc := fetchNIP11(t, addr); !slices.Contains(doc.NIPs, 43) || doc.Self == "" {
		t.Fatalf("NIP-11 %+v", doc)
	}
	if page := frontPage(t, addr); !strings.Contains(page, "single use, given to members") {
		t.Fatalf("front page lacks membership:\n%s", page)
	}
	stdout, stderr, code := runArgsEnv(t, append(env, "WISP_DATA_DIR="+dir), "invite", "--count", "2", "--ttl", "1h")
	codes := strings.Fields(stdout)
	if code != 0 || len(codes) != 2 || codes[0] == codes[1] {
		t.Fatalf("wisp invite: exit %d, %q %q", code, stdout, stderr)
	}
	b := wstest.Dial(t, "ws://"+addr)
	b.Auth(bob)
	b.Refused(bob.Sign(t, 1), "restricted")
	claim := bob.SignAt(t, 28934, wstest.Now(), "", nostr.Tag{"-"}, nostr.Tag{"claim", codes[0]})
	if res := b.Publish(claim); !res.OK || !strings.HasPrefix(res.Msg, "info: welcome to") {
		t.Fatalf("claim: %+v", res)
	}
	b.MustPublish(bob.Sign(t, 1))
	c := wstest.Dial(t, "ws://"+addr)
	c.Auth(carol)
	if res := c.Publish(carol.SignAt(t, 28934, wstest.Now(), "", nostr.Tag{"-"}, nostr.Tag{"claim", codes[0]})); res.OK {
		t.Fatal("a code let two members in")
	}
	if _, _, code := runArgsEnv(t, []string{"WISP_DATA_DIR=" + dir}, "invite", "--count", "0"); code != 2 {
		t.Fatalf("invite --count 0: exit %d, want 2", code)
	}
}

// runArgsEnv runs the command line with environ.
func runArgsEnv(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = report(run(t.Context(), args, environ, nil, &out, &errb, nil), &errb)
	return out.String(), errb.String(), code
}
